// Backoff as a small object, the shape of influxdb-client-js's RetryDelayStrategy: the engine asks
// nextDelay() after each failed request and calls success() after a delivered one. The curve is the
// project's one backoff (src/core/backoff.ts); what is the engine's own is Retry-After and the short
// cap for an upstream that was never reached.
import { backoffDelayMs } from '../core/backoff.js';
import type { OutputError } from '../core/component.js';

export interface RetryStrategy {
  /** Milliseconds to wait before the next attempt; `failedAttempts` counts from 1. */
  nextDelay(error: OutputError, failedAttempts: number): number;
  /** Resets after a delivered request. */
  success(): void;
}

export interface ExponentialRetryOptions {
  /** First delay. */
  minDelayMs: number;
  /** Longest delay for failures that reached the upstream (5xx, timeouts, resets). */
  maxDelayMs: number;
  /**
   * Longest delay when the request never reached the upstream (connection refused, no route): a probe
   * then costs the upstream nothing, and a short cap is what lets live data flow within seconds of
   * the link coming back.
   */
  maxUnreachedDelayMs: number;
  /** Growth per failure. */
  factor: number;
  /** Spread of each delay: ±jitter × delay, so a fleet that lost the same uplink does not return in step. */
  jitter: number;
  /** Retry-After values above this are capped (a misconfigured proxy must not park a gateway for days). */
  maxRetryAfterMs: number;
  random?: () => number;
}

export const DEFAULT_RETRY: ExponentialRetryOptions = {
  minDelayMs: 250,
  maxDelayMs: 30_000,
  maxUnreachedDelayMs: 1_000,
  factor: 2,
  jitter: 0.2,
  maxRetryAfterMs: 10 * 60_000,
};

export class ExponentialRetry implements RetryStrategy {
  private readonly opts: ExponentialRetryOptions;
  private readonly random: () => number;

  constructor(options: Partial<ExponentialRetryOptions> = {}) {
    this.opts = { ...DEFAULT_RETRY, ...options };
    this.random = options.random ?? Math.random;
  }

  nextDelay(error: OutputError, failedAttempts: number): number {
    const retryAfter = error.details.retryAfterMs;
    if (retryAfter !== undefined) {
      // The upstream said how long: at least that, never less, plus a little spread.
      const wait = Math.min(retryAfter, this.opts.maxRetryAfterMs);
      return Math.ceil(wait + wait * this.opts.jitter * this.random() * 0.5);
    }
    const maxMs = error.details.unreached ? this.opts.maxUnreachedDelayMs : this.opts.maxDelayMs;
    const curve = { minMs: this.opts.minDelayMs, maxMs, factor: this.opts.factor, jitter: this.opts.jitter, spreadAboveMax: true };
    return Math.max(1, backoffDelayMs(curve, failedAttempts - 1, this.random));
  }

  success(): void {
    // Stateless: the engine counts attempts. Kept for the RetryDelayStrategy shape.
  }
}
