// Every driver's sample.yaml is a complete config that loads without errors: the samples are the
// documentation users copy from, so CI keeps them valid.
import { readdirSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { INPUT_DRIVERS, OUTPUT_DRIVERS } from '../drivers/index.js';
import { configSchemaJson, formatConfigErrors, loadConfig } from '../src/config/index.js';

const DRIVERS = fileURLToPath(new URL('../drivers/', import.meta.url));
const samples = readdirSync(DRIVERS)
  .map((d) => join(DRIVERS, d, 'sample.yaml'))
  .filter((f) => existsSync(f));

describe('drivers/*/sample.yaml', () => {
  it('there are samples to check', () => {
    expect(samples.length).toBeGreaterThan(0);
  });
  it.each(samples.map((f) => [f.slice(DRIVERS.length)]))('%s loads without errors', (name) => {
    const result = loadConfig({ file: join(DRIVERS, name), env: {}, hostname: 'sample-host' });
    expect(result.ok ? '' : formatConfigErrors(result.errors)).toBe('');
  });
});

describe('drivers/<type>: one folder, one descriptor, one list', () => {
  const folders = readdirSync(DRIVERS, { withFileTypes: true })
    .filter((d) => d.isDirectory())
    .map((d) => d.name)
    .sort();
  const registered = [...INPUT_DRIVERS, ...OUTPUT_DRIVERS];

  it('every driver folder is registered once, under its folder name, and nothing else is', () => {
    expect(registered.map((d) => d.type).sort()).toEqual(folders);
  });

  it.each(folders.map((f) => [f]))('%s has its README, sample config, schema and descriptor', (folder) => {
    for (const file of ['README.md', 'sample.yaml', 'schema.ts', 'index.ts']) expect(existsSync(join(DRIVERS, folder, file)), `${folder}/${file}`).toBe(true);
  });

  it('the JSON Schema offers exactly the registered types, inputs and outputs apart', () => {
    const defs = configSchemaJson().definitions as Record<string, { properties?: { type?: { enum?: string[] } } }>;
    expect(defs.input.properties?.type?.enum).toEqual(INPUT_DRIVERS.map((d) => d.type));
    expect(defs.output.properties?.type?.enum).toEqual(OUTPUT_DRIVERS.map((d) => d.type));
    for (const d of INPUT_DRIVERS) expect(d.kind).toBe('input');
    for (const d of OUTPUT_DRIVERS) expect(d.kind).toBe('output');
  });
});
