// Register values → field values: every type, word and byte order, scale and offset exactness, deadband.
import { describe, expect, it } from 'vitest';
import { Unsigned } from '../../src/core/point.js';
import { Deadband } from './deadband.js';
import { bitAt, compileDecoder, decimalAdd, decimalMul, decimalOf, decimalToNumber, float32Shortest, parseDecimal, type ValueSpec } from './decode.js';

const hex = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ''), 'hex');
const spec = (type: ValueSpec['type'], more: Partial<ValueSpec> = {}): ValueSpec => ({ type, word_order: 'big', byte_order: 'big', scale: 1, offset: 0, ...more });
const decode = (s: ValueSpec, data: string, wordOffset = 0) => compileDecoder(s).fromRegisters(hex(data), wordOffset);

describe('types in the standard order (big-endian words and bytes)', () => {
  it('16-bit', () => {
    expect(decode(spec('int16'), 'FF85')).toBe(-123n);
    expect(decode(spec('uint16'), 'FF85')).toBe(65413n);
    expect(decode(spec('bool'), '0000')).toBe(false);
    expect(decode(spec('bool'), '0100')).toBe(true);
  });
  it('32-bit', () => {
    expect(decode(spec('int32'), 'F8A4 32EB')).toBe(-123456789n);
    expect(decode(spec('uint32'), 'F8A4 32EB')).toBe(4171510507n);
    expect(decode(spec('float32'), '41AA 6666')).toBe(21.3); // 21.3f is 21.299999237060547 as a double
    expect(decode(spec('float32'), '3F80 0000')).toBe(1);
    expect(decode(spec('float32'), '7FC0 0000')).toBeNaN();
    expect(decode(spec('float32'), 'FF80 0000')).toBe(-Infinity);
  });
  it('64-bit', () => {
    expect(decode(spec('int64'), '8000 0000 0000 0000')).toBe(-(2n ** 63n));
    expect(decode(spec('int64'), 'FFFF FFFF FFFF FFFE')).toBe(-2n);
    expect(decode(spec('uint64'), 'FFFF FFFF FFFF FFFE')).toEqual(new Unsigned(2n ** 64n - 2n));
    expect(decode(spec('float64'), '4009 21FB 5444 2D18')).toBe(Math.PI);
  });
  it('reads at a word offset within a response', () => {
    expect(decode(spec('int32'), '0000 0000 F8A4 32EB', 2)).toBe(-123456789n);
  });
});

describe('word and byte order', () => {
  // -123456789 = F8A4 32EB: ABCD big/big, CDAB little words, BADC little bytes, DCBA both.
  const cases: [ValueSpec['word_order'], ValueSpec['byte_order'], string][] = [
    ['big', 'big', 'F8A4 32EB'],
    ['little', 'big', '32EB F8A4'],
    ['big', 'little', 'A4F8 EB32'],
    ['little', 'little', 'EB32 A4F8'],
  ];
  for (const [word_order, byte_order, wire] of cases) {
    it(`int32 word_order=${word_order} byte_order=${byte_order}`, () => {
      expect(decode(spec('int32', { word_order, byte_order }), wire)).toBe(-123456789n);
    });
  }

  it('every type round-trips in every order', () => {
    const values: [ValueSpec['type'], (b: Buffer) => void, unknown][] = [
      ['int16', (b) => b.writeInt16BE(-2), -2n],
      ['uint16', (b) => b.writeUInt16BE(54321), 54321n],
      ['int32', (b) => b.writeInt32BE(-7654321), -7654321n],
      ['uint32', (b) => b.writeUInt32BE(3_000_000_000), 3_000_000_000n],
      ['float32', (b) => b.writeFloatBE(-0.125), -0.125],
      ['int64', (b) => b.writeBigInt64BE(-1234567890123456789n), -1234567890123456789n],
      ['uint64', (b) => b.writeBigUInt64BE(18_000_000_000_000_000_000n), new Unsigned(18_000_000_000_000_000_000n)],
      ['float64', (b) => b.writeDoubleBE(6.02214076e23), 6.02214076e23],
    ];
    for (const [type, write, expected] of values) {
      const words = type.endsWith('16') ? 1 : type.endsWith('32') ? 2 : 4;
      const be = Buffer.alloc(words * 2);
      write(be);
      for (const word_order of ['big', 'little'] as const) {
        for (const byte_order of ['big', 'little'] as const) {
          const wire = Buffer.alloc(be.length);
          for (let w = 0; w < words; w++) {
            const src = (word_order === 'little' ? words - 1 - w : w) * 2;
            wire[w * 2] = be[byte_order === 'little' ? src + 1 : src];
            wire[w * 2 + 1] = be[byte_order === 'little' ? src : src + 1];
          }
          expect(compileDecoder(spec(type, { word_order, byte_order })).fromRegisters(wire, 0), `${type} ${word_order}/${byte_order}`).toEqual(expected);
        }
      }
    }
  });
});

describe('scale and offset', () => {
  it('are exact in decimal', () => {
    // The problem: binary floating point.
    expect(3 * 0.1).toBe(0.30000000000000004);
    expect(215 * 0.1 - 273.15).toBe(-251.64999999999998);
    expect(decode(spec('uint16', { scale: 0.1 }), '0003')).toBe(0.3);
    expect(decode(spec('uint16', { scale: 0.1 }), '04D2')).toBe(123.4);
    expect(decode(spec('int16', { scale: 0.01 }), 'FF85')).toBe(-1.23);
    expect(decode(spec('uint16', { scale: 0.1, offset: -273.15 }), '00D7')).toBe(-251.65); // 215 × 0.1 − 273.15
    expect(decode(spec('uint16', { scale: 3 }), '0003')).toBe(9);
    expect(decode(spec('uint16', { offset: 0.2 }), '0001')).toBe(1.2);
    expect(decode(spec('uint32', { scale: 0.001 }), '0001 E240')).toBe(123.456);
    expect(decode(spec('int64', { scale: 0.1 }), '0000 0000 0000 0007')).toBe(0.7);
    expect(decode(spec('int64', { scale: 1e-7 }), '0000 0000 0000 0003')).toBe(3e-7);
  });
  it('make a float field; without them integers stay integers', () => {
    expect(decode(spec('uint16', { scale: 1 }), '0007')).toBe(7n);
    expect(decode(spec('uint16', { scale: 2 }), '0007')).toBe(14);
    expect(typeof decode(spec('int32', { scale: 1, offset: 0 }), '0000 0007')).toBe('bigint');
  });
  it('apply to floats through their shortest decimal', () => {
    expect(decode(spec('float32', { scale: 0.1 }), '41AA 6666')).toBe(2.13);
    expect(decode(spec('float64', { scale: 10 }), '3FB9 9999 9999 999A')).toBe(1); // 0.1 × 10
    expect(decode(spec('float32', { scale: 2 }), '7FC0 0000')).toBeNaN();
  });
  it('do not apply to bool', () => {
    expect(decode(spec('bool', { scale: 10 }), '0001')).toBe(true);
  });
  it('exhaustively: every uint16 × 0.1 is the decimal literal', () => {
    const d = compileDecoder(spec('uint16', { scale: 0.1 }));
    const b = Buffer.alloc(2);
    for (let raw = 0; raw < 65536; raw += 7) {
      b.writeUInt16BE(raw);
      expect(d.fromRegisters(b, 0)).toBe(Number(`${Math.floor(raw / 10)}.${raw % 10}`));
    }
  });
});

describe('decimals', () => {
  it('parse, multiply, add and convert exactly', () => {
    expect(parseDecimal('-12.5')).toEqual({ m: -125n, e: -1 });
    expect(parseDecimal('1.5e-7')).toEqual({ m: 15n, e: -8 });
    expect(parseDecimal('1e+21')).toEqual({ m: 1n, e: 21 });
    expect(decimalToNumber(decimalAdd(decimalMul(decimalOf(0.1), decimalOf(3)), decimalOf(0.2)))).toBe(0.5);
    expect(float32Shortest(Math.fround(0.1))).toBe('0.1');
    expect(float32Shortest(Math.fround(16777217))).toBe('16777216');
  });
});

describe('bits', () => {
  it('LSB of the first byte is the first coil', () => {
    const data = hex('CD 6B 05'); // spec 6.1: coils 20-27 = CD
    expect([0, 1, 2, 3, 4, 5, 6, 7].map((i) => bitAt(data, i))).toEqual([true, false, true, true, false, false, true, true]);
    expect(bitAt(data, 16)).toBe(true);
    expect(bitAt(data, 17)).toBe(false);
    expect(bitAt(data, 18)).toBe(true);
  });
});

describe('Deadband', () => {
  it('keeps a value that moved by more than the deadband since the last kept one, and a heartbeat', () => {
    const d = new Deadband(0.5, 10_000);
    expect(d.admit(20, 0)).toBe(true);
    expect(d.admit(20.3, 1000)).toBe(false);
    expect(d.admit(20.5, 2000)).toBe(false); // exactly the deadband is not more than it
    expect(d.admit(20.6, 3000)).toBe(true); // drift adds up against the last kept value
    expect(d.admit(20.6, 12_999)).toBe(false);
    expect(d.admit(20.6, 13_000)).toBe(true); // heartbeat
    expect(d.admit(NaN, 13_500)).toBe(true);
    expect(d.admit(NaN, 14_000)).toBe(false);
  });
  it('integers, unsigned and booleans', () => {
    const i = new Deadband(2, 60_000);
    expect([10n, 11n, 12n, 13n, 9n].map((v, t) => i.admit(v, t))).toEqual([true, false, false, true, true]);
    const u = new Deadband(0, 60_000);
    expect([new Unsigned(5n), new Unsigned(5n), new Unsigned(6n)].map((v, t) => u.admit(v, t))).toEqual([true, false, true]);
    const b = new Deadband(5, 60_000);
    expect([true, true, false].map((v, t) => b.admit(v, t))).toEqual([true, false, true]);
  });
});
