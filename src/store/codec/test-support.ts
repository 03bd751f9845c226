// Helpers shared by the codec's tests: a seeded PRNG (so every failure reproduces from its seed)
// and bit-exact comparisons. Imported by *.test.ts only.
import type { Column, RowGroup } from '../../core/chunk.js';

/** sfc32: small, fast, and good enough for property tests; seeded from one integer. */
export class Random {
  private a: number;
  private b: number;
  private c: number;
  private d = 1;

  constructor(readonly seed: number) {
    this.a = seed | 0;
    this.b = (seed * 0x9e3779b9) | 0;
    this.c = (seed ^ 0x5bd1e995) | 0;
    for (let i = 0; i < 16; i++) this.u32();
  }

  u32(): number {
    const t = (((this.a + this.b) | 0) + this.d) | 0;
    this.d = (this.d + 1) | 0;
    this.a = this.b ^ (this.b >>> 9);
    this.b = (this.c + (this.c << 3)) | 0;
    this.c = (this.c << 21) | (this.c >>> 11);
    this.c = (this.c + t) | 0;
    return t >>> 0;
  }

  /** Uniform in [0, 1). */
  next(): number {
    return this.u32() / 4294967296;
  }

  /** Uniform integer in [min, max]. */
  int(min: number, max: number): number {
    return min + Math.floor(this.next() * (max - min + 1));
  }

  bool(pTrue = 0.5): boolean {
    return this.next() < pTrue;
  }

  pick<T>(items: readonly T[]): T {
    return items[Math.floor(this.next() * items.length)];
  }

  /** Roughly normal (sum of uniforms), mean 0, standard deviation 1. */
  gauss(): number {
    return this.next() + this.next() + this.next() + this.next() - 2;
  }
}

/** A float64 with the given bit pattern, written into `out[index]` through a uint32 view. */
export function setFloatBits(out: Float64Array, index: number, hi: number, lo: number): void {
  const bits = new Uint32Array(out.buffer, out.byteOffset, out.length * 2);
  bits[2 * index] = lo >>> 0;
  bits[2 * index + 1] = hi >>> 0;
}

/** Hex of the raw bytes: equal strings ⇔ bit-identical arrays (NaN payloads and -0 included). */
export function hexOf(values: Float64Array | BigInt64Array | BigUint64Array | Uint8Array): string {
  return Buffer.from(values.buffer, values.byteOffset, values.byteLength).toString('hex');
}

/** First index where two float arrays differ bitwise, or -1. */
export function firstBitDifference(a: Float64Array, b: Float64Array): number {
  if (a.length !== b.length) return Math.min(a.length, b.length);
  const x = new Uint32Array(a.buffer, a.byteOffset, a.length * 2);
  const y = new Uint32Array(b.buffer, b.byteOffset, b.length * 2);
  for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return i >> 1;
  return -1;
}

/** The presence map as decodeChunk returns it: null when every row is present, else 0/1 bytes. */
export function normalisedPresence(column: Column, rows: number): Uint8Array | null {
  if (column.present === null) return null;
  const out = Uint8Array.from(column.present, (p) => (p !== 0 ? 1 : 0));
  return out.every((p) => p === 1) && out.length === rows ? null : out;
}

/** A comparable, bit-exact description of a row group (floats and times as raw bytes). */
export function snapshotOf(group: RowGroup): unknown {
  const rows = group.timesUs.length;
  return {
    timesUs: hexOf(group.timesUs),
    columns: group.columns.map((c) => ({
      name: c.name,
      type: c.type,
      present: normalisedPresence(c, rows)?.join('') ?? null,
      values: c.type === 'string' ? c.values : c.type === 'boolean' ? Array.from(c.values, (v) => (v !== 0 ? 1 : 0)).join('') : hexOf(c.values),
    })),
  };
}
