// Modbus RTU over a serial port (RS-485/RS-232 adapter), or over a TCP socket to a serial-to-Ethernet
// converter (RTU over TCP: the same frames, no MBAP), with the line discipline a noisy bus needs: one
// transaction at a time, the 3.5-character silence before each request, noise discarded and counted,
// answers found by scanning (RtuResponseScanner) rather than by trusting the byte stream to start at a
// frame. Over TCP the socket rules of Modbus TCP apply too (line.ts: keepalive, a half-open socket
// dropped after silent timeouts).
import { SILENT_TIMEOUTS_BEFORE_RECONNECT, type SerialSettings } from './line.js';
import { RtuResponseScanner, parseReadResponse, readRequestPdu, responseDataBytes, rtuFrame, rtuTiming } from './protocol.js';
import { ReconnectingLink, type LinkOptions, type TransactionRequest, type TransactionResult, type Transport } from './transport.js';

export interface RtuOptions extends LinkOptions {
  /** The serial line's settings (over TCP: the line behind the converter), for its timing. */
  serial: SerialSettings;
  /**
   * Over TCP: drop the socket as half-open after this many timeouts in a row with nothing at all
   * received. Not on a serial port, where silence says nothing about the port itself.
   */
  dropWhenSilent: boolean;
}

/**
 * After a frame with a bad CRC, how long the line must stay quiet before the transaction is given up
 * as corrupted (rather than waiting out the whole timeout for an answer that already came, damaged).
 * USB serial adapters deliver bytes in bursts up to 16 ms apart, hence the floor.
 */
const CRC_SILENCE_FLOOR_MS = 30;

interface Pending {
  scanner: RtuResponseScanner;
  request: TransactionRequest;
  strayBytes: number;
  timer: NodeJS.Timeout;
  silenceTimer: NodeJS.Timeout | undefined;
  resolve(result: TransactionResult): void;
}

export class RtuTransport extends ReconnectingLink implements Transport {
  private pending: Pending | undefined;
  /** Bytes received outside any transaction; discarded (and reported) when the next request goes out. */
  private idleBytes = 0;
  /** When the line last carried a byte either way (performance.now() ms). */
  private lastActivityMs = 0;
  private readonly interFrameMs: number;
  private readonly charMs: number;
  /** Timeouts in a row with nothing received (RTU over TCP: a half-open socket). */
  private silentTimeouts = 0;

  constructor(private readonly rtu: RtuOptions) {
    super(rtu);
    const { dataBits, parity, stopBits } = rtu.serial;
    const bitsPerChar = 1 + dataBits + (parity === 'none' ? 0 : 1) + stopBits;
    const timing = rtuTiming(rtu.serial.baudRate, bitsPerChar);
    this.interFrameMs = timing.interFrameUs / 1000;
    this.charMs = timing.charUs / 1000;
  }

  protected lineUp(): void {
    this.idleBytes = 0;
    this.silentTimeouts = 0;
  }

  protected received(chunk: Buffer): void {
    this.lastActivityMs = performance.now();
    this.silentTimeouts = 0;
    const p = this.pending;
    if (!p) {
      this.idleBytes += chunk.length;
      return;
    }
    p.scanner.push(chunk);
    const crcBefore = p.scanner.crcErrors;
    const scan = p.scanner.scan();
    if (scan.found) {
      this.finish(p, () => {
        // Bytes before the frame were noise; bytes after it count with the next transaction.
        this.idleBytes += p.scanner.length - scan.start - scan.length;
        try {
          const response = parseReadResponse(p.request.fc, p.request.count, scan.pdu);
          return { status: 'response', response, strayBytes: p.strayBytes + scan.start, crcErrors: p.scanner.crcErrors };
        } catch (err) {
          return { status: 'protocol', message: (err as Error).message, strayBytes: p.strayBytes + scan.start, crcErrors: p.scanner.crcErrors };
        }
      });
      return;
    }
    if (p.scanner.crcErrors > crcBefore || p.silenceTimer) {
      // A damaged answer came: give up once the line goes quiet, unless a valid frame follows.
      if (p.silenceTimer) clearTimeout(p.silenceTimer);
      const silenceMs = Math.max(CRC_SILENCE_FLOOR_MS, Math.ceil(this.interFrameMs * 4));
      p.silenceTimer = setTimeout(() => this.finish(p, () => ({ status: 'crc', strayBytes: p.strayBytes + p.scanner.length, crcErrors: p.scanner.crcErrors })), silenceMs);
    }
  }

  private finish(p: Pending, result: () => TransactionResult): void {
    if (this.pending !== p) return;
    this.pending = undefined;
    clearTimeout(p.timer);
    if (p.silenceTimer) clearTimeout(p.silenceTimer);
    p.resolve(result());
  }

  protected async exchange(request: TransactionRequest, timeoutMs: number): Promise<TransactionResult> {
    // The 3.5-character silence that marks the end of the previous frame, before the next one starts.
    const quietMs = this.interFrameMs - (performance.now() - this.lastActivityMs);
    if (quietMs > 0) await new Promise((r) => setTimeout(r, Math.ceil(quietMs)));
    const line = this.line;
    if (!line || !this.connected) return { status: 'disconnected', reason: 'not connected', strayBytes: 0, crcErrors: 0 };
    const frame = rtuFrame(request.unitId, readRequestPdu(request.fc, request.address, request.count));
    // The timeout runs from when the request has left and the answer could have arrived at this speed.
    const wireMs = (frame.length + 5 + responseDataBytes(request.fc, request.count)) * this.charMs;
    const strayBytes = this.idleBytes;
    this.idleBytes = 0;
    return new Promise<TransactionResult>((resolve) => {
      const p: Pending = {
        scanner: new RtuResponseScanner({ unitId: request.unitId, fc: request.fc, count: request.count }),
        request,
        strayBytes,
        silenceTimer: undefined,
        resolve,
        timer: setTimeout(() => {
          this.finish(p, () => ({
            status: p.scanner.crcErrors > 0 ? 'crc' : 'timeout',
            strayBytes: p.strayBytes + p.scanner.length,
            crcErrors: p.scanner.crcErrors,
          }));
          if (p.scanner.length === 0 && this.rtu.dropWhenSilent && ++this.silentTimeouts >= SILENT_TIMEOUTS_BEFORE_RECONNECT) {
            this.silentTimeouts = 0;
            line.drop(new Error(`${SILENT_TIMEOUTS_BEFORE_RECONNECT} timeouts in a row with nothing received`));
          }
        }, Math.ceil(timeoutMs + wireMs)),
      };
      this.pending = p;
      this.lastActivityMs = performance.now();
      line.write(frame);
    });
  }

  protected abortInFlight(reason: string): void {
    const p = this.pending;
    if (p) this.finish(p, () => ({ status: 'disconnected', reason, strayBytes: p.strayBytes, crcErrors: p.scanner.crcErrors }));
  }
}
