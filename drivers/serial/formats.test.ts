// The line decoders, table-driven: each format's good lines with their exact fields, types and times,
// and the lines each refuses with the reason a log line would show.
import { describe, expect, it } from 'vitest';
import { Unsigned, type Fields } from '../../src/core/point.js';
import { loadConfig } from '../../src/config/index.js';
import type { SerialInputConfig } from '../../drivers/serial/schema.js';
import { ValueError, epochToUs, rfc3339ToUs } from '../../src/core/text-values.js';
import {
  createDecoder,
  csvReader,
  inferValue,
  jsonReader,
  parseTime,
  regexReader,
  splitCsv,
  type CsvSettings,
  type JsonSettings,
  type TimeFormat,
} from './formats.js';

const NOW_US = 1_714_564_800_123_456; // 2024-05-01T12:00:00.123456Z, the "time of receipt"
const T0_US = 1_700_000_000_000_000; // 2023-11-14T22:13:20Z

type Case<S> = { line: string; settings?: Partial<S>; fields?: Fields; timeUs?: number; error?: RegExp };

function check<S>(read: (s: S) => (line: string, receivedUs: number) => { fields: Fields; timeUs: number }, base: S, cases: Case<S>[]): void {
  for (const c of cases) {
    it(`${JSON.stringify(c.line)}${c.settings ? ' with ' + JSON.stringify(c.settings) : ''}`, () => {
      const decode = read({ ...base, ...c.settings });
      if (c.error) {
        // Every refusal is a ValueError (the drivers' own errors extend it): counted as garbage.
        expect(() => decode(c.line, NOW_US)).toThrow(ValueError);
        expect(() => decode(c.line, NOW_US)).toThrow(c.error);
        return;
      }
      const r = decode(c.line, NOW_US);
      expect(r.fields).toStrictEqual(c.fields);
      expect(r.timeUs).toBe(c.timeUs ?? NOW_US);
    });
  }
}

describe('inferValue', () => {
  it.each([
    ['21.5', 21.5],
    ['20', 20],
    ['-3', -3],
    ['+.5', 0.5],
    ['1e-3', 0.001],
    ['7.', 7],
    ['true', true],
    ['FALSE', false],
    ['True', true],
    ['1', 1],
    ['0x10', '0x10'],
    ['NaN', 'NaN'],
    ['Infinity', 'Infinity'],
    ['ok', 'ok'],
    ['1.2.3', '1.2.3'],
    ['', undefined],
  ] as const)('%j → %j', (text, value) => {
    expect(inferValue(text, 'v')).toStrictEqual(value);
  });
  it('refuses a number beyond a float', () => {
    expect(() => inferValue('1e999', 'v')).toThrow(/v: "1e999" is out of the range of a float/);
  });
});

describe('times', () => {
  it.each([
    ['1700000000', 'unix', T0_US],
    ['1700000000.123456789', 'unix', T0_US + 123_456],
    ['1700000000000', 'unix_ms', T0_US],
    ['1700000000000.5', 'unix_ms', T0_US + 500],
    ['1.7e12', 'unix_ms', T0_US],
    ['1700000000000001', 'unix_us', T0_US + 1],
    ['1700000000000001999', 'unix_ns', T0_US + 1],
    ['-1500', 'unix_ns', -2], // floored, before 1970 too
    ['-1', 'unix', -1_000_000],
    ['2023-11-14T22:13:20Z', 'rfc3339', T0_US],
    ['2023-11-14T22:13:20.000001Z', 'rfc3339', T0_US + 1],
    ['2023-11-14 22:13:20.1234567z', 'rfc3339', T0_US + 123_456],
    ['2023-11-15T00:13:20+02:00', 'rfc3339', T0_US],
    ['2023-11-14T20:43:20-01:30', 'rfc3339', T0_US],
    ['2016-12-31T23:59:60Z', 'rfc3339', Date.UTC(2017, 0, 1) * 1000 - 1],
    ['1900-01-01T00:00:00Z', 'rfc3339', -2_208_988_800_000_000],
  ] as [string, TimeFormat, number][])('%s as %s', (text, format, us) => {
    expect(parseTime(text, format)).toBe(us);
  });
  it.each([
    ['2023-11-14T22:13:20', 'rfc3339', /a zone is required/],
    ['2023-02-30T00:00:00Z', 'rfc3339', /not a valid date/],
    ['2023-11-14T24:00:00Z', 'rfc3339', /not a valid date/],
    ['1700000000x', 'unix', /not an epoch number/],
    ['', 'unix_ms', /not an epoch number/],
    ['1e300', 'unix', /out of range/],
    ['0099-01-01T00:00:00Z', 'rfc3339', /out of range/],
    ['99999999999999999999', 'unix_ms', /out of range/],
  ] as [string, TimeFormat, RegExp][])('%j as %s is refused', (text, format, error) => {
    expect(() => parseTime(text, format)).toThrow(error);
  });
  it('exact where a double would floor to the µs below: 1.000001 s is 1000001 µs', () => {
    expect(Math.floor(1.000001 * 1e6)).toBe(1_000_000);
    expect(epochToUs('1.000001', 's')).toBe(1_000_001);
    expect(epochToUs('1700000000.123', 's')).toBe(T0_US + 123_000);
    expect(rfc3339ToUs('1970-01-01T00:00:00.000001Z')).toBe(1);
  });
});

describe('csv', () => {
  it.each([
    ['a,b', ',', [['a', false], ['b', false]]],
    [' a , b ', ',', [['a', false], ['b', false]]],
    ['a,,b,', ',', [['a', false], ['', false], ['b', false], ['', false]]],
    ['"x, y",2', ',', [['x, y', true], ['2', false]]],
    ['"say ""hi""" ,1', ',', [['say "hi"', true], ['1', false]]],
    ['1\t 2 ', '\t', [['1', false], ['2', false]]],
    ['1 \t2', ' ', [['1', false], ['2', false]]],
    ['1  2', ' ', [['1', false], ['', false], ['2', false]]],
    ['', ',', [['', false]]],
  ] as [string, string, [string, boolean][]][])('split %j by %j', (line, sep, cells) => {
    expect(splitCsv(line, sep).map((c) => [c.text, c.quoted])).toEqual(cells);
  });

  const base: CsvSettings = { columns: ['temperature', 'humidity', 'state'], separator: ',' };
  check(csvReader, base, [
    { line: '21.5,40,ok', fields: { temperature: 21.5, humidity: 40, state: 'ok' } },
    { line: '21.5, 40 , true', fields: { temperature: 21.5, humidity: 40, state: true } },
    { line: '21.5,,', fields: { temperature: 21.5 } },
    { line: '"21.5",40,"a,b"', fields: { temperature: '21.5', humidity: 40, state: 'a,b' } },
    { line: '21.5;40;ok', settings: { separator: ';' }, fields: { temperature: 21.5, humidity: 40, state: 'ok' } },
    {
      line: '1700000000123,21.5,ok',
      settings: { columns: ['ts', 'temperature', 'state'], time_column: 'ts', time_format: 'unix_ms' },
      fields: { temperature: 21.5, state: 'ok' },
      timeUs: T0_US + 123_000,
    },
    {
      line: '2023-11-14T22:13:20Z,21.5,ok',
      settings: { columns: ['ts', 'temperature', 'state'], time_column: 'ts', time_format: 'rfc3339' },
      fields: { temperature: 21.5, state: 'ok' },
      timeUs: T0_US,
    },
    { line: '5,40.1', error: /2 columns, expected 3 \(temperature,humidity,state\)/ },
    { line: '21.5,40,ok,extra', error: /4 columns, expected 3/ },
    { line: ',,', error: /no values/ },
    { line: '"21.5,40,ok', error: /unterminated quote at column 1/ },
    { line: '"21"x,40,ok', error: /text after a closing quote at column 5/ },
    { line: '1e999,1,ok', error: /temperature: "1e999" is out of the range/ },
    { line: ',21.5,ok', settings: { columns: ['ts', 'temperature', 'state'], time_column: 'ts', time_format: 'unix' }, error: /no time in column ts/ },
    { line: 'yesterday,21.5,ok', settings: { columns: ['ts', 'temperature', 'state'], time_column: 'ts', time_format: 'unix' }, error: /not an epoch number/ },
  ]);
});

describe('json', () => {
  const base: JsonSettings = { time_precision: 'ms' };
  check(jsonReader, base, [
    { line: '{"t":21.5,"on":true,"state":"ok","n":null}', fields: { t: 21.5, on: true, state: 'ok' } },
    { line: '{"env":{"t":21.5,"h":{"rel":40}},"v":[1,2]}', fields: { env_t: 21.5, env_h_rel: 40, v_0: 1, v_1: 2 } },
    { line: '{"env":{"t":21.5,"h":40},"x":1}', settings: { fields: ['env_t', 'x'] }, fields: { env_t: 21.5, x: 1 } },
    { line: '{"env":{"t":21.5,"h":40},"x":1}', settings: { fields: ['env'] }, fields: { env_t: 21.5, env_h: 40 } },
    { line: '{"ts":1700000000123,"t":1}', settings: { time_key: 'ts' }, fields: { t: 1 }, timeUs: T0_US + 123_000 },
    { line: '{"ts":1700000000.5,"t":1}', settings: { time_key: 'ts', time_precision: 's' }, fields: { t: 1 }, timeUs: T0_US + 500_000 },
    { line: '{"ts":"1700000000000001999","t":1}', settings: { time_key: 'ts', time_precision: 'ns' }, fields: { t: 1 }, timeUs: T0_US + 1 },
    { line: '{"ts":"2023-11-14T22:13:20Z","t":1}', settings: { time_key: 'ts' }, fields: { t: 1 }, timeUs: T0_US },
    { line: '{"meta":{"ts":1700000000000},"t":1}', settings: { time_key: 'meta_ts' }, fields: { t: 1 }, timeUs: T0_US },
    { line: '{"t":21.5', error: /not JSON/ },
    { line: '[1,2]', error: /not a JSON object/ },
    { line: '"text"', error: /not a JSON object/ },
    { line: '{}', error: /no values/ },
    { line: '{"a":{"b":null}}', error: /no values/ },
    { line: '{"y":1}', settings: { fields: ['x'] }, error: /none of the fields x/ },
    { line: '{"t":1}', settings: { time_key: 'ts' }, error: /no time: key ts is missing/ },
    { line: '{"ts":"soon","t":1}', settings: { time_key: 'ts' }, error: /not RFC 3339/ },
    { line: '{"t":1e999}', error: /t: number out of the range of a float/ },
    { line: `{"a":${'['.repeat(40)}1${']'.repeat(40)}}`, error: /nested deeper than 32 levels/ },
  ]);
});

describe('regex', () => {
  check(regexReader, { pattern: '^T=(?<temperature>[-0-9.]+) H=(?<humidity>[0-9.]+)(?: S=(?<state>\\w+))?$' }, [
    { line: 'T=21.5 H=40', fields: { temperature: 21.5, humidity: 40 } },
    { line: 'T=-3 H=40.5 S=ok', fields: { temperature: -3, humidity: 40.5, state: 'ok' } },
    { line: 'T=21.5 H=40 S=true', fields: { temperature: 21.5, humidity: 40, state: true } },
    { line: 'T=1.2.3 H=4', fields: { temperature: '1.2.3', humidity: 4 } },
    { line: 'H=40 T=21.5', error: /does not match the pattern/ },
  ]);
  check(regexReader, { pattern: '(?<a>x)?y' }, [{ line: 'y', error: /captured no values/ }]);
});

describe('createDecoder (a whole input config)', () => {
  function serialConfig(lines: string[]): SerialInputConfig {
    const text = ['version: 1', 'inputs:', '  dev:', '    type: serial', '    port: /dev/ttyUSB0', ...lines.map((l) => '    ' + l)].join('\n');
    const r = loadConfig({ text, file: 'x.yaml', env: {}, hostname: 'h' });
    if (!r.ok) throw new Error(JSON.stringify(r.errors));
    return r.config.inputs.dev as SerialInputConfig;
  }

  it('csv: measurement defaults to the input id; the input tags are on every point, each its own object', () => {
    const decode = createDecoder(serialConfig(['format: csv', 'csv: { columns: [t] }', 'tags: { room: lab }']));
    const a = decode('1', NOW_US)!;
    const b = decode('2', NOW_US)!;
    expect(a).toStrictEqual({ measurement: 'dev', tags: { room: 'lab' }, fields: { t: 1 }, timeUs: NOW_US });
    expect(a.tags).not.toBe(b.tags);
  });

  it('influx: the line names its measurement and types; input tags are added, the line’s own win', () => {
    const decode = createDecoder(serialConfig(['format: influx', 'tags: { room: lab, site: a }']));
    expect(decode('climate,site=b t=21.5,n=3i,u=4u,on=T,s="x" 1700000000000000000', NOW_US)).toStrictEqual({
      measurement: 'climate',
      tags: { room: 'lab', site: 'b' },
      fields: { t: 21.5, n: 3n, u: new Unsigned(4n), on: true, s: 'x' },
      timeUs: T0_US,
    });
    expect(decode('climate t=1', NOW_US)!.timeUs).toBe(NOW_US);
    expect(decode('# a comment', NOW_US)).toBeNull();
    expect(() => decode('climate t=', NOW_US)).toThrow(/not line protocol: /);
  });

  it('influx with precision s', () => {
    const decode = createDecoder(serialConfig(['format: influx', 'influx: { precision: s }']));
    expect(decode('m v=1 1700000000', NOW_US)!.timeUs).toBe(T0_US);
  });

  it('json and regex through the config', () => {
    expect(createDecoder(serialConfig(['format: json', 'measurement: m']))('{"a":1}', NOW_US)).toStrictEqual({ measurement: 'm', tags: {}, fields: { a: 1 }, timeUs: NOW_US });
    expect(createDecoder(serialConfig(['format: regex', "regex: { pattern: '^W=(?<w>[0-9.]+)kg$' }"]))('W=1.5kg', NOW_US)!.fields).toStrictEqual({ w: 1.5 });
  });
});
