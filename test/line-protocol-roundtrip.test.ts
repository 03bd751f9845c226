// Round trip over awkward strings: every writer (serializePoint, the export's serializeLine, the
// InfluxDB output's batchLines) must write text that reads back to the same values. Backslashes
// before and after every special character, trailing backslashes, quotes, line breaks in strings,
// control characters in tag values, unicode beyond the BMP: first every short combination, then
// random points from a seeded generator.
import { describe, expect, it } from 'vitest';
import { allLines, batchLines } from '../drivers/influxdb/lines.js';
import { parseLine, parseLines, parseSeriesKey, serializeLine, serializePoint, seriesKey } from '../src/core/line-protocol.js';
import { Unsigned, type FieldValue, type Point } from '../src/core/point.js';
import { SeriesBuilder } from '../src/store/builder.js';

/** The characters line protocol treats specially anywhere, plus plain ones. */
const SPECIALS = ['\\', ',', '=', ' ', '"', 'a'];

/** Every string of 1 to `max` characters over `chars`. */
function allStrings(chars: readonly string[], max: number): string[] {
  let level = [''];
  const out: string[] = [];
  for (let n = 1; n <= max; n++) {
    level = level.flatMap((s) => chars.map((c) => s + c));
    out.push(...level);
  }
  return out;
}

const pt = (measurement: string, tags: Record<string, string>, fields: Record<string, FieldValue>, timeUs = 0): Point => ({ measurement, tags, fields, timeUs });

/** What the InfluxDB output writes for one point (api v2: every type as it is). */
function outputLine(p: Point): string {
  const b = new SeriesBuilder();
  b.add(p.timeUs, p.fields);
  const lines = allLines(batchLines({ parts: [{ seriesKey: seriesKey(p.measurement, p.tags), group: b.build() }], points: 1 }, 'v2'));
  expect(lines).toHaveLength(1);
  return lines[0];
}

/** Writes p every way there is and checks each reads back to p. */
function expectRoundTrip(p: Point): void {
  const what = JSON.stringify(p, (_k, v: unknown) => (typeof v === 'bigint' ? `${v}n` : v instanceof Unsigned ? `${v.value}u` : v));
  const line = serializePoint(p, 'us');
  expect(line, what).not.toBe('');
  expect(parseLine(line, 'us', 0), `${what} written as ${JSON.stringify(line)}`).toEqual(p);
  const key = seriesKey(p.measurement, p.tags);
  expect(parseSeriesKey(key), what).toEqual({ measurement: p.measurement, tags: p.tags });
  expect(serializeLine(key, Object.entries(p.fields), p.timeUs, 'us'), what).toBe(line);
  expect(outputLine(p), what).toBe(line);
}

describe('round trip over awkward strings', () => {
  // A trailing backslash has no form in a name (it would escape the separator after it); see below.
  const names = allStrings(SPECIALS, 3).filter((s) => !s.endsWith('\\'));
  const strings = allStrings([...SPECIALS, '\n'], 3);

  it('every name of up to 3 specials, as measurement, tag key, tag value and field key', () => {
    expect(names.length).toBeGreaterThan(150);
    for (const s of names) {
      if (!s.startsWith('#')) expectRoundTrip(pt(s, {}, { f: 1 }));
      expectRoundTrip(pt('m', { [s]: 'v' }, { f: 1 }));
      expectRoundTrip(pt('m', { k: s }, { f: 1 }));
      expectRoundTrip(pt('m', {}, { [s]: 1 }));
      // next to each other: the escape of one must not reach into the other
      expectRoundTrip(pt(`${s}x`, { [s]: s, [`${s}2`]: `${s}${s}` }, { [s]: 1, [`${s}z`]: `${s}"` }));
    }
  });

  it('every string value of up to 3 specials or line breaks, also ending in a backslash', () => {
    for (const s of strings) expectRoundTrip(pt('m', { t: 'x' }, { s, after: 1 }));
  });

  it('the cases of the issue and the corpus', () => {
    expect(serializePoint(pt('cpu', { regions: 'eas\\ t' }, { value: 1 }))).toBe(String.raw`cpu,regions=eas\\ t value=1 0`);
    expect(serializePoint(pt('cpu', { regions: '\\,,=east' }, { value: 1 }))).toBe(String.raw`cpu,regions=\\,\,\=east value=1 0`);
    expect(serializePoint(pt('cpu', { regions: 'east\\ ' }, { value: 1 }))).toBe(String.raw`cpu,regions=east\\  value=1 0`);
    expect(serializePoint(pt('cpu', { 'reg\\=ion': 'east' }, { value: 1 }))).toBe(String.raw`cpu,reg\\=ion=east value=1 0`);
    expect(serializePoint(pt('t', {}, { s: 'backslash \\ then quote " .' }))).toBe(String.raw`t s="backslash \\ then quote \" ." 0`);
    expectRoundTrip(pt('test', { APPLE: 'orange', 'A FOO': 'bar' }, { a: 42n }));
    expect(serializePoint(pt('test', { APPLE: 'orange', 'A FOO': 'bar' }, { a: 42n }))).toBe(String.raw`test,A\ FOO=bar,APPLE=orange a=42i 0`);
  });

  it('names ending in backslashes or holding line breaks (no line-protocol form): written the documented way, every writer alike', () => {
    const p = pt('m\\', { 'k\\\\': 'v\\', nl: 'a\nb' }, { 'f\\': 1, s: 'x\\' });
    const line = serializePoint(p, 'us');
    expect(line).toBe(String.raw`m,k=v,nl=a\ b f=1,s="x\\" 0`);
    expect(outputLine(p)).toBe(line);
    expect(parseLine(line, 'us', 0)).toEqual(pt('m', { k: 'v', nl: 'a b' }, { f: 1, s: 'x\\' }));
  });

  it('random points over awkward pieces (seeded)', () => {
    let seed = 0x1e57;
    const rnd = (): number => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32);
    const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)];
    const NAME = ['\\', '\\\\', ',', '=', ' ', '"', '\\,', '\\ ', '\\=', '\\"', ' \\', 'é', '日', '🚀', '\u{10FFFF}', '\uFFFD', 'a', 'Z', '_', "'"];
    const VALUE = [...NAME, '\t', '\u0001', '\r'];
    const STRING = [...VALUE, '\n', '\r\n', '\\n', '""', '\\\\"'];
    const word = (pieces: readonly string[], min: number): string => {
      let s = '';
      const n = min + Math.floor(rnd() * 5);
      for (let i = 0; i < n; i++) s += pick(pieces);
      return s;
    };
    const name = (): string => {
      const s = word(NAME, 1).replace(/\\+$/, '');
      return s === '' || s.startsWith('#') ? 'n' + s : s;
    };
    const value = (): FieldValue => {
      switch (Math.floor(rnd() * 5)) {
        case 0:
          return (rnd() - 0.5) * 10 ** Math.floor(rnd() * 20 - 10);
        case 1:
          return BigInt(Math.floor((rnd() - 0.5) * 2 ** 53));
        case 2:
          return new Unsigned(BigInt(Math.floor(rnd() * 2 ** 53)));
        case 3:
          return rnd() < 0.5;
        default:
          return word(STRING, 0);
      }
    };
    const lines: string[] = [];
    const points: Point[] = [];
    for (let i = 0; i < 2000; i++) {
      const tags: Record<string, string> = {};
      for (let t = Math.floor(rnd() * 4); t > 0; t--) {
        const v = word(VALUE, 1).replace(/\\+$/, '');
        tags[name()] = v === '' ? 'v' : v;
      }
      const fields: Record<string, FieldValue> = {};
      for (let f = 1 + Math.floor(rnd() * 4); f > 0; f--) {
        const k = name();
        // integer-like keys are ordered first by JS objects whatever the line says
        if (!/^(0|[1-9]\d*)$/.test(k)) fields[k] = value();
      }
      if (Object.keys(fields).length === 0) fields.v = 1;
      const p = pt(name(), tags, fields, Math.floor((rnd() - 0.5) * 2 ** 52));
      expectRoundTrip(p);
      points.push(p);
      lines.push(serializePoint(p, 'us'));
    }
    // all of them as one text, as an export writes it
    const back = parseLines(lines.join('\n'), { precision: 'us', defaultTimeUs: 0 });
    expect(back.rejects).toEqual([]);
    expect(back.points).toEqual(points);
  });
});
