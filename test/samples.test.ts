// Every driver's sample.yaml is a complete config that loads without errors: the samples are the
// documentation users copy from, so CI keeps them valid.
import { readdirSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { formatConfigErrors, loadConfig } from '../src/config/index.js';

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
