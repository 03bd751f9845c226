// The one log throttle of the project: a message that can repeat (a device spewing garbage, a store
// that keeps refusing, an upstream that keeps rejecting) costs at most one line per interval, and
// the line says how many were held back. Drivers and the sync engine take their quiet logging from
// here; the clock is passed in, so the engine's injected clock and the tests' fixed ones work alike.
import type { Logger } from './component.js';

export class LogThrottle {
  private lastMs = -Infinity;
  private heldBack = 0;

  constructor(private readonly everyMs: number) {}

  /** undefined: stay quiet (counted as held back); a number: log now, that many were held back since the last line. */
  pass(nowMs: number): number | undefined {
    if (nowMs - this.lastMs < this.everyMs) {
      this.heldBack++;
      return undefined;
    }
    this.lastMs = nowMs;
    const held = this.heldBack;
    this.heldBack = 0;
    return held;
  }

  /** Lines held back since the last one passed. */
  get held(): number {
    return this.heldBack;
  }

  /** When the current interval ends (the next line may pass then). */
  get nextPassMs(): number {
    return this.lastMs + this.everyMs;
  }

  /** Counts the held-back lines as reported (a summary line said them) and starts a new interval at `nowMs`. */
  summarized(nowMs: number): number {
    const held = this.heldBack;
    this.heldBack = 0;
    this.lastMs = nowMs;
    return held;
  }
}

/**
 * A warning on a LogThrottle that also sums up: the first occurrence is logged at once, later ones
 * within the interval are counted and said in one line when the interval ends (with the details of
 * the last one), so a burst is never silent until the next occurrence, which may never come.
 */
export class ThrottledWarning {
  private readonly throttle: LogThrottle;
  private lastDetails: Record<string, unknown> = {};
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly log: Logger,
    private readonly message: string,
    private readonly everyMs: number,
  ) {
    this.throttle = new LogThrottle(everyMs);
  }

  report(details: Record<string, unknown>): void {
    const now = Date.now();
    if (this.throttle.pass(now) !== undefined) {
      this.log.warn(details, this.message);
      return;
    }
    this.lastDetails = details;
    if (!this.timer) {
      this.timer = setTimeout(() => this.summarize(), Math.max(0, this.throttle.nextPassMs - now));
      this.timer.unref();
    }
  }

  private summarize(): void {
    this.timer = undefined;
    if (this.throttle.held === 0) return;
    const count = this.throttle.summarized(Date.now());
    this.log.warn({ ...this.lastDetails, count, interval_ms: this.everyMs }, `${this.message} (${count} more; the last one here)`);
  }

  /** Says what is held back now and stops the timer (the owner stops). */
  close(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.summarize();
  }
}
