// Timestamp precisions and conversions between them and the internal microseconds.

export type Precision = 'ns' | 'us' | 'ms' | 's';
export const PRECISIONS: readonly Precision[] = ['ns', 'us', 'ms', 's'];

/** Microseconds per unit of each precision; ns is handled by truncating its last three digits. */
export const US_PER: Record<Exclude<Precision, 'ns'>, number> = { us: 1, ms: 1000, s: 1_000_000 };

export function msToUs(ms: number): number {
  return ms * 1000;
}

/** Floors to whole milliseconds (floor, not trunc, so pre-1970 times stay ordered). */
export function usToMs(us: number): number {
  return Math.floor(us / 1000);
}

export function nowUs(): number {
  return Date.now() * 1000;
}

/**
 * Times of receipt in µs for inputs whose messages carry no time: the wall clock's ms, with the µs
 * digits counting receipts within one ms (up to 999), so two readings of one series received in the
 * same ms are not stored as one point.
 */
export class ReceiptClock {
  private lastMs = -1;
  private seq = 0;

  nowUs(): number {
    const ms = Date.now();
    if (ms === this.lastMs) this.seq = Math.min(this.seq + 1, 999);
    else {
      this.lastMs = ms;
      this.seq = 0;
    }
    return ms * 1000 + this.seq;
  }
}
