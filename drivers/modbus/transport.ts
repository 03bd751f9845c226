// What the bus needs from a link (TCP socket or serial port): one transaction at a time, an outcome
// that is never a rejection, and a connection that heals itself. Shared by transport-tcp and -rtu.
import type { Logger } from '../../src/core/component.js';
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

/** Exponential backoff with ±20 % jitter, bounded by `maxMs` (the link retries forever). */
export class Backoff {
  private failures = 0;

  constructor(
    private readonly initialMs: number,
    private readonly maxMs: number,
    private readonly random: () => number = Math.random,
  ) {}

  next(): number {
    const base = Math.min(this.maxMs, this.initialMs * 2 ** Math.min(this.failures, 30));
    this.failures++;
    return Math.round(Math.min(this.maxMs, base * (0.8 + 0.4 * this.random())));
  }

  reset(): void {
    this.failures = 0;
  }
}

export interface LinkOptions {
  reconnectInitialMs: number;
  reconnectMaxMs: number;
  log: Logger;
  events: LinkEvents;
}

type LinkState = 'idle' | 'connecting' | 'up' | 'waiting' | 'closed';

/**
 * Connection lifecycle shared by TCP and RTU: connect in the background, and on failure or loss retry
 * with bounded backoff until closed. Subclasses implement connect/disconnect and call `lost()`.
 */
export abstract class ReconnectingLink {
  private state: LinkState = 'idle';
  private everUp = false;
  private retryTimer: NodeJS.Timeout | undefined;
  private readonly backoff: Backoff;
  private stateWaiters: (() => void)[] = [];
  private inFlight = 0;
  /** Transactions this link may carry at once (a serial line: 1). */
  readonly maxInFlight: number = 1;

  constructor(protected readonly options: LinkOptions) {
    this.backoff = new Backoff(options.reconnectInitialMs, options.reconnectMaxMs);
  }

  /** Opens the link; resolves when it is usable, rejects when this attempt failed. */
  protected abstract connect(): Promise<void>;
  /** Releases the socket or port (also after a failed or lost connection). */
  protected abstract disconnect(): Promise<void>;
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
        const retryMs = this.backoff.next();
        this.setState('waiting');
        this.options.events.onAttemptFailed(err instanceof Error ? err : new Error(String(err)), retryMs);
        this.retryTimer = setTimeout(() => this.attempt(), retryMs);
      },
    );
  }

  /** The established link went away: fail what is in flight, release, and reconnect after a backoff. */
  protected lost(err: Error | undefined): void {
    if (this.state !== 'up') return;
    this.setState('waiting');
    this.abortInFlight(err?.message ?? 'connection closed');
    this.options.events.onLost(err);
    void this.disconnect();
    this.retryTimer = setTimeout(() => this.attempt(), this.backoff.next());
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
