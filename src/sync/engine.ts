// The sync engine: moves an output's unsent records from its source (the ring) to its driver, with
// the delivery guarantees the README states (at least once, in order per series, idempotent replays).
// Written by hand because it is the product's core.
//
// Delivery. Records are leased from the source, written by the driver and settled (the cursor moves,
// durably) only when the upstream acknowledged them; a failed or interrupted request releases its lease
// and the records go again. So delivery is at-least-once and a restart re-sends at most what was in
// flight; replays are harmless because both upstreams are idempotent (InfluxDB overwrites the same
// series and time, TimescaleDB has a unique key and ON CONFLICT DO NOTHING).
//
// Order. Within a lane a series is never in two requests at once, and each lane leases in write
// order, so within a lane a series reaches the upstream in order and a retry never lands after newer
// data of its series. Across lanes there is no order by design: live data overtakes the backlog.
// Pipelining. While a lane's request is out, its next request is leased and encoded ahead, also when
// it holds the same series (a one-series burst is the common case): it goes the moment the series'
// request is acknowledged, so the upstream waits for neither the ring nor our CPU. It goes only after
// that acknowledgement, and a failure gives it back with the failed lease, so the order holds.
//
// Two lanes. Records above the live mark are live, the rest backlog. Live goes first: it is flushed
// when a batch is full or its oldest record has waited flush_interval, and it may use one request slot
// beyond the concurrency limit so it never queues behind the backfill. The backfill drains the backlog
// oldest first, paced by max_rate and by the adaptive concurrency. The mark moves up (the freshest
// records stay live) while the upstream fails, and when the live lane falls behind by more than
// liveLagMs; after an outage the first request probes with the oldest backlog, then live data flows
// and the backlog follows behind it.
//
// Faults (the driver's OutputError category): retry → exponential backoff with jitter (short for a link
// that refuses connections, where probing is free); throttle → wait Retry-After (every request of every
// lane passes one gate, src/sync/throttle.ts), halve concurrency;
// split → halve the request; reject → drop the named points (or bisect to find them) and send the rest;
// auth/fatal → pause with a loud, rate-limited log line, keep everything, try again later.
import { OutputError, type Logger, type Output, type OutputBatch, type OutputStats } from '../core/component.js';
import { Aimd } from './aimd.js';
import { halve, only, without } from './batch.js';
import { IdClock } from './clock.js';
import { RateLimiter } from './rate.js';
import { asOutputError, refuse, withTimeout } from './request.js';
import { DEFAULT_RETRY, ExponentialRetry, type ExponentialRetryOptions, type RetryStrategy } from './retry.js';
import type { SourceLease, SyncSource } from './source.js';
export { asOutputError };
import { OutcomeLog } from './outcome-log.js';
import { SettleQueue } from './settle.js';
import { ThrottleGate } from './throttle.js';

export interface SyncSettings {
  /** Most points per request (batch_size); the adaptive size never exceeds it. */
  batchPoints: number;
  /** Longest a live record waits for a batch to fill (flush_interval). */
  flushIntervalMs: number;
  /** Timeout of one request (timeout). */
  timeoutMs: number;
  /** Backfill pace in points per second (max_rate); live data is never paced. */
  maxRatePointsPerS?: number;
  /** Most backfill requests in flight; the adaptive limit starts at 1. */
  maxConcurrency: number;
  /** When the live lane's oldest record is older than this, its backlog moves to the backfill lane. */
  liveLagMs: number;
  /** What stays live when the mark moves: records written within this window. */
  liveWindowMs: number;
  /** How often a paused output (auth, fatal) tries again. */
  pausedRetryMs: number;
  /** How long stop() lets requests in flight finish before aborting them. */
  stopGraceMs: number;
  /** How often the engine looks for new records. */
  pollMs: number;
  /** A loud log line about a paused or failing output at most this often. */
  logEveryMs: number;
  retry: Partial<ExponentialRetryOptions>;
}

export const DEFAULT_SYNC: Omit<SyncSettings, 'batchPoints' | 'flushIntervalMs' | 'timeoutMs'> = {
  maxConcurrency: 4,
  liveLagMs: 5_000,
  liveWindowMs: 2_000,
  pausedRetryMs: 60_000,
  stopGraceMs: 5_000,
  pollMs: 250,
  logEveryMs: 5 * 60_000,
  retry: {},
};

export type Lane = 'live' | 'backfill';

export interface SyncOptions {
  id: string;
  output: Output;
  source: SyncSource;
  log: Logger;
  settings: SyncSettings;
  retry?: RetryStrategy;
  now?: () => number;
  /** Called after each delivered lease (for tests and tracing). */
  onDelivered?: (event: { lane: Lane; points: number; rejectedPoints: number }) => void;
}

interface Job {
  lease: SourceLease;
  lane: Lane;
  /** What output.encode() made of the lease's batch ahead of time, if anything. */
  encoded: unknown;
  abort: AbortController;
  done: Promise<void>;
}

/** A lane's next request, leased and encoded while its slots or its series are busy. */
interface Prepared {
  lease: SourceLease;
  encoded: unknown;
}

const NO_SERIES: ReadonlySet<string> = new Set();

/** While failing, requests are probes: small, so an upstream that refuses them is not sent much. */
const PROBE_POINTS = 1000;

export class OutputSync {
  private readonly settings: SyncSettings;
  private readonly log: Logger;
  private readonly now: () => number;
  private readonly retry: RetryStrategy;
  private readonly aimd: Aimd;
  private readonly rate: RateLimiter | undefined;
  private readonly inflight = new Set<Job>();
  /** Per lane, the series in a request in flight: a lane never has a series in two requests at once. */
  private readonly busy: Record<Lane, Set<string>> = { live: new Set(), backfill: new Set() };
  private readonly clock = new IdClock();
  /** The upstream's Retry-After, for every request of every lane. */
  private readonly throttle: ThrottleGate;
  private readonly prepared: Record<Lane, Prepared | null> = { live: null, backfill: null };
  private readonly preparing: Record<Lane, boolean> = { live: false, backfill: false };
  private readonly settles: SettleQueue;

  private started = false;
  private stopping = false;
  private connected = false;
  private connecting = false;
  private timer: NodeJS.Timeout | undefined;
  private timerAtMs = Infinity;
  private pumpQueued = false;

  /** Records with an id above this are live. */
  private boundary = 0;
  /** When the oldest not yet leased live record was first seen; null when the live lane is drained. */
  private livePendingSinceMs: number | null = null;
  /** The live lane passed over busy series or had a request fail: look again as soon as a slot frees. */
  private liveRecheck = false;
  /** Every id up to here was offered to the live lane. */
  private liveScannedId = 0;

  private blockedUntilMs = 0;
  private failures = 0;
  private failingSinceMs: number | null = null;
  private readonly outcomes: OutcomeLog;

  private readonly counters: Omit<OutputStats, 'inFlight' | 'concurrency' | 'batchPoints' | 'liveLagMs' | 'counters'> = {
    sentPoints: 0,
    rejectedPoints: 0,
    requests: 0,
    sentBytes: 0,
    retries: 0,
    throttles: 0,
    splits: 0,
    lastLatencyMs: null,
    latencyMs: null,
    lastSuccessMs: null,
    lastError: null,
    lastErrorMs: null,
    paused: null,
  };

  constructor(private readonly opts: SyncOptions) {
    this.settings = opts.settings;
    this.log = opts.log;
    this.now = opts.now ?? Date.now;
    this.retry = opts.retry ?? new ExponentialRetry(opts.settings.retry);
    this.throttle = new ThrottleGate(this.now);
    this.settles = new SettleQueue(opts.source, this.log, this.now);
    this.outcomes = new OutcomeLog(this.log, this.settings.logEveryMs);
    this.aimd = new Aimd({
      maxConcurrency: this.settings.maxConcurrency,
      maxBatchPoints: this.settings.batchPoints,
      minBatchPoints: Math.min(this.settings.batchPoints, 100),
      timeoutMs: this.settings.timeoutMs,
      latencyTolerance: 2,
    });
    const rate = this.settings.maxRatePointsPerS;
    if (rate !== undefined) this.rate = new RateLimiter(rate, Math.max(rate, this.settings.batchPoints), this.now());
  }

  /** Begins delivering. Whatever is unsent now is backlog; what is written from here on is live. */
  start(): Promise<void> {
    if (this.started) return Promise.resolve();
    this.started = true;
    const now = this.now();
    this.boundary = this.source.lastId();
    this.liveScannedId = this.boundary;
    this.clock.reset(this.boundary, now);
    this.source.setLiveMark(this.boundary);
    this.schedulePump(0);
    return Promise.resolve();
  }

  /**
   * Stops: no new requests; those in flight get stopGraceMs to finish, then are aborted and their
   * records released (sent again after a restart). Resolves once the driver is closed.
   */
  async stop(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.dropPrepared();
    if (this.inflight.size > 0) {
      let graceTimer: NodeJS.Timeout | undefined;
      const grace = new Promise<void>((resolve) => {
        graceTimer = setTimeout(resolve, this.settings.stopGraceMs);
      });
      await Promise.race([Promise.all([...this.inflight].map((j) => j.done)), grace]);
      clearTimeout(graceTimer);
      for (const job of this.inflight) job.abort.abort(new Error('output stopping'));
      await Promise.all([...this.inflight].map((j) => j.done));
    }
    this.settles.flush();
    try {
      await this.opts.output.close();
    } catch (err) {
      this.log.warn({ err }, 'output did not close cleanly');
    }
    try {
      this.source.setLiveMark(null);
    } catch {
      // The store may already be closed; the mark lives in memory only.
    }
  }

  stats(): OutputStats {
    return {
      ...this.counters,
      inFlight: this.inflight.size,
      concurrency: this.aimd.concurrency,
      batchPoints: this.aimd.batchPoints,
      liveLagMs: this.liveLagMs(this.now()),
      counters: this.opts.output.counters?.() ?? {},
    };
  }

  private get source(): SyncSource {
    return this.opts.source;
  }

  // ------------------------------------------------------------------------------------ scheduling

  private schedulePump(delayMs: number): void {
    if (this.stopping) return;
    if (delayMs <= 0) {
      if (this.pumpQueued) return;
      this.pumpQueued = true;
      setImmediate(() => {
        this.pumpQueued = false;
        this.pump();
      });
      return;
    }
    const at = this.now() + delayMs;
    if (this.timer && this.timerAtMs <= at) return;
    if (this.timer) clearTimeout(this.timer);
    this.timerAtMs = at;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.timerAtMs = Infinity;
      this.pump();
    }, delayMs);
  }

  private pump(): void {
    if (this.stopping) return;
    try {
      this.pumpOnce();
    } catch (err) {
      // A store error (disk full, closed under us): log it and look again later rather than stop delivering.
      this.log.error({ err }, 'output scheduling failed; trying again');
      this.schedulePump(1000);
    }
  }

  private pumpOnce(): void {
    const now = this.now();
    const lastId = this.source.lastId();
    this.noteLastId(lastId, now);
    const blockedMs = Math.max(this.blockedUntilMs - now, this.throttle.waitMs(now));
    if (blockedMs > 0) {
      this.schedulePump(blockedMs);
      return;
    }
    if (!this.connected) {
      this.connect();
      return;
    }
    const failing = this.failures > 0;
    if (failing) this.moveBoundary(now, lastId);
    else {
      // Records waiting behind a slow live request count too: moving them to the backfill gives them its slots.
      const waitingMs = this.liveWaitingMs(now, lastId);
      if (waitingMs > this.settings.liveLagMs) this.fallBehind(now, lastId, waitingMs);
    }
    let wakeMs = this.settings.pollMs;
    // While failing, one probe at a time, and the probe is the oldest backlog: when the upstream comes
    // back, the backlog is delivered oldest first and the live lane starts from fresh records.
    const lanes: Lane[] = failing ? ['backfill', 'live'] : ['live', 'backfill'];
    for (const lane of lanes) {
      for (;;) {
        if (failing && this.inflight.size > 0) break;
        const limit = this.aimd.concurrency + (lane === 'live' ? 1 : 0);
        if (this.inflight.size >= limit) {
          // Every slot busy: the next request is made ready while they are out.
          if (lane === 'backfill') this.prepareAhead(lane);
          break;
        }
        const wait = lane === 'live' ? this.launchLive(now, lastId) : this.launchBackfill(now);
        if (wait === 0) continue;
        if (wait !== null) wakeMs = Math.min(wakeMs, wait);
        // Nothing to launch but the lane's series are out: their next records are made ready behind them.
        if (this.busy[lane].size > 0) this.prepareAhead(lane);
        break;
      }
    }
    // Records wait for the live lane: look again when they are due, unless every slot it may use is busy
    // (a request that completes looks again anyway).
    if (this.livePendingSinceMs !== null && this.inflight.size <= this.aimd.concurrency) {
      wakeMs = Math.min(wakeMs, Math.max(1, this.livePendingSinceMs + this.settings.flushIntervalMs - now));
    }
    this.schedulePump(wakeMs);
  }

  /** Launches one live request if one is due. Returns 0 if launched, else ms until worth asking again (null: no opinion). */
  private launchLive(now: number, lastId: number): number | null {
    if (this.launchPrepared('live')) return 0;
    if (!this.liveDue(now)) return null;
    const maxPoints = this.leasePoints();
    const lease = this.source.lease({ maxPoints, minId: this.boundary + 1, skipSeries: this.skipFor('live') });
    if (lease === null) {
      // Drained up to lastId, except series that were busy: look again when a request completes. Only an
      // empty answer says so: a lease is whole chunks, so one short of maxPoints may just have stopped
      // before a chunk that did not fit, with committed records behind it that no new id would wake.
      this.liveScannedId = lastId;
      this.livePendingSinceMs = null;
      this.liveRecheck = this.busy.live.size > 0;
      return null;
    }
    const ageMs = now - this.clock.seenAt(lease.minId, now);
    if (ageMs > this.settings.liveLagMs && this.failures === 0 && this.fallBehind(now, lastId, ageMs)) {
      this.source.release(lease);
      return 0;
    }
    this.launch(lease, 'live');
    return 0;
  }

  /** A live request is worth sending: its batch is full, its oldest record waited flush_interval, or a request freed its series. */
  private liveDue(now: number): boolean {
    return (
      this.liveRecheck ||
      (this.livePendingSinceMs !== null &&
        (now - this.livePendingSinceMs >= this.settings.flushIntervalMs || this.source.pointsAfter(this.liveScannedId) >= this.aimd.batchPoints))
    );
  }

  private launchBackfill(now: number): number | null {
    if (this.launchPrepared('backfill')) return 0;
    if (this.rate) {
      const wait = this.rate.waitMs(now);
      if (wait > 0) return wait;
    }
    const lease = this.source.lease({ maxPoints: this.leasePoints(), maxId: this.boundary, skipSeries: this.skipFor('backfill') });
    if (lease === null) return null;
    this.rate?.take(lease.batch.points, now);
    this.launch(lease, 'backfill');
    return 0;
  }

  /** What a fresh lease of the lane passes over: its series in flight, and those of its prepared request (older records go first). */
  private skipFor(lane: Lane): ReadonlySet<string> {
    const prepared = this.prepared[lane];
    if (prepared === null) return this.busy[lane];
    return new Set([...this.busy[lane], ...prepared.lease.series]);
  }

  /** Sends the lane's prepared request if the lane has a slot and none of its series is still in flight. */
  private launchPrepared(lane: Lane): boolean {
    const prepared = this.prepared[lane];
    if (prepared === null || this.stopping || this.failures > 0) return false;
    if (this.inflight.size >= this.aimd.concurrency + (lane === 'live' ? 1 : 0)) return false;
    for (const s of prepared.lease.series) if (this.busy[lane].has(s)) return false;
    this.prepared[lane] = null;
    this.launch(prepared.lease, lane, prepared.encoded);
    return true;
  }

  /** Leases and encodes the lane's next request in the next turn of the event loop, so the request just launched is on the wire first. */
  private prepareAhead(lane: Lane): void {
    if (this.failures > 0 || this.prepared[lane] !== null || this.preparing[lane]) return;
    this.preparing[lane] = true;
    setImmediate(() => {
      this.preparing[lane] = false;
      if (this.stopping || this.failures > 0 || this.prepared[lane] !== null) return;
      try {
        this.prepare(lane, this.now());
      } catch (err) {
        this.log.error({ err }, 'could not prepare the next request');
      }
    });
  }

  private prepare(lane: Lane, now: number): void {
    const bounds = lane === 'live' ? { minId: this.boundary + 1 } : { maxId: this.boundary };
    if (lane === 'live' && !this.liveDue(now)) return;
    if (lane === 'backfill' && this.rate && this.rate.waitMs(now) > 0) return;
    const request = { maxPoints: this.leasePoints(), ...bounds };
    // Series that are free first (their request can go at once); else the next records of a busy one.
    const lease = this.source.lease({ ...request, skipSeries: this.busy[lane] }) ?? (this.busy[lane].size > 0 ? this.source.lease({ ...request, skipSeries: NO_SERIES }) : null);
    if (lease === null) return;
    if (lane === 'backfill') this.rate?.take(lease.batch.points, now);
    let encoded: unknown;
    try {
      // A lease larger than a request is cut up by deliver(), which then encodes the pieces itself.
      if (lease.batch.points <= this.aimd.batchPoints) encoded = this.opts.output.encode?.(lease.batch);
    } catch (err) {
      this.log.debug({ err }, 'encoding ahead failed; the request will encode again');
    }
    this.prepared[lane] = { lease, encoded };
    // A slot may have freed while this was leased.
    if (this.launchPrepared(lane)) this.schedulePump(0);
  }

  /** Gives the prepared requests back (a request failed, the output stops, or the live lane starts afresh). */
  private dropPrepared(lanes: readonly Lane[] = ['live', 'backfill']): void {
    for (const lane of lanes) {
      const prepared = this.prepared[lane];
      if (prepared === null) continue;
      this.prepared[lane] = null;
      try {
        this.source.release(prepared.lease);
        if (lane === 'backfill') this.rate?.refund(prepared.lease.batch.points);
        else this.liveRecheck = true;
      } catch (err) {
        this.log.error({ err }, 'could not release a lease');
      }
    }
  }

  private leasePoints(): number {
    return this.failures > 0 ? Math.min(this.aimd.batchPoints, PROBE_POINTS) : this.aimd.batchPoints;
  }

  // ------------------------------------------------------------------------------------ lanes

  private noteLastId(lastId: number, now: number): void {
    if (this.clock.note(lastId, now)) this.livePendingSinceMs ??= now;
  }

  /** How far the live lane is behind: the age of its oldest record not delivered, waiting or in flight. */
  private liveLagMs(now: number): number {
    let oldestMs = this.livePendingSinceMs ?? now;
    for (const job of this.inflight) if (job.lane === 'live') oldestMs = Math.min(oldestMs, this.clock.seenAt(job.lease.minId, now));
    const prepared = this.prepared.live;
    if (prepared !== null) oldestMs = Math.min(oldestMs, this.clock.seenAt(prepared.lease.minId, now));
    return Math.max(0, now - oldestMs);
  }

  /**
   * The live lane fell behind (the upstream is slower than the inputs, or every slot was busy): what it
   * holds becomes backlog, and it starts again from fresh records. Checked at each lease and each pump,
   * so the lag never grows much past liveLagMs while the upstream accepts writes.
   */
  private fallBehind(now: number, lastId: number, lagMs: number): boolean {
    if (!this.moveBoundary(now, lastId)) return false;
    this.dropPrepared(['live']);
    this.livePendingSinceMs = this.boundary < lastId ? this.clock.seenAt(this.boundary + 1, now) : null;
    this.log.info({ lag_ms: lagMs }, 'live data is falling behind; older records move to the backfill');
    return true;
  }

  /** Age of the oldest live record not in a request (those of busy series follow the requests in flight). */
  private liveWaitingMs(now: number, lastId: number): number {
    let oldestMs = this.livePendingSinceMs ?? now;
    let inflightMaxId = Infinity;
    for (const job of this.inflight) if (job.lane === 'live') inflightMaxId = Math.min(inflightMaxId, job.lease.maxId);
    if (inflightMaxId < lastId) oldestMs = Math.min(oldestMs, this.clock.seenAt(inflightMaxId + 1, now));
    return Math.max(0, now - oldestMs);
  }

  /** Moves the live mark up to what was written liveWindowMs ago: older records become backlog. Returns whether it moved. */
  private moveBoundary(now: number, lastId: number): boolean {
    const target = Math.max(this.boundary, this.clock.seenBefore(now - this.settings.liveWindowMs, lastId));
    if (target <= this.boundary) return false;
    this.boundary = target;
    this.liveScannedId = Math.max(this.liveScannedId, target);
    this.source.setLiveMark(target);
    return true;
  }

  // ------------------------------------------------------------------------------------ requests

  private launch(lease: SourceLease, lane: Lane, encoded?: unknown): void {
    for (const s of lease.series) this.busy[lane].add(s);
    const job: Job = { lease, lane, encoded, abort: new AbortController(), done: Promise.resolve() };
    this.inflight.add(job);
    job.done = this.run(job);
  }

  private async run(job: Job): Promise<void> {
    try {
      const rejected = await this.deliver(job);
      this.settles.push(job.lease, rejected);
      this.counters.sentPoints += job.lease.batch.points - rejected;
      this.counters.rejectedPoints += rejected;
      this.counters.lastSuccessMs = this.now();
      this.onSuccess();
      this.opts.onDelivered?.({ lane: job.lane, points: job.lease.batch.points, rejectedPoints: rejected });
    } catch (err) {
      this.safeRelease(job);
      if (!this.stopping) this.onFailure(asOutputError(err), job.lane);
    } finally {
      this.inflight.delete(job);
      for (const s of job.lease.series) this.busy[job.lane].delete(s);
      // What waited behind this request goes now, not a turn of the event loop later.
      this.launchPrepared(job.lane);
      this.schedulePump(0);
    }
  }

  private safeRelease(job: Job): void {
    try {
      this.source.release(job.lease);
      if (job.lane === 'backfill') this.rate?.refund(job.lease.batch.points);
      if (job.lane === 'live') this.liveRecheck = true;
    } catch (err) {
      this.log.error({ err }, 'could not release a lease');
    }
  }

  /** Sends a lease, in as many requests as splitting and rejects need. Returns the points refused for good. */
  private async deliver(job: Job): Promise<number> {
    const queue: OutputBatch[] = [job.lease.batch];
    let rejected = 0;
    while (queue.length > 0) {
      const batch = queue.shift()!;
      if (batch.points === 0) continue;
      // A lease is whole chunks; a request holds at most the current (adaptive) batch size.
      if (batch.points > this.aimd.batchPoints && batch.points > 1) {
        queue.unshift(...halve(batch));
        continue;
      }
      if (job.abort.signal.aborted) throw new OutputError('output stopping', 'retry');
      // Every request, also the second half of a split or the rest after a reject, waits out a
      // Retry-After that arrived while this job was busy.
      try {
        await this.throttle.pass(job.abort.signal);
      } catch {
        throw new OutputError('output stopping', 'retry');
      }
      const startedMs = this.now();
      try {
        const result = await this.request(batch, job.abort.signal, batch === job.lease.batch ? job.encoded : undefined);
        const latencyMs = this.now() - startedMs;
        this.counters.lastLatencyMs = latencyMs;
        this.counters.latencyMs = this.counters.latencyMs === null ? latencyMs : this.counters.latencyMs * 0.8 + latencyMs * 0.2;
        this.counters.sentBytes += result.bytes;
        if (job.lane === 'backfill') this.aimd.onSuccess(latencyMs, batch.points);
        rejected += Math.min(batch.points, Math.max(0, result.rejectedPoints));
        if (result.rejectedPoints > 0) this.noteRejects(result.rejectedPoints, 'dropped by the upstream (partial write)');
      } catch (err) {
        const e = asOutputError(err);
        // Closed before anything else runs, so no lane starts a request inside the window.
        if (e.details.retryAfterMs !== undefined) this.throttle.hold(this.now(), Math.min(e.details.retryAfterMs, this.settings.retry.maxRetryAfterMs ?? DEFAULT_RETRY.maxRetryAfterMs));
        if (this.stopping) throw e;
        if (e.category === 'split') {
          this.counters.splits++;
          this.aimd.onTooLarge(batch.points);
          if (batch.points > 1) queue.unshift(...halve(batch));
          else {
            rejected += 1;
            this.noteRejects(1, `a single point is too large for the upstream: ${e.message}`, refuse(this.source, batch, e, this.log, 'too_large'));
          }
          continue;
        }
        if (e.category === 'reject') {
          const rest = e.details.rejected?.length ? without(batch, e.details.rejected) : batch;
          if (rest.points < batch.points) {
            rejected += batch.points - rest.points;
            this.noteRejects(batch.points - rest.points, e.message, refuse(this.source, only(batch, e.details.rejected ?? []), e, this.log));
            queue.unshift(rest);
          } else if (batch.points > 1) {
            // The upstream did not say which points: bisect until it does, or until single points remain.
            queue.unshift(...halve(batch));
          } else {
            rejected += 1;
            this.noteRejects(1, e.message, refuse(this.source, batch, e, this.log));
          }
          continue;
        }
        throw e;
      }
    }
    return rejected;
  }

  private request(batch: OutputBatch, jobSignal: AbortSignal, encoded: unknown): Promise<{ rejectedPoints: number; bytes: number }> {
    this.counters.requests++;
    return withTimeout((signal) => this.opts.output.write(batch, signal, encoded), jobSignal, this.settings.timeoutMs);
  }

  private connect(): void {
    if (this.connecting) return;
    this.connecting = true;
    const ctrl = new AbortController();
    const timer = setTimeout(() => ctrl.abort(new Error('connect timeout')), this.settings.timeoutMs);
    void this.opts.output
      .connect(ctrl.signal)
      .then(
        () => {
          this.connected = true;
        },
        (err: unknown) => {
          if (!this.stopping) this.onFailure(asOutputError(err), null);
        },
      )
      .finally(() => {
        clearTimeout(timer);
        this.connecting = false;
        this.schedulePump(0);
      });
  }

  // ------------------------------------------------------------------------------------ outcomes

  private onSuccess(): void {
    this.retry.success();
    if (this.failures > 0 || this.counters.paused !== null) {
      const downMs = this.failingSinceMs === null ? 0 : this.now() - this.failingSinceMs;
      let backlog: number | undefined;
      try {
        backlog = this.source.status().backlog_points;
      } catch {
        backlog = undefined;
      }
      this.log.info({ down_ms: downMs, backlog_points: backlog }, 'upstream accepts writes again; backfilling the backlog behind live data');
    }
    this.failures = 0;
    this.failingSinceMs = null;
    this.blockedUntilMs = 0;
    this.counters.paused = null;
  }

  private onFailure(e: OutputError, lane: Lane | null): void {
    const now = this.now();
    this.failures++;
    this.dropPrepared();
    this.counters.lastError = e.message;
    this.counters.lastErrorMs = now;
    let delayMs: number;
    switch (e.category) {
      case 'auth':
      case 'fatal':
        this.counters.paused = e.category;
        this.connected = false;
        delayMs = this.settings.pausedRetryMs;
        break;
      case 'throttle':
        this.counters.throttles++;
        this.aimd.onThrottle();
        delayMs = this.retry.nextDelay(e, this.failures);
        break;
      default:
        this.counters.retries++;
        if (e.details.timeout) this.aimd.onTimeout();
        else if (!e.details.unreached) this.aimd.onThrottle();
        delayMs = this.retry.nextDelay(e, this.failures);
    }
    this.blockedUntilMs = Math.max(this.blockedUntilMs, now + delayMs);
    this.outcomes.failure(e, { lane, retryInMs: delayMs, failingSinceMs: this.failingSinceMs, attempts: this.failures }, now);
    this.failingSinceMs ??= now;
  }

  private noteRejects(points: number, reason: string, quarantined = 0): void {
    this.outcomes.rejects(points, reason, this.now(), quarantined);
  }
}
