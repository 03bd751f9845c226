// Modbus TCP: MBAP frames over one socket, kept open between polls and reopened when lost. Answers are
// matched to requests by transaction id, so with `maxInFlight` > 1 several units' requests can be
// outstanding at once (the bus sends at most one per unit id).
import { SILENT_TIMEOUTS_BEFORE_RECONNECT } from './line.js';
import { MbapReader, mbapFrame, parseReadResponse, readRequestPdu } from './protocol.js';
import { ReconnectingLink, type LinkOptions, type TransactionRequest, type TransactionResult, type Transport } from './transport.js';

export interface TcpOptions extends LinkOptions {
  /** Transactions outstanding at once on the connection (default 1). */
  maxInFlight?: number;
}

/** Transaction ids of requests that timed out, remembered to tell a late answer from a mismatched one. */
const TIMED_OUT_IDS_KEPT = 16;

/** Frames discarded because they answered nothing pending, reported with the next transaction to end. */
interface Discarded {
  strayBytes: number;
  lateReplies: number;
  mismatchedReplies: number;
}

const noneDiscarded = (): Discarded => ({ strayBytes: 0, lateReplies: 0, mismatchedReplies: 0 });

interface Pending {
  transactionId: number;
  request: TransactionRequest;
  timer: NodeJS.Timeout;
  /** The last mismatched answer that may have been meant for this request (same unit id, or a wrong one). */
  mismatch: { transactionId: number; unitId: number } | undefined;
  resolve(result: TransactionResult): void;
}

export class TcpTransport extends ReconnectingLink implements Transport {
  private readonly reader = new MbapReader();
  private nextTransactionId = 1;
  private readonly pending = new Map<number, Pending>();
  /** Frames that answered nothing pending (late answers after a timeout), reported with the next transaction. */
  private discarded = noneDiscarded();
  override readonly maxInFlight: number;
  private readonly timedOutIds: number[] = [];
  private silentTimeouts = 0;

  constructor(tcp: TcpOptions) {
    super(tcp);
    this.maxInFlight = Math.max(1, tcp.maxInFlight ?? 1);
  }

  protected lineUp(): void {
    this.reader.reset();
    this.silentTimeouts = 0;
  }

  protected received(chunk: Buffer): void {
    let frames;
    try {
      frames = this.reader.push(chunk);
    } catch (err) {
      // A byte stream that is not Modbus cannot be resynchronised: start a new connection.
      this.line?.drop(err as Error);
      return;
    }
    for (const frame of frames) {
      const p = this.pending.get(frame.transactionId);
      this.silentTimeouts = 0;
      if (!p || frame.unitId !== p.request.unitId) {
        // Not an answer: the requests keep waiting for theirs (until their timeout); say what this was.
        this.discarded.strayBytes += 7 + frame.pdu.length;
        if (!p && this.timedOutIds.includes(frame.transactionId)) {
          this.discarded.lateReplies++;
          continue;
        }
        this.discarded.mismatchedReplies++;
        const mismatch = { transactionId: frame.transactionId, unitId: frame.unitId };
        // Whose answer it may have been: the request with that transaction id, else those of that unit, else any.
        const sameUnit = [...this.pending.values()].filter((q) => q.request.unitId === frame.unitId);
        for (const q of p ? [p] : sameUnit.length > 0 ? sameUnit : this.pending.values()) q.mismatch = mismatch;
        continue;
      }
      this.pending.delete(frame.transactionId);
      clearTimeout(p.timer);
      try {
        const response = parseReadResponse(p.request.fc, p.request.count, frame.pdu);
        p.resolve({ status: 'response', response, ...this.takeNoise() });
      } catch (err) {
        p.resolve({ status: 'protocol', message: (err as Error).message, ...this.takeNoise() });
      }
    }
  }

  private takeNoise(): Pick<TransactionResult, 'strayBytes' | 'crcErrors' | 'lateReplies' | 'mismatchedReplies'> {
    const d = this.discarded;
    this.discarded = noneDiscarded();
    return { strayBytes: d.strayBytes, crcErrors: 0, lateReplies: d.lateReplies, mismatchedReplies: d.mismatchedReplies };
  }

  protected exchange(request: TransactionRequest, timeoutMs: number): Promise<TransactionResult> {
    const line = this.line;
    if (!line) return Promise.resolve({ status: 'disconnected', reason: 'not connected', strayBytes: 0, crcErrors: 0 });
    const transactionId = this.nextTransactionId;
    this.nextTransactionId = (this.nextTransactionId + 1) & 0xffff || 1;
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        const p = this.pending.get(transactionId);
        if (!p) return;
        this.pending.delete(transactionId);
        this.timedOutIds.push(transactionId);
        if (this.timedOutIds.length > TIMED_OUT_IDS_KEPT) this.timedOutIds.shift();
        const wrong = p.mismatch;
        if (wrong) {
          const what = wrong.transactionId !== transactionId ? `transaction id ${wrong.transactionId}` : `unit id ${wrong.unitId}`;
          resolve({ status: 'mismatched', message: `only answers with ${what} came back (expected transaction id ${transactionId}, unit id ${request.unitId})`, ...this.takeNoise() });
          return;
        }
        resolve({ status: 'timeout', ...this.takeNoise() });
        if (++this.silentTimeouts >= SILENT_TIMEOUTS_BEFORE_RECONNECT) {
          this.silentTimeouts = 0;
          line.drop(new Error(`${SILENT_TIMEOUTS_BEFORE_RECONNECT} timeouts in a row with nothing received`));
        }
      }, timeoutMs);
      this.pending.set(transactionId, { transactionId, request, timer, mismatch: undefined, resolve });
      line.write(mbapFrame(transactionId, request.unitId, readRequestPdu(request.fc, request.address, request.count)));
    });
  }

  protected abortInFlight(reason: string): void {
    const all = [...this.pending.values()];
    this.pending.clear();
    for (const p of all) {
      clearTimeout(p.timer);
      p.resolve({ status: 'disconnected', reason, ...this.takeNoise() });
    }
  }
}
