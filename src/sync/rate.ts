// `max_rate` for the backfill: a token bucket in points. A lease may overdraw it (a batch is sent
// whole); the next lease then waits until the balance is back above zero, so the average holds.

export class RateLimiter {
  private tokens: number;
  private lastMs: number;

  /** `burstPoints`: what may go at once after an idle spell (at least one batch, at most a second's worth). */
  constructor(
    private readonly pointsPerS: number,
    private readonly burstPoints: number,
    nowMs: number,
  ) {
    this.tokens = burstPoints;
    this.lastMs = nowMs;
  }

  private refill(nowMs: number): void {
    const elapsed = Math.max(0, nowMs - this.lastMs);
    this.lastMs = nowMs;
    this.tokens = Math.min(this.burstPoints, this.tokens + (elapsed * this.pointsPerS) / 1000);
  }

  /** Milliseconds until a lease may be taken (0: now). */
  waitMs(nowMs: number): number {
    this.refill(nowMs);
    return this.tokens > 0 ? 0 : Math.ceil((-this.tokens * 1000) / this.pointsPerS) + 1;
  }

  take(points: number, nowMs: number): void {
    this.refill(nowMs);
    this.tokens -= points;
  }

  /** Gives back what a released lease did not send. */
  refund(points: number): void {
    this.tokens = Math.min(this.burstPoints, this.tokens + points);
  }
}
