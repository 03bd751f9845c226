// Register values → field values, beyond the single cases of cases/decode.yaml (decode-cases.test.ts):
// every type round-trips in every order, exhaustive scaling, the decimal arithmetic, deadband.
import { describe, expect, it } from 'vitest';
import { Unsigned } from '../../src/core/point.js';
import { Deadband } from './deadband.js';
import { compileDecoder, decimalAdd, decimalMul, decimalOf, decimalToNumber, float32Shortest, parseDecimal, type ValueSpec } from './decode.js';

const spec = (type: ValueSpec['type'], more: Partial<ValueSpec> = {}): ValueSpec => ({ type, word_order: 'big', byte_order: 'big', scale: 1, offset: 0, ...more });

describe('word and byte order', () => {
  // Single cases in every order, from other implementations too, are in cases/decode.yaml.
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
  // Single cases are in cases/decode.yaml.
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
