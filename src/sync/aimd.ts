// Adaptive concurrency and batch size: additive increase while the upstream keeps up, multiplicative
// decrease when it pushes back (throttling, timeouts, 5xx) or its latency climbs. The same idea as
// TCP congestion control and Vector's adaptive request concurrency, small enough to read in one go.
// Pure: the engine feeds it outcomes and reads `concurrency` and `batchPoints`.

export interface AimdOptions {
  /** Upper bound of requests in flight for the backlog. */
  maxConcurrency: number;
  /** Configured batch size: the ceiling batches grow back to. */
  maxBatchPoints: number;
  /** Smallest batch the controller shrinks to on timeouts (a 413 may go lower: the upstream said so). */
  minBatchPoints: number;
  /** Request timeout: a request slower than half of it is a congestion signal. */
  timeoutMs: number;
  /** A request slower than this multiple of the latency baseline is a congestion signal. */
  latencyTolerance: number;
  /**
   * Where the limit starts. 2 by default: with two requests in flight, preparing one (reading the ring,
   * serializing) overlaps the upstream's work on the other, which is most of a backfill's speed; the
   * limit still drops to 1 as soon as the upstream pushes back.
   */
  initialConcurrency?: number;
}

export class Aimd {
  private limit: number;
  private batch: number;
  /** Largest batch the upstream accepted since it last answered 413; bounds the additive growth. */
  private batchCeiling: number;
  /** Smoothed latency per request of a full-size batch, ms; the "no congestion" reference. */
  private baselineMs: number | null = null;

  constructor(private readonly opts: AimdOptions) {
    this.limit = Math.max(1, Math.min(opts.maxConcurrency, opts.initialConcurrency ?? 2));
    this.batch = opts.maxBatchPoints;
    this.batchCeiling = opts.maxBatchPoints;
  }

  get concurrency(): number {
    return Math.max(1, Math.floor(this.limit));
  }

  get batchPoints(): number {
    return Math.max(1, Math.floor(this.batch));
  }

  /** A delivered request of `points` points that took `latencyMs`. */
  onSuccess(latencyMs: number, points: number): void {
    // Latency grows with the batch; scale small batches up so live trickles do not drag the baseline down.
    const scaled = latencyMs * Math.max(1, this.batchPoints / Math.max(1, points)) ** 0.5;
    const congested =
      latencyMs > this.opts.timeoutMs / 2 || (this.baselineMs !== null && scaled > this.baselineMs * this.opts.latencyTolerance);
    if (congested) {
      this.limit = Math.max(1, this.limit * 0.75);
      // The baseline follows slowly, so a lasting change of the upstream becomes the new normal.
      this.baselineMs = this.baselineMs === null ? scaled : this.baselineMs * 0.95 + scaled * 0.05;
      return;
    }
    this.baselineMs = this.baselineMs === null ? scaled : this.baselineMs * 0.8 + scaled * 0.2;
    // +1 per round trip of the whole window: each success adds 1/limit.
    this.limit = Math.min(this.opts.maxConcurrency, this.limit + 1 / this.limit);
    if (this.batch < this.batchCeiling) this.batch = Math.min(this.batchCeiling, this.batch + Math.max(1, this.opts.maxBatchPoints / 10));
  }

  /** 429/503 or a 5xx: the upstream is overloaded. */
  onThrottle(): void {
    this.limit = Math.max(1, this.limit / 2);
  }

  /** A timeout: fewer and smaller requests. */
  onTimeout(): void {
    this.limit = Math.max(1, this.limit / 2);
    this.batch = Math.max(this.opts.minBatchPoints, this.batch / 2);
  }

  /** A 413 for a request of `points` points: never send that many again (until restart). */
  onTooLarge(points: number): void {
    this.batchCeiling = Math.max(1, Math.min(this.batchCeiling, Math.floor(points / 2)));
    this.batch = Math.min(this.batch, this.batchCeiling);
  }
}
