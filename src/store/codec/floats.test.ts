import { describe, expect, it } from 'vitest';
import type { RowGroup } from '../../core/chunk.js';
import { decodeChunk, encodeChunk } from './index.js';
import { firstBitDifference, hexOf, Random, setFloatBits } from './test-support.js';

/** Bit patterns [hi, lo] of the values a float codec gets wrong first. */
const EDGE_BITS: readonly [number, number][] = [
  [0x7ff80000, 0], // canonical NaN
  [0x7ff80000, 1], // quiet NaN with a payload
  [0x7ff00000, 1], // signalling NaN
  [0xfff80000, 0xdeadbeef], // negative NaN with a payload
  [0xffffffff, 0xffffffff],
  [0x7ff00000, 0], // +Infinity
  [0xfff00000, 0], // -Infinity
  [0x80000000, 0], // -0
  [0, 0], // +0
  [0, 1], // smallest subnormal
  [0x000fffff, 0xffffffff], // largest subnormal
  [0x80000000, 1], // negative subnormal
  [0x7fefffff, 0xffffffff], // MAX_VALUE
  [0xffefffff, 0xffffffff], // -MAX_VALUE
  [0x00100000, 0], // smallest normal
];

const EDGE_NUMBERS = [2 ** 53 - 1, 2 ** 53, 2 ** 53 + 2, -(2 ** 53) - 2, 2 ** 63, 1e300, -1e-300, 0.1 + 0.2, 1 / 3, Number.EPSILON, 2 ** 50, 2 ** 50 - 1, -(2 ** 50)];

function edgeValues(rnd: Random, n: number): Float64Array {
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    if (rnd.bool()) out[i] = rnd.pick(EDGE_NUMBERS);
    else setFloatBits(out, i, ...rnd.pick(EDGE_BITS));
  }
  return out;
}

function walk(rnd: Random, n: number, step: number, decimals: number, start = 20): Float64Array {
  const p = 10 ** decimals;
  let x = Math.round(start * p);
  return Float64Array.from({ length: n }, () => (x += Math.round(rnd.gauss() * step * p)) / p);
}

const GENERATORS: Record<string, (rnd: Random, n: number) => Float64Array> = {
  'one-decimal random walk': (rnd, n) => walk(rnd, n, 0.3, 1),
  'three-decimal random walk around zero': (rnd, n) => walk(rnd, n, 0.05, 3, 0),
  'mixed decimals (4.0, 8.25, -0.7)': (rnd, n) => Float64Array.from({ length: n }, () => (rnd.bool(0.3) ? rnd.pick([4.0, 8.25, -0.7, 1023.5, 0.001]) : rnd.int(-99999, 99999) / 10 ** rnd.int(0, 4))),
  constant: (_rnd, n) => new Float64Array(n).fill(21.5),
  'constant NaN payload': (_rnd, n) => {
    const out = new Float64Array(n);
    for (let i = 0; i < n; i++) setFloatBits(out, i, 0x7ff80000, 0x1234);
    return out;
  },
  'edge values': edgeValues,
  'decimals with edge values mixed in': (rnd, n) => {
    const out = walk(rnd, n, 0.3, 1);
    const edges = edgeValues(rnd, n);
    const src = new Uint32Array(edges.buffer);
    const dst = new Uint32Array(out.buffer);
    for (let i = 0; i < n; i++) {
      if (rnd.bool(0.05)) {
        dst[2 * i] = src[2 * i];
        dst[2 * i + 1] = src[2 * i + 1];
      }
    }
    return out;
  },
  'random bit patterns': (rnd, n) => {
    const out = new Float64Array(n);
    for (let i = 0; i < n; i++) setFloatBits(out, i, rnd.u32(), rnd.u32());
    return out;
  },
  'float32 random walk': (rnd, n) => {
    let x = 100;
    return Float64Array.from({ length: n }, () => Math.fround((x += rnd.gauss() * 0.37)));
  },
  'float32 of one-decimal values (Modbus register)': (rnd, n) => Float64Array.from(walk(rnd, n, 0.2, 1), (v) => Math.fround(v)),
  'float32 with NaN': (rnd, n) => {
    const out = Float64Array.from({ length: n }, () => Math.fround(rnd.gauss() * 1000));
    setFloatBits(out, n - 1, 0x7ff80000, 7);
    return out;
  },
  'decimals off by a few ulp ("74.93588199999998")': (rnd, n) => {
    const out = walk(rnd, n, 0.4, 6, 74);
    const bits = new Uint32Array(out.buffer);
    for (let i = 0; i < n; i++) if (rnd.bool(0.5)) bits[2 * i] += rnd.int(-2, 2);
    return out;
  },
  'registers scaled by multiplication (raw * 0.1, raw * 0.01)': (rnd, n) => {
    let raw = 2000;
    const scale = rnd.pick([0.1, 0.01, 0.001]);
    return Float64Array.from({ length: n }, () => (raw += rnd.int(-3, 3)) * scale);
  },
  'interpolated thirds (-0.533333333333333)': (rnd, n) => Float64Array.from({ length: n }, () => rnd.int(-300, 300) / 3),
  'few distinct quantised levels': (rnd, n) => {
    const levels = [0.054711, 0.382638, -0.273216, 0.710565, -0.601143];
    return Float64Array.from({ length: n }, () => levels[Math.min(4, Math.floor(Math.abs(rnd.gauss()) * 3))]);
  },
  'few distinct values with -0 and +0': (rnd, n) => Float64Array.from({ length: n }, () => rnd.pick([0, -0, 1.5, -0, 0])),
  'few distinct values with NaN payloads': (rnd, n) => {
    const out = Float64Array.from({ length: n }, () => rnd.pick([1, 2, 3]));
    for (let i = 0; i < n; i += 7) setFloatBits(out, i, 0x7ff80000, rnd.int(1, 3));
    return out;
  },
  'huge integers around 2^53 and beyond': (rnd, n) => Float64Array.from({ length: n }, () => rnd.pick([2 ** 53, 2 ** 60, 1e20]) + rnd.int(-8, 8) * 2),
  subnormals: (rnd, n) => {
    const out = new Float64Array(n);
    for (let i = 0; i < n; i++) setFloatBits(out, i, rnd.u32() & 0x800fffff, rnd.u32());
    return out;
  },
  'smooth non-decimal doubles': (_rnd, n) => Float64Array.from({ length: n }, (_, i) => Math.sin(i / 50) * 1000),
  'signed zeros': (rnd, n) => Float64Array.from({ length: n }, () => (rnd.bool() ? 0 : -0)),
};

function groupOf(values: Float64Array, present: Uint8Array | null): RowGroup {
  const rows = present === null ? values.length : present.length;
  return {
    timesUs: Float64Array.from({ length: rows }, (_, i) => 1_700_000_000_000_000 + i * 1_000_000),
    columns: [{ name: 'v', type: 'float', values, present }],
  };
}

function decodedFloats(group: RowGroup): Float64Array {
  const column = decodeChunk(encodeChunk(group)).columns[0];
  if (column.type !== 'float') throw new Error('expected a float column');
  return column.values;
}

describe('float columns round-trip bit for bit', () => {
  for (const [name, generate] of Object.entries(GENERATORS)) {
    it(name, () => {
      for (let seed = 1; seed <= 4; seed++) {
        const rnd = new Random(seed * 1000 + name.length);
        for (const n of [1, 2, 3, 64, 127, 128, 129, 257, 1000, 4096]) {
          const values = generate(rnd, n);
          const decoded = decodedFloats(groupOf(values, null));
          const at = firstBitDifference(values, decoded);
          if (at !== -1) expect.fail(`seed ${seed}, n ${n}: value ${at} was ${values[at]} (${hexOf(values.subarray(at, at + 1))}), decoded ${decoded[at]}`);
        }
      }
    });
  }

  it('with random presence maps', () => {
    const rnd = new Random(99);
    const names = Object.keys(GENERATORS);
    for (let k = 0; k < 60; k++) {
      const rows = rnd.int(1, 2000);
      const density = rnd.pick([0.01, 0.3, 0.9, 0.999]);
      const present = Uint8Array.from({ length: rows }, () => (rnd.bool(density) ? 1 : 0));
      const count = present.reduce((a, b) => a + b, 0);
      const values = GENERATORS[rnd.pick(names)](rnd, count);
      const decoded = decodeChunk(encodeChunk(groupOf(values, present))).columns[0];
      expect(hexOf(decoded.values as Float64Array)).toBe(hexOf(values));
      if (count === rows) expect(decoded.present).toBeNull();
      else expect([...(decoded.present as Uint8Array)]).toEqual([...present]);
    }
  });
});

describe('float compression', () => {
  function bitsPerValue(values: Float64Array): number {
    const withColumn = encodeChunk(groupOf(values, null)).length;
    const without = encodeChunk({ ...groupOf(values, null), columns: [] }).length;
    return ((withColumn - without) * 8) / values.length;
  }

  it('stores a constant on a regular 1 s grid in under one bit per row, timestamps included', () => {
    const group = groupOf(new Float64Array(4096).fill(21.5), null);
    expect((encodeChunk(group).length * 8) / 4096).toBeLessThan(1);
  });

  it('stores a one-decimal temperature random walk well under 16 bits per value', () => {
    expect(bitsPerValue(walk(new Random(5), 4096, 0.3, 1))).toBeLessThan(8);
  });

  it('stores float32 readings that are not decimal in at most about 32 bits per value', () => {
    expect(bitsPerValue(GENERATORS['float32 random walk'](new Random(6), 4096))).toBeLessThanOrEqual(33);
  });

  it('stores float32 readings of decimal quantities like decimals', () => {
    expect(bitsPerValue(GENERATORS['float32 of one-decimal values (Modbus register)'](new Random(7), 4096))).toBeLessThan(8);
  });

  it('stores registers scaled as raw * 0.1 as cheaply as raw / 10', () => {
    const rnd = new Random(11);
    let raw = 2000;
    const registers = Array.from({ length: 4096 }, () => (raw += rnd.int(-3, 3)));
    const divided = bitsPerValue(Float64Array.from(registers, (r) => r / 10));
    expect(registers.some((r) => r * 0.1 !== r / 10)).toBe(true);
    expect(bitsPerValue(Float64Array.from(registers, (r) => r * 0.1))).toBeLessThan(divided + 0.2);
  });

  it('stores decimals a few ulp off their short form far below raw doubles', () => {
    expect(bitsPerValue(GENERATORS['decimals off by a few ulp ("74.93588199999998")'](new Random(8), 4096))).toBeLessThan(32);
  });

  it('stores a few quantised levels in a few bits per value', () => {
    expect(bitsPerValue(GENERATORS['few distinct quantised levels'](new Random(9), 4096))).toBeLessThan(4);
  });

  it('keeps a stray NaN or spike from costing more than a few dozen bits', () => {
    const values = walk(new Random(10), 4096, 0.3, 1);
    const base = bitsPerValue(values);
    values[100] = NaN;
    values[2000] = 1e300;
    expect(bitsPerValue(values) * 4096 - base * 4096).toBeLessThan(300);
  });
});
