// The serial input's config: the sample is valid and is what the README shows; the cross-field rules
// that a JSON Schema cannot say are reported with their position.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { formatConfigError, loadConfig } from '../../src/config/index.js';
import type { SerialInputConfig } from '../../drivers/serial/schema.js';

const here = (name: string): string => readFileSync(new URL(name, import.meta.url), 'utf8');

function load(lines: string[]) {
  return loadConfig({ text: lines.join('\n') + '\n', file: 'test.yaml', env: {}, hostname: 'h' });
}

function errors(lines: string[]): string[] {
  const r = load(lines);
  return r.ok ? [] : r.errors.map((e) => formatConfigError(e).replace(/^test\.yaml:(\d+:\d+): /, '$1 '));
}

const head = ['version: 1', 'inputs:', '  s:', '    type: serial', '    port: /dev/ttyUSB0'];

describe('serial config', () => {
  it('sample.yaml is a complete, valid config, and the README embeds it verbatim', () => {
    const text = here('sample.yaml');
    const r = loadConfig({ text, file: 'sample.yaml', env: {}, hostname: 'h' });
    if (!r.ok) throw new Error(r.errors.map(formatConfigError).join('\n'));
    expect(Object.values(r.config.inputs).map((i) => (i as SerialInputConfig).format)).toEqual(['csv', 'json', 'influx', 'regex']);
    expect(r.config.inputs.climate).toMatchObject({ delimiter: '\r\n', measurement: 'climate' });
    expect(r.config.inputs.scale).toMatchObject({ delimiter: ';', measurement: 'scale', baud_rate: 9600, max_line_length: 4096 });
    expect(here('README.md')).toContain('```yaml\n' + text + '```');
  });

  it('a delimiter written in single quotes keeps its backslashes: refused with the fix', () => {
    expect(errors([...head, "    delimiter: '\\r\\n'", '    format: influx'])).toEqual([
      '6:16 inputs.s.delimiter: "\\r\\n" holds a backslash escape as text: write the delimiter in double quotes ("\\r\\n") so YAML turns it into control characters',
    ]);
    const r = load([...head, '    delimiter: "\\r\\n"', '    format: influx']);
    expect(r.ok && r.config.inputs.s).toMatchObject({ delimiter: '\r\n' });
  });

  it('format influx names its measurement in each line; a csv separator cannot be part of the delimiter', () => {
    expect(errors([...head, '    format: influx', '    measurement: m'])).toEqual([
      '7:5 inputs.s.measurement: format influx takes the measurement from each line; remove measurement',
    ]);
    expect(errors([...head, '    delimiter: ";"', '    format: csv', '    csv: { columns: [a], separator: ";" }'])).toEqual([
      '8:37 inputs.s.csv.separator: the separator ";" is part of the line delimiter ";"',
    ]);
    expect(errors([...head, '    format: csv', '    influx: { precision: s }', '    csv: { columns: [a] }'])).toEqual([
      '7:5 inputs.s.influx: influx settings apply only to format: influx (format is csv)',
    ]);
  });
});
