import { crc32 } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import type { Column, RowGroup } from '../../core/chunk.js';
import { INT64_MAX, INT64_MIN } from '../../core/point.js';
import { CodecError, decodeChunk, encodeChunk, MAX_ROWS, peekChunk } from './index.js';
import { Random, snapshotOf } from './test-support.js';

const UINT64_MAX = 2n ** 64n - 1n;
const T0 = 1_700_000_000_000_000;

function expectRoundTrip(group: RowGroup): Uint8Array {
  const bytes = encodeChunk(group);
  expect(snapshotOf(decodeChunk(bytes))).toEqual(snapshotOf(group));
  return bytes;
}

function regularTimes(rows: number, stepUs = 1_000_000, startUs = T0): Float64Array {
  return Float64Array.from({ length: rows }, (_, i) => startUs + i * stepUs);
}

function column(name: string, values: Column['values'], present: Uint8Array | null = null): Column {
  const type = values instanceof Float64Array ? 'float' : values instanceof BigInt64Array ? 'integer' : values instanceof BigUint64Array ? 'unsigned' : values instanceof Uint8Array ? 'boolean' : 'string';
  return { name, type, values, present } as Column;
}

// --- generators ----------------------------------------------------------------------------------

function randomInt64(rnd: Random): bigint {
  return BigInt.asIntN(64, (BigInt(rnd.u32()) << 32n) | BigInt(rnd.u32()));
}

const INTEGER_SERIES: Record<string, (rnd: Random, n: number) => bigint[]> = {
  'full 64-bit range': (rnd, n) => Array.from({ length: n }, () => randomInt64(rnd)),
  'edge values': (rnd, n) => Array.from({ length: n }, () => rnd.pick([INT64_MIN, INT64_MAX, 0n, -1n, 1n, 2n ** 50n, 2n ** 50n - 1n, -(2n ** 50n), 2n ** 53n + 1n, -(2n ** 53n) - 1n])),
  'small random walk': (rnd, n) => {
    let x = 0n;
    return Array.from({ length: n }, () => (x += BigInt(Math.round(rnd.gauss() * 50))));
  },
  'counter with a steady rate': (_rnd, n) => Array.from({ length: n }, (_, i) => 1_000_000n + 17n * BigInt(i)),
  constant: (_rnd, n) => Array.from({ length: n }, () => -7n),
  'small values with one huge spike': (rnd, n) => Array.from({ length: n }, (_, i) => (i === n >> 1 ? INT64_MAX : BigInt(rnd.int(-100, 100)))),
  'wrapping around INT64_MIN/MAX': (rnd, n) => Array.from({ length: n }, () => (rnd.bool() ? INT64_MAX - BigInt(rnd.int(0, 5)) : INT64_MIN + BigInt(rnd.int(0, 5)))),
};

const UNSIGNED_SERIES: Record<string, (rnd: Random, n: number) => bigint[]> = {
  'full 64-bit range': (rnd, n) => Array.from({ length: n }, () => BigInt.asUintN(64, randomInt64(rnd))),
  'edge values': (rnd, n) => Array.from({ length: n }, () => rnd.pick([0n, 1n, UINT64_MAX, UINT64_MAX - 1n, 2n ** 63n, 2n ** 63n - 1n, 2n ** 50n - 1n, 2n ** 50n, 2n ** 32n])),
  'energy counter': (rnd, n) => {
    let x = 123_456_789n;
    return Array.from({ length: n }, () => (x += BigInt(rnd.int(0, 40))));
  },
};

const STRING_POOL = ['', 'N', 'NNE', 'running', 'stopped', 'ü', '温度', '🌡️', '👩‍👩‍👧', '\uD800', '\uDFFF', 'a\uDC00b', '\uD83D', 'x'.repeat(300), 'tab\tnew\nline "quoted" \\', '\u0000'];

const STRING_SERIES: Record<string, (rnd: Random, n: number) => string[]> = {
  'pool of edge strings': (rnd, n) => Array.from({ length: n }, () => rnd.pick(STRING_POOL)),
  'long runs of a state': (rnd, n) => {
    let state = 'running';
    return Array.from({ length: n }, () => (rnd.bool(0.01) ? (state = rnd.pick(['running', 'stopped', 'fault'])) : state));
  },
  'all distinct': (rnd, n) => Array.from({ length: n }, (_, i) => `${i}-${rnd.u32().toString(36)}`),
  'all empty': (_rnd, n) => Array.from({ length: n }, () => ''),
  'very long strings': (rnd, n) => Array.from({ length: n }, () => rnd.pick(['a', 'b']).repeat(rnd.int(0, 100_000))),
  'random code units (lone surrogates included)': (rnd, n) => Array.from({ length: n }, () => String.fromCharCode(...Array.from({ length: rnd.int(0, 8) }, () => rnd.int(0, 0xffff)))),
  'similar JSON payloads (deflated dictionary)': (rnd, n) => Array.from({ length: n }, (_, i) => JSON.stringify({ device: 'pump-7', seq: i, state: rnd.pick(['ok', 'warn']), detail: 'nominal operation' })),
};

const BOOLEAN_SERIES: Record<string, (rnd: Random, n: number) => number[]> = {
  random: (rnd, n) => Array.from({ length: n }, () => (rnd.bool() ? 1 : 0)),
  runs: (rnd, n) => {
    let b = 0;
    return Array.from({ length: n }, () => (rnd.bool(0.02) ? (b ^= 1) : b));
  },
  'all true': (_rnd, n) => Array.from({ length: n }, () => 1),
  'all false': (_rnd, n) => Array.from({ length: n }, () => 0),
  'non-0/1 truthy bytes': (rnd, n) => Array.from({ length: n }, () => rnd.pick([0, 1, 2, 255])),
};

const LENGTHS = [1, 2, 3, 127, 128, 129, 1000, 4096];

describe('integer and unsigned columns round-trip exactly', () => {
  for (const [name, generate] of Object.entries(INTEGER_SERIES)) {
    it(`integer: ${name}`, () => {
      const rnd = new Random(name.length * 31);
      for (const n of LENGTHS) expectRoundTrip({ timesUs: regularTimes(n), columns: [column('i', BigInt64Array.from(generate(rnd, n)))] });
    });
  }
  for (const [name, generate] of Object.entries(UNSIGNED_SERIES)) {
    it(`unsigned: ${name}`, () => {
      const rnd = new Random(name.length * 37);
      for (const n of LENGTHS) expectRoundTrip({ timesUs: regularTimes(n), columns: [column('u', BigUint64Array.from(generate(rnd, n)))] });
    });
  }
});

describe('string columns round-trip exactly', () => {
  for (const [name, generate] of Object.entries(STRING_SERIES)) {
    it(name, () => {
      const rnd = new Random(name.length * 41);
      for (const n of name === 'very long strings' ? [1, 3, 20] : LENGTHS) {
        const values = generate(rnd, n);
        const decoded = decodeChunk(encodeChunk({ timesUs: regularTimes(n), columns: [column('s', values)] })).columns[0];
        expect(decoded.values).toEqual(values);
      }
    });
  }

  it('keeps lone surrogates and unicode in column names', () => {
    const names = ['温度', 'a\uD800b', '🌡️ temp', '', 'PM2.5'];
    const group: RowGroup = { timesUs: regularTimes(3), columns: names.map((n, i) => column(n, new Float64Array(3).fill(i))) };
    expect(decodeChunk(expectRoundTrip(group)).columns.map((c) => c.name)).toEqual(names);
  });
});

describe('boolean columns and presence maps round-trip', () => {
  for (const [name, generate] of Object.entries(BOOLEAN_SERIES)) {
    it(`boolean: ${name}`, () => {
      const rnd = new Random(name.length * 43);
      for (const n of LENGTHS) expectRoundTrip({ timesUs: regularTimes(n), columns: [column('b', Uint8Array.from(generate(rnd, n)))] });
    });
  }

  it('presence maps of every density, including none present', () => {
    const rnd = new Random(47);
    for (let k = 0; k < 80; k++) {
      const rows = rnd.int(1, 3000);
      const shape = rnd.pick(['random', 'runs', 'few gaps', 'none']);
      let state = 1;
      const present = Uint8Array.from({ length: rows }, () => {
        if (shape === 'none') return 0;
        if (shape === 'random') return rnd.bool(rnd.next()) ? 1 : 0;
        if (shape === 'few gaps') return rnd.bool(0.995) ? 1 : 0;
        return rnd.bool(0.01) ? (state ^= 1) : state;
      });
      const count = present.reduce((a, b) => a + (b ? 1 : 0), 0);
      expectRoundTrip({
        timesUs: regularTimes(rows),
        columns: [column('f', Float64Array.from({ length: count }, (_, i) => i / 10), present), column('s', Array.from({ length: count }, (_, i) => String(i % 3)), present)],
      });
    }
  });

  it('returns null for an all-ones presence map', () => {
    const decoded = decodeChunk(encodeChunk({ timesUs: regularTimes(4), columns: [column('f', new Float64Array(4), new Uint8Array(4).fill(1))] }));
    expect(decoded.columns[0].present).toBeNull();
  });
});

describe('timestamps', () => {
  const cases: Record<string, (rnd: Random) => Float64Array> = {
    'regular 1 s': () => regularTimes(1000),
    'regular 5 min with gaps': (rnd) => {
      let t = T0;
      return Float64Array.from({ length: 2000 }, () => (t += 300e6 * (rnd.bool(0.01) ? rnd.int(2, 500) : 1)));
    },
    'regular 1 h': () => regularTimes(3000, 3600e6),
    'whole ms with jitter': (rnd) => {
      let t = T0;
      return Float64Array.from({ length: 2000 }, () => (t += 1000 * rnd.int(990, 1010)));
    },
    'irregular µs': (rnd) => {
      let t = T0;
      return Float64Array.from({ length: 2000 }, () => (t += rnd.int(1, 1e7)));
    },
    'pre-1970 and crossing zero': () => regularTimes(2000, 1_000_003, -1e9),
    'far past and future (years 1700 and 2250)': () => Float64Array.of(-8.5e15, -8.4e15, 8.9e15 - 8.4e14, 8.9e15),
    'huge gaps: span beyond 2^50 µs': () => Float64Array.of(0, 1, 2 ** 51, 2 ** 52, 2 ** 53 - 1),
    'limits of the safe range': () => Float64Array.of(-(2 ** 53) + 1, 2 ** 53 - 1),
    'single row': () => Float64Array.of(T0),
    'non-integer, -0, NaN and unordered (raw fallback)': () => Float64Array.of(1.5, -0, NaN, -Infinity, 3, 2),
    'unordered integers': () => Float64Array.of(T0, T0 - 5, T0 + 1e9, T0),
  };
  for (const [name, make] of Object.entries(cases)) {
    it(`round-trip: ${name}`, () => {
      const timesUs = make(new Random(name.length));
      const bytes = expectRoundTrip({ timesUs, columns: [column('v', new Float64Array(timesUs.length).fill(1))] });
      const info = peekChunk(bytes);
      expect(info.rows).toBe(timesUs.length);
      expect(Object.is(info.firstUs, timesUs[0]) || (Number.isNaN(info.firstUs) && Number.isNaN(timesUs[0]))).toBe(true);
      expect(Object.is(info.lastUs, timesUs[timesUs.length - 1])).toBe(true);
    });
  }

  it('an empty group round-trips and peeks as NaN first/last', () => {
    const bytes = expectRoundTrip({ timesUs: new Float64Array(0), columns: [column('v', new Float64Array(0)), column('s', [])] });
    expect(peekChunk(bytes)).toMatchObject({ rows: 0, firstUs: NaN, lastUs: NaN });
  });

  it('a regular series with a few gaps costs well under a bit per row', () => {
    const timesUs = regularTimes(4096, 1_000_000);
    for (let i = 1000; i < 4096; i++) timesUs[i] += 3_600_000_000;
    for (let i = 3000; i < 4096; i++) timesUs[i] += 60_000_000;
    expect((encodeChunk({ timesUs, columns: [] }).length * 8) / 4096).toBeLessThan(0.25);
  });
});

describe('mixed groups', () => {
  it('round-trip with random types, presence maps and sizes', () => {
    const rnd = new Random(53);
    for (let k = 0; k < 40; k++) {
      const rows = rnd.int(0, 1500);
      const columns: Column[] = [];
      for (let c = 0; c < rnd.int(0, 8); c++) {
        const present = rnd.bool(0.5) ? Uint8Array.from({ length: rows }, () => (rnd.bool(0.8) ? 1 : 0)) : null;
        const n = present === null ? rows : present.reduce((a, b) => a + b, 0);
        const type = rnd.pick(['float', 'integer', 'unsigned', 'boolean', 'string'] as const);
        const name = `f${c}`;
        if (type === 'float') columns.push(column(name, Float64Array.from({ length: n }, () => rnd.int(-1e6, 1e6) / 100), present));
        if (type === 'integer') columns.push(column(name, BigInt64Array.from(INTEGER_SERIES[rnd.pick(Object.keys(INTEGER_SERIES))](rnd, n)), present));
        if (type === 'unsigned') columns.push(column(name, BigUint64Array.from(UNSIGNED_SERIES[rnd.pick(Object.keys(UNSIGNED_SERIES))](rnd, n)), present));
        if (type === 'boolean') columns.push(column(name, Uint8Array.from({ length: n }, () => (rnd.bool() ? 1 : 0)), present));
        if (type === 'string') columns.push(column(name, Array.from({ length: n }, () => rnd.pick(STRING_POOL)), present));
      }
      expectRoundTrip({ timesUs: regularTimes(rows, 1000 * rnd.int(1, 5000), rnd.int(-1e15, 1e15)), columns });
    }
  });
});

function sampleGroup(rows = 500): RowGroup {
  const rnd = new Random(59);
  const present = Uint8Array.from({ length: rows }, (_, i) => (i % 10 === 3 ? 0 : 1));
  const count = present.reduce((a, b) => a + b, 0);
  return {
    timesUs: regularTimes(rows, 5_000_000),
    columns: [
      column('temperature', Float64Array.from({ length: rows }, (_, i) => Math.round(200 + 30 * Math.sin(i / 40) + rnd.gauss()) / 10)),
      column('humidity', Float64Array.from({ length: count }, () => rnd.int(300, 900) / 10), present),
      column('count', BigInt64Array.from({ length: rows }, (_, i) => BigInt(i * 3))),
      column('serial', BigUint64Array.from({ length: rows }, () => UINT64_MAX)),
      column('pump_on', Uint8Array.from({ length: rows }, (_, i) => (i >> 5) & 1)),
      column('state', Array.from({ length: rows }, (_, i) => (i % 100 < 90 ? 'ok' : 'warn'))),
      column('raw', Float64Array.from({ length: rows }, () => rnd.next())),
    ],
  };
}

describe('input arrays', () => {
  it('may be views into larger buffers', () => {
    const rows = 200;
    const times = regularTimes(rows + 10).subarray(5, 5 + rows);
    const floats = new Float64Array(rows + 3).map((_, i) => (i === 50 ? NaN : i / 4)).subarray(3);
    const ints = BigInt64Array.from({ length: rows + 2 }, (_, i) => (i % 2 ? INT64_MIN : BigInt(i))).subarray(1, rows + 1);
    const uints = BigUint64Array.from({ length: rows + 1 }, (_, i) => BigInt(i * 5)).subarray(1);
    const bools = Uint8Array.from({ length: rows + 7 }, (_, i) => i % 3).subarray(7);
    expectRoundTrip({ timesUs: times, columns: [column('f', floats), column('i', ints), column('u', uints), column('b', bools)] });
  });
});

describe('field subsets and peeking', () => {
  it('decodes only the requested fields, in stored order, ignoring unknown names', () => {
    const group = sampleGroup();
    const bytes = encodeChunk(group);
    const subset = decodeChunk(bytes, new Set(['state', 'nope', 'humidity']));
    expect(subset.columns.map((c) => c.name)).toEqual(['humidity', 'state']);
    expect(snapshotOf(subset)).toEqual(snapshotOf({ ...group, columns: [group.columns[1], group.columns[5]] }));
    expect(decodeChunk(bytes, new Set()).columns).toEqual([]);
    expect(decodeChunk(bytes, new Set()).timesUs).toEqual(group.timesUs);
  });

  it('peekChunk reports the header and directory without values', () => {
    const group = sampleGroup();
    expect(peekChunk(encodeChunk(group))).toEqual({
      version: 1,
      rows: 500,
      firstUs: T0,
      lastUs: T0 + 499 * 5_000_000,
      columns: [
        { name: 'temperature', type: 'float', count: 500 },
        { name: 'humidity', type: 'float', count: 450 },
        { name: 'count', type: 'integer', count: 500 },
        { name: 'serial', type: 'unsigned', count: 500 },
        { name: 'pump_on', type: 'boolean', count: 500 },
        { name: 'state', type: 'string', count: 500 },
        { name: 'raw', type: 'float', count: 500 },
      ],
    });
  });
});

describe('bad input', () => {
  const valid = encodeChunk(sampleGroup(300));

  it('throws CodecError for every truncation of a valid chunk', () => {
    for (let length = 0; length < valid.length; length++) {
      expect(() => decodeChunk(valid.subarray(0, length))).toThrow(CodecError);
      expect(() => peekChunk(valid.subarray(0, length))).toThrow(CodecError);
    }
  });

  it('throws CodecError for random bytes and single bit flips', () => {
    const rnd = new Random(61);
    for (let k = 0; k < 2000; k++) {
      const garbage = Uint8Array.from({ length: rnd.int(0, 200) }, () => rnd.int(0, 255));
      if (k % 2 === 0 && garbage.length > 0) garbage[0] = 1; // get past the version check
      expect(() => decodeChunk(garbage)).toThrow(CodecError);
    }
    for (let k = 0; k < 500; k++) {
      const flipped = valid.slice();
      const at = rnd.int(0, flipped.length - 1);
      flipped[at] ^= 1 << rnd.int(0, 7);
      expect(() => decodeChunk(flipped)).toThrow(CodecError);
    }
  });

  it('never fails other than with CodecError on corrupt bodies that pass the checksum', () => {
    // Re-sealing the CRC after corrupting exercises every structural check behind it.
    const rnd = new Random(67);
    const chunks = [valid, encodeChunk({ timesUs: regularTimes(200), columns: [column('x', Float64Array.from({ length: 200 }, () => rnd.gauss()))] }), encodeChunk(sampleGroup(40))];
    let decoded = 0;
    for (let k = 0; k < 6000; k++) {
      const bytes = rnd.pick(chunks).slice();
      const body = bytes.length - 4;
      for (let e = 0; e < rnd.int(1, 4); e++) {
        const at = rnd.int(1, body - 1);
        bytes[at] = rnd.bool() ? rnd.int(0, 255) : bytes[at] ^ (1 << rnd.int(0, 7));
      }
      const end = rnd.bool(0.2) ? rnd.int(2, body) : body;
      const resealed = new Uint8Array(end + 4);
      resealed.set(bytes.subarray(0, end));
      new DataView(resealed.buffer).setUint32(end, crc32(resealed.subarray(0, end)), true);
      try {
        decodeChunk(resealed);
        peekChunk(resealed);
        decoded++;
      } catch (error) {
        if (!(error instanceof CodecError)) throw new Error(`iteration ${k}: ${String(error)}`, { cause: error });
      }
    }
    expect(decoded).toBeLessThan(6000);
  });

  it('names an unknown format version', () => {
    const future = valid.slice();
    future[0] = 2;
    expect(() => decodeChunk(future)).toThrow(/unsupported chunk format version 2/);
    expect(() => peekChunk(future)).toThrow(CodecError);
  });

  it('rejects a group that breaks the RowGroup contract with a RangeError', () => {
    const timesUs = regularTimes(3);
    expect(() => encodeChunk({ timesUs, columns: [column('f', new Float64Array(2))] })).toThrow(RangeError);
    expect(() => encodeChunk({ timesUs, columns: [column('f', new Float64Array(2), Uint8Array.of(1, 1, 1))] })).toThrow(RangeError);
    expect(() => encodeChunk({ timesUs, columns: [column('f', new Float64Array(2), Uint8Array.of(1, 1))] })).toThrow(RangeError);
    expect(() => encodeChunk({ timesUs: new Float64Array(MAX_ROWS + 1), columns: [] })).toThrow(RangeError);
  });
});

describe('compression of other types', () => {
  const bits = (group: RowGroup) => encodeChunk(group).length * 8 - encodeChunk({ timesUs: group.timesUs, columns: [] }).length * 8;

  it('a steady counter costs almost nothing', () => {
    expect(bits({ timesUs: regularTimes(4096), columns: [column('c', BigInt64Array.from({ length: 4096 }, (_, i) => BigInt(i * 10)))] }) / 4096).toBeLessThan(0.1);
  });

  it('a boolean with long runs and an enum string cost a fraction of a bit per row', () => {
    const rnd = new Random(71);
    const runs = Uint8Array.from(BOOLEAN_SERIES.runs(rnd, 4096));
    expect(bits({ timesUs: regularTimes(4096), columns: [column('b', runs)] }) / 4096).toBeLessThan(0.5);
    const states = STRING_SERIES['long runs of a state'](rnd, 4096);
    expect(bits({ timesUs: regularTimes(4096), columns: [column('s', states)] }) / 4096).toBeLessThan(0.5);
  });

  it('deflates a dictionary of similar long strings', () => {
    const values = STRING_SERIES['similar JSON payloads (deflated dictionary)'](new Random(73), 1000);
    const raw = values.reduce((a, s) => a + s.length, 0);
    expect(bits({ timesUs: regularTimes(1000), columns: [column('s', values)] }) / 8).toBeLessThan(raw / 4);
  });
});
