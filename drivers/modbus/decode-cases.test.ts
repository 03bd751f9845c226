// The decoding table (cases/decode.yaml): register words → field values, response PDUs → data,
// exceptions or protocol errors, with cases from libmodbus, pymodbus, mbpoll and the specification.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { Unsigned, type FieldValue } from '../../src/core/point.js';
import { bitAt, compileDecoder, type ValueSpec } from './decode.js';
import { exceptionName, parseReadResponse, type ReadFunctionCode } from './protocol.js';
import { REGISTER_TYPES, type RegisterType } from './schema.js';

interface RegisterCase {
  source: string;
  words: string;
  type: RegisterType;
  word_order?: 'big' | 'little';
  byte_order?: 'big' | 'little';
  scale?: number;
  offset?: number;
  at?: number;
  expect: { int: string } | { unsigned: string } | { float: number } | { bool: boolean };
}

interface ResponseCase {
  source: string;
  fc: ReadFunctionCode;
  count: number;
  pdu: string;
  expect: { data: string } | { bits: string } | { exception: number; name: string } | { error: string };
}

const table = parse(readFileSync(new URL('./cases/decode.yaml', import.meta.url), 'utf8')) as { registers: RegisterCase[]; responses: ResponseCase[] };

const hex = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ''), 'hex');

/** A case with a key this test does not read would check less than it says: refuse it. */
function checkShape(c: object, keys: readonly string[], expectKeys: readonly (readonly string[])[], where: string): void {
  const unknown = Object.keys(c).filter((k) => !keys.includes(k));
  if (unknown.length > 0) throw new Error(`${where}: unknown key(s) ${unknown.join(', ')}`);
  const e = (c as { expect?: object }).expect;
  const got = e === undefined ? '' : Object.keys(e).sort().join(',');
  if (!expectKeys.some((ks) => [...ks].sort().join(',') === got)) throw new Error(`${where}: expect must have the keys ${expectKeys.map((k) => k.join('+')).join(' or ')}, not "${got}"`);
}

function expected(c: RegisterCase): FieldValue {
  const e = c.expect;
  if ('int' in e) return BigInt(e.int);
  if ('unsigned' in e) return new Unsigned(BigInt(e.unsigned));
  if ('float' in e) return e.float;
  return e.bool;
}

describe('the decoding table', () => {
  it('is well formed and draws on references beyond this project', () => {
    expect(table.registers.length).toBeGreaterThan(40);
    expect(table.responses.length).toBeGreaterThan(15);
    table.registers.forEach((c, i) => {
      checkShape(c, ['source', 'words', 'type', 'word_order', 'byte_order', 'scale', 'offset', 'at', 'expect'], [['int'], ['unsigned'], ['float'], ['bool']], `registers[${i}]`);
      expect(REGISTER_TYPES, `registers[${i}].type`).toContain(c.type);
      expect(hex(c.words).length, `registers[${i}].words`).toBe(c.words.replace(/\s+/g, '').length / 2);
    });
    table.responses.forEach((c, i) => checkShape(c, ['source', 'fc', 'count', 'pdu', 'expect'], [['data'], ['bits'], ['exception', 'name'], ['error']], `responses[${i}]`));
    const sources = [...table.registers, ...table.responses].map((c) => c.source);
    for (const reference of ['libmodbus', 'pymodbus', 'mbpoll', 'spec']) expect(sources.some((s) => s.includes(reference)), reference).toBe(true);
  });
});

describe('register words → field value', () => {
  it.each(table.registers.map((c) => [`${c.type} ${c.word_order ?? 'big'}/${c.byte_order ?? 'big'} ${c.words}${c.at ? ` at ${c.at}` : ''}${c.scale !== undefined || c.offset !== undefined ? ` ×${c.scale ?? 1} +${c.offset ?? 0}` : ''} (${c.source})`, c] as const))(
    '%s',
    (_name, c) => {
      const spec: ValueSpec = { type: c.type, word_order: c.word_order ?? 'big', byte_order: c.byte_order ?? 'big', scale: c.scale ?? 1, offset: c.offset ?? 0 };
      const value = compileDecoder(spec).fromRegisters(hex(c.words), c.at ?? 0);
      // toEqual tells 7n from 7, an Unsigned from a bigint, and NaN from anything else.
      expect(value).toEqual(expected(c));
      expect(typeof value).toBe(typeof expected(c));
    },
  );
});

describe('response PDU → data, exception or error', () => {
  it.each(table.responses.map((c) => [`fc ${c.fc} x${c.count}: ${c.pdu} (${c.source})`, c] as const))('%s', (_name, c) => {
    const e = c.expect;
    const parse = () => parseReadResponse(c.fc, c.count, hex(c.pdu));
    if ('error' in e) {
      expect(parse).toThrow(e.error);
      return;
    }
    const r = parse();
    if ('exception' in e) {
      expect(r).toEqual({ kind: 'exception', code: e.exception });
      expect(exceptionName(e.exception)).toBe(e.name);
      return;
    }
    if (r.kind !== 'data') throw new Error(`expected data, got exception ${r.code}`);
    if ('data' in e) expect(r.data).toEqual(hex(e.data));
    else expect(Array.from({ length: c.count }, (_, i) => (bitAt(r.data, i) ? '1' : '0')).join('')).toBe(e.bits);
  });
});
