// The one backoff of the project: exponential, capped, with jitter so that many gateways (or many
// inputs of one) that lost their peer together do not retry in lockstep. The shape of
// influxdb-client-js's RetryDelayStrategy: ask for the next delay after a failure, reset after a
// success. Reconnects of inputs and the sync engine's retries all take their delays from here.

export interface BackoffOptions {
  /** First delay after a success. */
  minMs: number;
  /** Longest delay: the most a device that came back waits to be noticed. */
  maxMs: number;
  /** Delays are spread over ±jitter of their nominal value (0…1, default 0.2). */
  jitter?: number;
  /** Source of randomness in [0, 1) (tests pass a fixed one). */
  random?: () => number;
}

export class Backoff {
  private failures = 0;
  private readonly jitter: number;
  private readonly random: () => number;

  constructor(private readonly options: BackoffOptions) {
    this.jitter = options.jitter ?? 0.2;
    this.random = options.random ?? Math.random;
  }

  /** The delay before the next attempt; each call counts one more failure. */
  nextDelayMs(): number {
    const nominal = Math.min(this.options.maxMs, this.options.minMs * 2 ** Math.min(this.failures, 30));
    this.failures++;
    const spread = nominal * this.jitter * (2 * this.random() - 1);
    return Math.max(0, Math.min(this.options.maxMs, Math.round(nominal + spread)));
  }

  reset(): void {
    this.failures = 0;
  }
}
