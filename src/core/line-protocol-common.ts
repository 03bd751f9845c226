// What the line-protocol parser (line-protocol.ts) and writer (line-protocol-write.ts) share. Pure.
import type { Precision } from './time.js';

/** The exact µs range of a double; wider than any sensor needs and narrower than InfluxDB's int64 ns. */
export const MAX_TIME_US = Number.MAX_SAFE_INTEGER;
export const MIN_TIME_US = -Number.MAX_SAFE_INTEGER;

// Character codes.
export const BACKSLASH = 92;
export const COMMA = 44;
export const SPACE = 32;
export const EQUALS = 61;
export const QUOTE = 34;
export const HASH = 35;
export const TAB = 9;
export const NUL = 0;
export const CR = 13;
export const LF = 10;

/** C0 controls and DEL: InfluxDB 2's reference refuses them in measurements, tag keys and field keys. */
export function isControl(c: number): boolean {
  return c < SPACE || c === 127;
}

/** A property write that also works for the key `__proto__` (which `o[k] = v` would swallow). */
export function setProp(o: Record<string, unknown>, k: string, v: unknown): void {
  if (k === '__proto__') Object.defineProperty(o, k, { value: v, writable: true, enumerable: true, configurable: true });
  else o[k] = v;
}

/** Floors µs to whole units (exact: % and a division of a multiple are exact on integers below 2^53). */
export function floorDiv(us: number, unit: number): number {
  const r = us % unit;
  const q = (us - r) / unit;
  return r < 0 ? q - 1 : q;
}

export function unitUs(precision: Precision): number {
  return precision === 's' ? 1_000_000 : precision === 'ms' ? 1000 : 1;
}
