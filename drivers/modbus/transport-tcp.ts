// Modbus TCP: MBAP frames over one socket, kept open between polls and reopened when lost.
import { Socket } from 'node:net';
import { MbapReader, mbapFrame, parseReadResponse, readRequestPdu } from './protocol.js';
import { ReconnectingLink, type LinkOptions, type TransactionRequest, type TransactionResult, type Transport } from './transport.js';

export interface TcpOptions extends LinkOptions {
  host: string;
  port: number;
  connectTimeoutMs: number;
}

/**
 * Timeouts in a row, with nothing at all received, after which the socket is presumed half-open (a
 * peer that vanished without a FIN or RST: power cut, cable pulled) and reopened. A unit that is silent
 * behind a healthy gateway resets nothing as long as any other unit answers.
 */
const SILENT_TIMEOUTS_BEFORE_RECONNECT = 3;

interface Pending {
  transactionId: number;
  request: TransactionRequest;
  timer: NodeJS.Timeout;
  strayBytes: number;
  resolve(result: TransactionResult): void;
}

export class TcpTransport extends ReconnectingLink implements Transport {
  private socket: Socket | undefined;
  private readonly reader = new MbapReader();
  private nextTransactionId = 1;
  private pending: Pending | undefined;
  /** Bytes of frames that answered nothing pending (late answers after a timeout), reported with the next transaction. */
  private strayBytes = 0;
  private silentTimeouts = 0;

  constructor(private readonly tcp: TcpOptions) {
    super(tcp);
  }

  protected connect(): Promise<void> {
    return new Promise((resolve, reject) => {
      const socket = new Socket();
      this.socket = socket;
      this.reader.reset();
      const timer = setTimeout(() => socket.destroy(new Error(`connect timeout after ${this.tcp.connectTimeoutMs}ms`)), this.tcp.connectTimeoutMs);
      const onError = (err: Error) => {
        clearTimeout(timer);
        reject(err);
      };
      socket.once('error', onError);
      socket.once('close', () => {
        clearTimeout(timer);
        reject(new Error('connection closed while connecting'));
      });
      socket.connect({ host: this.tcp.host, port: this.tcp.port }, () => {
        clearTimeout(timer);
        socket.removeAllListeners('error');
        socket.removeAllListeners('close');
        socket.setNoDelay(true);
        // Keepalive probes find a peer that disappeared while no request was outstanding.
        socket.setKeepAlive(true, 10_000);
        socket.on('data', (chunk: Buffer) => this.onData(chunk));
        socket.on('error', () => undefined); // 'close' follows and carries the loss
        socket.on('close', () => {
          if (this.socket === socket) this.lost(new Error('connection closed by peer'));
        });
        this.silentTimeouts = 0;
        resolve();
      });
    });
  }

  protected disconnect(): Promise<void> {
    const socket = this.socket;
    this.socket = undefined;
    if (!socket || socket.destroyed) return Promise.resolve();
    return new Promise((resolve) => {
      socket.once('close', () => resolve());
      socket.destroy();
    });
  }

  private onData(chunk: Buffer): void {
    let frames;
    try {
      frames = this.reader.push(chunk);
    } catch (err) {
      // A byte stream that is not Modbus cannot be resynchronised: start a new connection.
      this.socket?.destroy(err as Error);
      return;
    }
    for (const frame of frames) {
      const p = this.pending;
      this.silentTimeouts = 0;
      if (!p || frame.transactionId !== p.transactionId || frame.unitId !== p.request.unitId) {
        this.strayBytes += 7 + frame.pdu.length;
        continue;
      }
      this.pending = undefined;
      clearTimeout(p.timer);
      try {
        const response = parseReadResponse(p.request.fc, p.request.count, frame.pdu);
        p.resolve({ status: 'response', response, strayBytes: p.strayBytes, crcErrors: 0 });
      } catch (err) {
        p.resolve({ status: 'protocol', message: (err as Error).message, strayBytes: p.strayBytes, crcErrors: 0 });
      }
    }
  }

  protected exchange(request: TransactionRequest, timeoutMs: number): Promise<TransactionResult> {
    const socket = this.socket;
    if (!socket) return Promise.resolve({ status: 'disconnected', reason: 'not connected', strayBytes: 0, crcErrors: 0 });
    const transactionId = this.nextTransactionId;
    this.nextTransactionId = (this.nextTransactionId + 1) & 0xffff || 1;
    const strayBytes = this.strayBytes;
    this.strayBytes = 0;
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        if (this.pending?.transactionId !== transactionId) return;
        this.pending = undefined;
        resolve({ status: 'timeout', strayBytes, crcErrors: 0 });
        if (++this.silentTimeouts >= SILENT_TIMEOUTS_BEFORE_RECONNECT) {
          this.silentTimeouts = 0;
          socket.destroy(new Error(`${SILENT_TIMEOUTS_BEFORE_RECONNECT} timeouts in a row with nothing received`));
        }
      }, timeoutMs);
      this.pending = { transactionId, request, timer, strayBytes, resolve };
      socket.write(mbapFrame(transactionId, request.unitId, readRequestPdu(request.fc, request.address, request.count)));
    });
  }

  protected abortInFlight(reason: string): void {
    const p = this.pending;
    if (!p) return;
    this.pending = undefined;
    clearTimeout(p.timer);
    p.resolve({ status: 'disconnected', reason, strayBytes: p.strayBytes, crcErrors: 0 });
  }
}
