// Per-field deadband with a heartbeat. Pure.
import { Unsigned, type FieldValue } from '../../src/core/point.js';

function asNumber(v: FieldValue): number | undefined {
  if (typeof v === 'number') return v;
  if (typeof v === 'bigint') return Number(v);
  if (v instanceof Unsigned) return Number(v.value);
  return undefined;
}

/**
 * Keeps a value only when it moved by more than `deadband` since the last value kept, or when
 * `heartbeatMs` passed since then, so a flat line is still stored now and then and silence never looks
 * like loss. Booleans and strings are kept whenever they change. The reference is the last value kept,
 * not the last one read, so a slow drift is stored once it adds up to more than the deadband.
 */
export class Deadband {
  private last: { value: FieldValue; timeMs: number } | undefined;

  constructor(
    private readonly deadband: number,
    private readonly heartbeatMs: number,
  ) {}

  admit(value: FieldValue, timeMs: number): boolean {
    const last = this.last;
    if (!last || timeMs - last.timeMs >= this.heartbeatMs || this.moved(last.value, value)) {
      this.last = { value, timeMs };
      return true;
    }
    return false;
  }

  private moved(before: FieldValue, now: FieldValue): boolean {
    if (typeof before === 'bigint' && typeof now === 'bigint') {
      const diff = now > before ? now - before : before - now;
      return Number(diff) > this.deadband;
    }
    const a = asNumber(before);
    const b = asNumber(now);
    if (a === undefined || b === undefined) return before !== now;
    if (Number.isNaN(a) || Number.isNaN(b)) return Number.isNaN(a) !== Number.isNaN(b);
    if (a === b) return false; // also equal infinities
    return Math.abs(b - a) > this.deadband;
  }
}
