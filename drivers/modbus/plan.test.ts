// The request planner: as few requests as the protocol allows, gaps read through when cheaper.
import { describe, expect, it } from 'vitest';
import { gapsOf, planRequests, type PlanItem } from './plan.js';

const reg = (table: PlanItem['table'], address: number, type: PlanItem['type'] = table === 'coil' || table === 'discrete' ? 'bool' : 'uint16'): PlanItem => ({
  table,
  address,
  type,
});
const shape = (items: PlanItem[], options = {}) => planRequests(items, options).map((r) => [r.table, r.fc, r.address, r.count, r.items.length]);

describe('planRequests', () => {
  it('reads contiguous registers of one table in one request, whatever the config order', () => {
    expect(shape([reg('holding', 2, 'float32'), reg('holding', 0, 'int32'), reg('holding', 4, 'float64'), reg('holding', 8)])).toEqual([['holding', 3, 0, 9, 4]]);
  });

  it('keeps tables apart and orders coil, discrete, input, holding', () => {
    expect(shape([reg('holding', 0), reg('input', 0), reg('discrete', 0), reg('coil', 0)])).toEqual([
      ['coil', 1, 0, 1, 1],
      ['discrete', 2, 0, 1, 1],
      ['input', 4, 0, 1, 1],
      ['holding', 3, 0, 1, 1],
    ]);
  });

  it('splits at 125 registers and 2000 bits', () => {
    const regs = Array.from({ length: 130 }, (_, i) => reg('input', i));
    expect(shape(regs)).toEqual([
      ['input', 4, 0, 125, 125],
      ['input', 4, 125, 5, 5],
    ]);
    const floats = Array.from({ length: 40 }, (_, i) => reg('holding', i * 4, 'float64')); // 160 registers
    expect(shape(floats)).toEqual([
      ['holding', 3, 0, 124, 31],
      ['holding', 3, 124, 36, 9],
    ]);
    const coils = Array.from({ length: 2001 }, (_, i) => reg('coil', i));
    expect(shape(coils)).toEqual([
      ['coil', 1, 0, 2000, 2000],
      ['coil', 1, 2000, 1, 1],
    ]);
  });

  it('reads small gaps through and starts a new request at large ones', () => {
    expect(shape([reg('holding', 0), reg('holding', 9)])).toEqual([['holding', 3, 0, 10, 2]]); // gap of 8
    expect(shape([reg('holding', 0), reg('holding', 10)])).toEqual([
      ['holding', 3, 0, 1, 1],
      ['holding', 3, 10, 1, 1],
    ]);
    expect(shape([reg('holding', 0), reg('holding', 9)], { maxGapRegisters: 0 })).toEqual([
      ['holding', 3, 0, 1, 1],
      ['holding', 3, 9, 1, 1],
    ]);
    expect(shape([reg('coil', 0), reg('coil', 65)])).toEqual([['coil', 1, 0, 66, 2]]);
    expect(shape([reg('coil', 0), reg('coil', 66)])).toHaveLength(2);
  });

  it('shares registers between overlapping items', () => {
    // A uint32 and its low word read separately: one request of 2 registers.
    expect(shape([reg('holding', 10, 'uint32'), reg('holding', 11, 'uint16')])).toEqual([['holding', 3, 10, 2, 2]]);
  });

  it('reaches the top of the address space', () => {
    expect(shape([reg('holding', 65532, 'uint64')])).toEqual([['holding', 3, 65532, 4, 1]]);
  });
});

describe('planRequests: what is read alone', () => {
  it('reads an ownRequest item alone and never reads through it', () => {
    const items = [reg('holding', 0), reg('holding', 1), { ...reg('holding', 2), ownRequest: true }, reg('holding', 3), reg('holding', 6)];
    expect(shape(items)).toEqual([
      ['holding', 3, 0, 2, 2],
      ['holding', 3, 2, 1, 1],
      ['holding', 3, 3, 4, 2],
    ]);
  });

  it('does not read through avoided spans, even within the gap limit', () => {
    const items = [reg('input', 0), reg('input', 4), reg('input', 9)];
    expect(shape(items)).toEqual([['input', 4, 0, 10, 3]]);
    expect(shape(items, { avoid: [{ table: 'input', start: 1, end: 4 }] })).toEqual([
      ['input', 4, 0, 1, 1],
      ['input', 4, 4, 6, 2],
    ]);
    // A span of another table changes nothing.
    expect(shape(items, { avoid: [{ table: 'holding', start: 1, end: 4 }] })).toEqual([['input', 4, 0, 10, 3]]);
  });

  it('gapsOf: the addresses a request reads that no item needs', () => {
    const [r] = planRequests([reg('holding', 0), reg('holding', 1), reg('holding', 5, 'uint32'), reg('holding', 9)]);
    expect(gapsOf(r)).toEqual([
      { table: 'holding', start: 2, end: 5 },
      { table: 'holding', start: 7, end: 9 },
    ]);
  });
});
