// Pacing for the mqtt input: warnings that cannot flood the log. (Its backoffs are src/core/backoff.ts.)
import type { Logger } from '../../src/core/component.js';

/**
 * One warning line per interval at most: the first occurrence at once, later ones counted and summed
 * up when the interval ends, so a device spewing garbage costs one line a minute.
 */
export class RateLimitedWarning {
  private lastMs = -Infinity;
  private suppressed = 0;
  private lastDetails: Record<string, unknown> = {};
  private timer: NodeJS.Timeout | undefined;
  constructor(
    private readonly log: Logger,
    private readonly message: string,
    private readonly intervalMs: number,
  ) {}

  report(details: Record<string, unknown>): void {
    const now = Date.now();
    if (now - this.lastMs >= this.intervalMs) {
      this.lastMs = now;
      this.log.warn(details, this.message);
      return;
    }
    this.suppressed++;
    this.lastDetails = details;
    if (!this.timer) {
      this.timer = setTimeout(() => this.summarize(), this.lastMs + this.intervalMs - now);
      this.timer.unref();
    }
  }

  private summarize(): void {
    this.timer = undefined;
    if (this.suppressed === 0) return;
    this.log.warn({ ...this.lastDetails, count: this.suppressed, interval_ms: this.intervalMs }, `${this.message} (${this.suppressed} more; the last one here)`);
    this.suppressed = 0;
    this.lastMs = Date.now();
  }

  close(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.summarize();
  }
}
