// Every driver runs its contract: the drivers the contract suites cover are exactly the registered ones,
// so a driver added to drivers/index.ts without a rig in input-rigs.ts / output-rigs.ts fails here.
import { describe, expect, it } from 'vitest';
import { INPUT_DRIVERS, OUTPUT_DRIVERS } from '../../drivers/index.js';
import { INPUT_RIGS } from './input-rigs.js';
import { OUTPUT_RIGS } from './output-rigs.js';

const sorted = (types: Iterable<string>) => [...new Set(types)].sort();

describe('contract coverage', () => {
  it('the input contract runs on every input driver in INPUT_DRIVERS, through its own descriptor', () => {
    expect(sorted(Object.keys(INPUT_RIGS))).toEqual(sorted(INPUT_DRIVERS.map((d) => d.type)));
    for (const [type, make] of Object.entries(INPUT_RIGS)) expect(make().driver).toBe(INPUT_DRIVERS.find((d) => d.type === type));
  });

  it('the output contract runs on every output driver in OUTPUT_DRIVERS, through its own descriptor', () => {
    expect(sorted(OUTPUT_RIGS.map((r) => r.type))).toEqual(sorted(OUTPUT_DRIVERS.map((d) => d.type)));
    for (const { type, make } of OUTPUT_RIGS) expect(make().driver).toBe(OUTPUT_DRIVERS.find((d) => d.type === type));
  });
});
