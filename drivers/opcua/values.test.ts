// The type rules of values.ts on their own, for the shapes a real server does not easily produce
// (the integration tests in opcua.test.ts cover every type as node-opcua decodes it off the wire).
import { describe, expect, it } from 'vitest';
import { Unsigned } from '../../src/core/point.js';
import { float32Shortest, pointTimeUs, toFields } from './values.js';

describe('opcua values', () => {
  it('64-bit integers from [high, low] words are exact at both ends of their range', () => {
    expect(toFields('v', { dataType: 8, arrayType: 0, value: [0x80000000, 0] })).toEqual({ ok: true, fields: { v: -(2n ** 63n) } });
    expect(toFields('v', { dataType: 8, arrayType: 0, value: [0x7fffffff, 0xffffffff] })).toEqual({ ok: true, fields: { v: 2n ** 63n - 1n } });
    expect(toFields('v', { dataType: 8, arrayType: 0, value: [0xffffffff, 0xffffffff] })).toEqual({ ok: true, fields: { v: -1n } });
    expect(toFields('v', { dataType: 9, arrayType: 0, value: [0xffffffff, 0xffffffff] })).toEqual({ ok: true, fields: { v: new Unsigned(2n ** 64n - 1n) } });
    expect(toFields('v', { dataType: 9, arrayType: 0, value: [0x00200000, 1] })).toEqual({ ok: true, fields: { v: new Unsigned(2n ** 53n + 1n) } });
  });

  it('a float32 is the shortest decimal that reads back as itself', () => {
    for (const d of [21.3, 0.1, -1e-7, 3.4028234663852886e38, 1.401298464324817e-45]) expect(Math.fround(float32Shortest(Math.fround(d)))).toBe(Math.fround(d));
    expect(float32Shortest(Math.fround(21.3))).toBe(21.3);
    expect(float32Shortest(Math.fround(0.1))).toBe(0.1);
    expect(toFields('v', { dataType: 10, arrayType: 1, value: new Float32Array([0.1, 2.5]) })).toEqual({ ok: true, fields: { v_0: 0.1, v_1: 2.5 } });
  });

  it('structures, byte strings and matrices are refused with their type; nulls are no field', () => {
    expect(toFields('v', { dataType: 22, arrayType: 0, value: {} })).toEqual({ ok: false, unsupported: 'a structure (ExtensionObject)' });
    expect(toFields('v', { dataType: 15, arrayType: 0, value: Buffer.from('x') })).toEqual({ ok: false, unsupported: 'ByteString' });
    expect(toFields('v', { dataType: 11, arrayType: 2, value: [1, 2, 3, 4] })).toEqual({ ok: false, unsupported: 'a matrix of Double' });
    expect(toFields('v', { dataType: 0, arrayType: 0, value: null })).toEqual({ ok: true, fields: {} });
    expect(toFields('v', { dataType: 12, arrayType: 0, value: null })).toEqual({ ok: true, fields: {} });
    expect(toFields('v', { dataType: 21, arrayType: 0, value: { text: 'Betrieb', locale: 'de' } })).toEqual({ ok: true, fields: { v: 'Betrieb' } });
  });

  it('the point time falls back source → server → agent, with the picoseconds below the ms', () => {
    const source = Object.assign(new Date(1714564800123), { picoseconds: 456_000_000 });
    const server = new Date(1714564801000);
    expect(pointTimeUs('source', source, server, 7)).toBe(1714564800123456);
    expect(pointTimeUs('source', null, server, 7)).toBe(1714564801000000);
    expect(pointTimeUs('server', source, server, 7)).toBe(1714564801000000);
    expect(pointTimeUs('server', source, null, 7)).toBe(7);
    expect(pointTimeUs('agent', source, server, 7)).toBe(7);
    // OPC UA's "no time" (1601-01-01, or node-opcua's epoch 0) is no time.
    expect(pointTimeUs('source', new Date(Date.UTC(1601, 0, 1)), null, 7)).toBe(7);
  });
});
