// What the bus needs from a link (a TCP socket or a serial port, line.ts): transactions, an outcome
// that is never a rejection, and a connection that heals itself. Shared by transport-tcp and -rtu.
import { Backoff } from '../../src/core/backoff.js';
import type { Logger } from '../../src/core/component.js';
import type { ByteLine, LineOpener } from './line.js';
import type { ReadFunctionCode, ReadResponse } from './protocol.js';

export interface TransactionRequest {
  unitId: number;
  fc: ReadFunctionCode;
  address: number;
  count: number;
  /** How long to wait for the response once the request is on the wire. */
  timeoutMs: number;
}

/** Line noise observed during a transaction (including noise that arrived since the previous one). */
export interface Noise {
  /** Bytes received that belonged to no valid answer (RTU garbage, late answers to earlier requests). */
  strayBytes: number;
  /** Frames with the expected header and length but a wrong CRC (RTU). */
  crcErrors: number;
  /** TCP: well-formed answers to a request that had already timed out (late answers), discarded. */
  lateReplies?: number;
  /** TCP: well-formed answers whose transaction id (or unit id) matches no request sent, discarded. */
  mismatchedReplies?: number;
}

export type TransactionOutcome =
  /** The device answered: data, or an exception code. */
  | { status: 'response'; response: ReadResponse }
  /** Nothing valid came back within the timeout. */
  | { status: 'timeout' }
  /** Only corrupted answers came back (the device is there, the line is noisy). */
  | { status: 'crc' }
  /** The link is down (reconnecting in the background); nothing was sent. */
  | { status: 'disconnected'; reason: string }
  /** The device answered something that is not an answer to the request. */
  | { status: 'protocol'; message: string }
  /** TCP: within the timeout only answers with another transaction id (or unit id) came back. */
  | { status: 'mismatched'; message: string }
  /** Not sent: the caller gave it up (the input is stopping) before its turn on the bus. */
  | { status: 'cancelled' };

export type TransactionResult = TransactionOutcome & Noise;

export interface Transport {
  /** Starts connecting in the background; reconnects forever (bounded backoff) until close(). */
  open(): void;
  /** One request and its response. Never rejects; never called while `maxInFlight` others are in flight. */
  transact(request: TransactionRequest): Promise<TransactionResult>;
  /** Closes the link and stops reconnecting; resolves when the socket or port is released. */
  close(): Promise<void>;
  readonly connected: boolean;
  /** Transactions the link can carry at once (1 on a serial line; TCP: as configured, one per unit id). */
  readonly maxInFlight: number;
}

/** Link events, for the bus's log and counters. */
export interface LinkEvents {
  /** The link came up; `reconnect` when it had been up before. */
  onUp(reconnect: boolean): void;
  /** An established link was lost. */
  onLost(err: Error | undefined): void;
  /** A connection attempt failed; the next one is in `retryMs`. */
  onAttemptFailed(err: Error, retryMs: number): void;
}

export interface LinkOptions {
  reconnectInitialMs: number;
  reconnectMaxMs: number;
  log: Logger;
  events: LinkEvents;
  /** The socket or serial port the frames travel over (line.ts). */
  openLine: LineOpener;
}

type LinkState = 'idle' | 'connecting' | 'up' | 'waiting' | 'closed';

/**
 * Connection lifecycle shared by every transport: open the line in the background, and on failure or
 * loss retry with bounded backoff until closed. Subclasses frame bytes (`received`, `line.write`) and
 * may drop a line that looks dead (`line.drop`), which counts as a loss.
 */
export abstract class ReconnectingLink {
  private state: LinkState = 'idle';
  private everUp = false;
  private retryTimer: NodeJS.Timeout | undefined;
  private readonly backoff: Backoff;
  private stateWaiters: (() => void)[] = [];
  private inFlight = 0;
  /** The socket or port while open (or opening). */
  protected line: ByteLine | undefined;
  /** Transactions this link may carry at once (a serial line: 1). */
  readonly maxInFlight: number = 1;

  constructor(protected readonly options: LinkOptions) {
    // The project's one backoff: ±20 % jitter, doubling from the first delay up to the cap, forever.
    this.backoff = new Backoff({ minMs: options.reconnectInitialMs, maxMs: options.reconnectMaxMs });
  }

  /** Bytes that arrived on the line. */
  protected abstract received(chunk: Buffer): void;
  /** The line is open: start from a clean slate (no partial frame, no stale counters). */
  protected abstract lineUp(): void;
  /** The transaction itself, on an established link. */
  protected abstract exchange(request: TransactionRequest, timeoutMs: number): Promise<TransactionResult>;
  /** Called when the link goes away with transactions in flight: each must resolve as disconnected. */
  protected abstract abortInFlight(reason: string): void;

  get connected(): boolean {
    return this.state === 'up';
  }

  open(): void {
    if (this.state === 'idle') this.attempt();
  }

  private async connect(): Promise<void> {
    const line = this.options.openLine({
      onData: (chunk) => {
        if (this.line === line) this.received(chunk);
      },
      onClose: (err) => {
        if (this.line === line) this.lost(err);
      },
    });
    this.line = line;
    await line.ready;
    this.lineUp();
  }

  /** Releases the socket or port (also after a failed or lost connection, or while still opening). */
  private disconnect(): Promise<void> {
    const line = this.line;
    this.line = undefined;
    return line ? line.close() : Promise.resolve();
  }

  private attempt(): void {
    this.retryTimer = undefined;
    this.setState('connecting');
    this.connect().then(
      () => {
        if (this.state === 'closed') {
          void this.disconnect();
          return;
        }
        this.backoff.reset();
        this.setState('up');
        this.options.events.onUp(this.everUp);
        this.everUp = true;
      },
      (err: unknown) => {
        if (this.state === 'closed') return;
        void this.disconnect();
        const retryMs = this.backoff.nextDelayMs();
        this.setState('waiting');
        this.options.events.onAttemptFailed(err instanceof Error ? err : new Error(String(err)), retryMs);
        this.retryTimer = setTimeout(() => this.attempt(), retryMs);
      },
    );
  }

  /** The established link went away: fail what is in flight, release, and reconnect after a backoff. */
  private lost(err: Error | undefined): void {
    if (this.state !== 'up') return;
    this.setState('waiting');
    this.abortInFlight(err?.message ?? 'connection closed');
    this.options.events.onLost(err);
    void this.disconnect();
    this.retryTimer = setTimeout(() => this.attempt(), this.backoff.nextDelayMs());
  }

  private setState(state: LinkState): void {
    this.state = state;
    const waiters = this.stateWaiters;
    this.stateWaiters = [];
    for (const w of waiters) w();
  }

  /** Waits (at most `timeoutMs`) for a connection attempt in progress; true when the link is up. */
  private async waitUp(timeoutMs: number): Promise<boolean> {
    if (this.state === 'idle') this.attempt();
    if (this.state !== 'connecting') return this.state === 'up';
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, timeoutMs);
      this.stateWaiters.push(() => {
        clearTimeout(timer);
        resolve();
      });
    });
    return this.connected; // the state moved on while waiting
  }

  async transact(request: TransactionRequest): Promise<TransactionResult> {
    // The bus serialises transactions; this guards that invariant rather than trusting it.
    if (this.inFlight >= this.maxInFlight) throw new Error('modbus: more transactions at once than the link carries');
    this.inFlight++;
    try {
      const startMs = performance.now();
      if (!(await this.waitUp(request.timeoutMs))) {
        return { status: 'disconnected', reason: this.state === 'closed' ? 'closed' : 'not connected', strayBytes: 0, crcErrors: 0 };
      }
      const leftMs = Math.max(1, request.timeoutMs - (performance.now() - startMs));
      return await this.exchange(request, leftMs);
    } catch (err) {
      return { status: 'protocol', message: err instanceof Error ? err.message : String(err), strayBytes: 0, crcErrors: 0 };
    } finally {
      this.inFlight--;
    }
  }

  async close(): Promise<void> {
    const wasUp = this.state === 'up';
    this.setState('closed');
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    if (wasUp) this.abortInFlight('closed');
    await this.disconnect();
  }
}
