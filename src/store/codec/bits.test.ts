import { describe, expect, it } from 'vitest';
import { BitReader, BitWriter } from './bits.js';
import { readStream, writeStream } from './blocks.js';
import { CodecError } from './errors.js';
import { readIntSeq, writeIntSeq } from './intseq.js';
import { Random } from './test-support.js';

function reader(bytes: Uint8Array): BitReader {
  return new BitReader(bytes, 0, bytes.length);
}

describe('BitWriter / BitReader', () => {
  it('round-trips fields of every width 0..32 at every alignment', () => {
    const rnd = new Random(1);
    const widths: number[] = [];
    const values: number[] = [];
    const w = new BitWriter(16);
    for (let i = 0; i < 20_000; i++) {
      const width = rnd.int(0, 32);
      const value = width === 0 ? 0 : rnd.u32() >>> (32 - width);
      widths.push(width);
      values.push(value);
      w.write(value, width);
    }
    const r = reader(w.finish().slice());
    for (let i = 0; i < widths.length; i++) expect(r.read(widths[i])).toBe(values[i]);
  });

  it('round-trips wide numbers, var-bits, unary codes and raw bytes', () => {
    const rnd = new Random(2);
    const w = new BitWriter();
    const nums = Array.from({ length: 2000 }, () => Math.floor(rnd.next() * 2 ** rnd.int(0, 53)));
    const signed = nums.map((n, i) => (i % 2 && n !== 0 ? -n : n));
    const unary = Array.from({ length: 500 }, () => rnd.int(0, 100));
    for (const n of nums) w.writeNum(n, 53);
    for (const n of signed) w.writeSignedVarBits(n);
    for (const q of unary) w.writeUnary(q);
    w.write(5, 3);
    w.writeBytes(Uint8Array.of(1, 2, 255));
    w.write(1, 1);
    const r = reader(w.finish().slice());
    for (const n of nums) expect(r.readNum(53)).toBe(n);
    for (const n of signed) expect(r.readSignedVarBits()).toBe(n);
    for (const q of unary) expect(r.readUnary(1000)).toBe(q);
    expect(r.read(3)).toBe(5);
    expect([...r.readBytes(3)]).toEqual([1, 2, 255]);
    expect(r.read(1)).toBe(1);
  });

  it('appends one writer to another at any bit offset', () => {
    const rnd = new Random(3);
    for (let offset = 0; offset < 40; offset++) {
      const src = new BitWriter(8);
      const fields: [number, number][] = [];
      for (let i = 0; i < rnd.int(0, 50); i++) {
        const width = rnd.int(1, 32);
        const value = rnd.u32() >>> (32 - width);
        fields.push([value, width]);
        src.write(value, width);
      }
      const dst = new BitWriter(8);
      for (let left = offset; left > 0; left -= 32) dst.write(0, Math.min(32, left));
      dst.appendBits(src);
      expect(dst.bitCount).toBe(offset + src.bitCount);
      const r = reader(dst.finish().slice());
      for (let left = offset; left > 0; left -= 32) r.read(Math.min(32, left));
      for (const [value, width] of fields) expect(r.read(width)).toBe(value);
    }
  });

  it('bulk-packs and bulk-reads fixed-width fields and Rice codes at any offset', () => {
    const rnd = new Random(4);
    for (let round = 0; round < 200; round++) {
      const offset = rnd.int(0, 31);
      const n = rnd.int(1, 300);
      const width = rnd.int(1, 32);
      const k = rnd.int(0, 31);
      const packed = Uint32Array.from({ length: n }, () => rnd.u32() >>> (32 - width));
      const rice = Uint32Array.from({ length: n }, () => Math.min(0xffffffff, (rnd.int(0, 40) * 2 ** k + (rnd.u32() >>> (32 - Math.max(k, 1)))) >>> 0));
      const w = new BitWriter(8);
      w.write(0, offset);
      w.writePacked(packed, 0, n, width);
      w.writeRice(rice, 0, n, k);
      w.write(1, 1);
      const r = reader(w.finish().slice());
      r.read(offset);
      const outPacked = new Uint32Array(n);
      const outRice = new Uint32Array(n);
      r.readPacked(outPacked, 0, n, width);
      r.readRice(outRice, 0, n, k, 2 ** (32 - k) - 1);
      expect([...outPacked]).toEqual([...packed]);
      expect([...outRice]).toEqual([...rice]);
      expect(r.read(1)).toBe(1);
    }
  });

  it('throws CodecError instead of reading past the end', () => {
    const r = reader(Uint8Array.of(0xff, 0xff));
    expect(r.read(12)).toBe(0xfff);
    expect(() => r.read(5)).toThrow(CodecError);
    expect(() => reader(new Uint8Array(3)).readUnary(1e9)).toThrow(CodecError);
    expect(() => reader(new Uint8Array(3)).readBytes(4)).toThrow(CodecError);
  });

  it('bounds unary runs', () => {
    expect(() => reader(new Uint8Array(64)).readUnary(100)).toThrow(/unary run too long/);
  });
});

describe('block stream', () => {
  const shapes: Record<string, (rnd: Random, n: number) => [Uint32Array, Uint32Array]> = {
    zeros: (_rnd, n) => [new Uint32Array(n), new Uint32Array(n)],
    geometric: (rnd, n) => [Uint32Array.from({ length: n }, () => Math.floor(-Math.log(1 - rnd.next()) * 40)), new Uint32Array(n)],
    outliers: (rnd, n) => {
      const lo = Uint32Array.from({ length: n }, () => rnd.int(0, 7));
      const hi = new Uint32Array(n);
      for (let k = 0; k < n / 50; k++) {
        const i = rnd.int(0, n - 1);
        lo[i] = rnd.u32();
        hi[i] = rnd.bool() ? rnd.u32() : 0;
      }
      return [lo, hi];
    },
    full64: (rnd, n) => [Uint32Array.from({ length: n }, () => rnd.u32()), Uint32Array.from({ length: n }, () => rnd.u32())],
    max: (_rnd, n) => [new Uint32Array(n).fill(0xffffffff), new Uint32Array(n).fill(0xffffffff)],
    mixedWidths: (rnd, n) => [Uint32Array.from({ length: n }, () => rnd.u32() >>> rnd.int(0, 31)), Uint32Array.from({ length: n }, () => (rnd.bool(0.1) ? rnd.u32() >>> rnd.int(0, 31) : 0))],
  };
  for (const [shape, make] of Object.entries(shapes)) {
    it(`round-trips ${shape} values at awkward lengths`, () => {
      const rnd = new Random(shape.length * 7919);
      for (const n of [1, 2, 127, 128, 129, 300, 1000]) {
        const [lo, hi] = make(rnd, n);
        const w = new BitWriter();
        writeStream(w, lo, hi, n);
        const outLo = new Uint32Array(n);
        const outHi = new Uint32Array(n).fill(7);
        readStream(reader(w.finish().slice()), n, outLo, outHi);
        expect([...outLo]).toEqual([...lo]);
        expect([...outHi]).toEqual([...hi]);
      }
    });
  }

  it('rejects a 64-bit block where the reader expects 32-bit values', () => {
    const w = new BitWriter();
    writeStream(w, Uint32Array.of(1, 2), Uint32Array.of(0, 1), 2);
    expect(() => readStream(reader(w.finish().slice()), 2, new Uint32Array(2), null)).toThrow(CodecError);
  });
});

describe('integer sequences', () => {
  const sequences: Record<string, (rnd: Random, n: number) => number[]> = {
    constant: (_rnd, n) => Array.from({ length: n }, () => -42),
    counter: (_rnd, n) => Array.from({ length: n }, (_, i) => 1000 + 7 * i),
    regularWithGaps: (rnd, n) => {
      let t = 0;
      return Array.from({ length: n }, () => (t += rnd.bool(0.02) ? 5_000_000 * rnd.int(2, 100) : 5_000_000));
    },
    randomWalk: (rnd, n) => {
      let x = 0;
      return Array.from({ length: n }, () => (x += Math.round(rnd.gauss() * 30)));
    },
    multiplesOf2856: (rnd, n) => Array.from({ length: n }, () => 2856 * rnd.int(-500, 500)),
    extremes: (rnd, n) => Array.from({ length: n }, () => rnd.pick([2 ** 50 - 1, -(2 ** 50) + 1, 0, -1, 1])),
  };
  for (const [name, make] of Object.entries(sequences)) {
    it(`round-trips ${name}`, () => {
      const rnd = new Random(name.length);
      for (const n of [0, 1, 2, 3, 129, 1000]) {
        const xs = Float64Array.from(make(rnd, n));
        const w = new BitWriter();
        writeIntSeq(w, xs, n);
        const out = new Float64Array(n);
        readIntSeq(reader(w.finish().slice()), n, out);
        expect([...out]).toEqual([...xs]);
      }
    });
  }

  it('codes a steady counter and regular timestamps in a few bits in total', () => {
    for (const step of [1, 1000, 3_600_000_000]) {
      const xs = Float64Array.from({ length: 4096 }, (_, i) => 1e9 + step * i);
      const w = new BitWriter();
      writeIntSeq(w, xs, xs.length);
      expect(w.bitCount).toBeLessThan(160);
    }
  });
});
