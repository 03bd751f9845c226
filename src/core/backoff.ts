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

/** The curve itself, for callers that count attempts themselves (the sync engine counts its failures). */
export interface DelayCurve {
  minMs: number;
  maxMs: number;
  /** Growth per failure (default 2). */
  factor?: number;
  /** Spread over ±jitter of the nominal delay (default 0.2). */
  jitter?: number;
  /**
   * Whether the spread may take a delay above maxMs. The sync engine's retries do: a fleet whose
   * uplink has been down for an hour sits at the cap, and without spread there it would return in step.
   */
  spreadAboveMax?: boolean;
}

/** The delay after `failures` failures in a row (0: the first retry), with jitter from `random` in [0, 1). */
export function backoffDelayMs(curve: DelayCurve, failures: number, random: () => number): number {
  const jitter = curve.jitter ?? 0.2;
  const nominal = Math.min(curve.maxMs, curve.minMs * (curve.factor ?? 2) ** Math.min(Math.max(0, failures), 60));
  const spread = nominal * jitter * (2 * random() - 1);
  const ceiling = curve.spreadAboveMax ? curve.maxMs * (1 + jitter) : curve.maxMs;
  return Math.max(0, Math.round(Math.min(ceiling, nominal + spread)));
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
    return backoffDelayMs({ minMs: this.options.minMs, maxMs: this.options.maxMs, jitter: this.jitter }, this.failures++, this.random);
  }

  reset(): void {
    this.failures = 0;
  }
}
