// Payload decoding of the mqtt input, table-driven: what each format makes of a message.
import { describe, expect, it } from 'vitest';
import { Unsigned } from '../../src/core/point.js';
import { ValueError, epochToUs, rfc3339ToUs } from '../../src/core/text-values.js';
import { compileTopicTags, createDecoder, parseValue, type DecoderSettings } from './payload.js';

const RECEIVED_US = 1_700_000_000_123_456;
const enc = (s: string) => new TextEncoder().encode(s);

function decode(settings: Partial<DecoderSettings>, payload: string, topic = 't') {
  return createDecoder({ format: 'json', measurement: 'm', tags: {}, ...settings })(topic, enc(payload), RECEIVED_US);
}

describe('format json', () => {
  const cases: { name: string; payload: string; json?: DecoderSettings['json']; fields: Record<string, unknown>[]; timesUs?: number[] }[] = [
    {
      name: 'numbers are floats, booleans and strings keep their type; the time is the receipt',
      payload: '{"temp": 21.5, "count": 20, "on": true, "state": "idle"}',
      fields: [{ temp: 21.5, count: 20, on: true, state: 'idle' }],
      timesUs: [RECEIVED_US],
    },
    {
      name: 'nested objects and arrays are flattened with _, nulls left out',
      payload: '{"env": {"t": 1, "h": {"rel": 40}}, "v": [1, 2], "gone": null, "tags": []}',
      fields: [{ env_t: 1, env_h_rel: 40, v_0: 1, v_1: 2 }],
    },
    {
      name: 'fields picks keys; naming an object picks everything under it',
      payload: '{"temp": 21.5, "noise": 3, "env": {"t": 1, "h": 2}}',
      json: { fields: ['temp', 'env'], time_precision: 'ms' },
      fields: [{ temp: 21.5, env_t: 1, env_h: 2 }],
    },
    {
      name: 'time_key in ms (a number), left out of the fields',
      payload: '{"ts": 1700000000123, "v": 1}',
      json: { time_key: 'ts', time_precision: 'ms' },
      fields: [{ v: 1 }],
      timesUs: [1_700_000_000_123_000],
    },
    {
      name: 'time_key in fractional seconds, exact to the µs',
      payload: '{"ts": 1700000000.123, "v": 1}',
      json: { time_key: 'ts', time_precision: 's' },
      fields: [{ v: 1 }],
      timesUs: [1_700_000_000_123_000],
    },
    {
      name: 'time_key in ns as a string of digits keeps every µs (floored)',
      payload: '{"ts": "1700000000123456789", "v": 1}',
      json: { time_key: 'ts', time_precision: 'ns' },
      fields: [{ v: 1 }],
      timesUs: [1_700_000_000_123_456],
    },
    {
      name: 'time_key as RFC 3339 with an offset and µs',
      payload: '{"ts": "2023-11-14T23:13:20.123456+01:00", "v": 1}',
      json: { time_key: 'ts', time_precision: 'ms' },
      fields: [{ v: 1 }],
      timesUs: [1_700_000_000_123_456], // 23:13:20+01:00 is 22:13:20Z
    },
    {
      name: 'time_key may name a nested key by its flattened name',
      payload: '{"meta": {"ts": 1700000000000}, "v": 1}',
      json: { time_key: 'meta_ts', time_precision: 'ms' },
      fields: [{ v: 1 }],
      timesUs: [1_700_000_000_000_000],
    },
    {
      name: 'a top-level array of objects is a batch: one point each',
      payload: '[{"ts": 1000, "v": 1}, {"ts": 2000, "v": 2}]',
      json: { time_key: 'ts', time_precision: 'ms' },
      fields: [{ v: 1 }, { v: 2 }],
      timesUs: [1_000_000, 2_000_000],
    },
  ];
  it.each(cases)('$name', ({ payload, json, fields, timesUs }) => {
    const d = decode({ json }, payload);
    expect(d.points.map((p) => p.fields)).toEqual(fields);
    if (timesUs) expect(d.points.map((p) => p.timeUs)).toEqual(timesUs);
    expect(d.points.every((p) => p.measurement === 'm')).toBe(true);
  });

  const bad: { payload: string; json?: DecoderSettings['json']; error: RegExp }[] = [
    { payload: '{"temp": 21.5', error: /^not JSON/ },
    { payload: '42', error: /is not a JSON object/ },
    { payload: '"hello"', error: /is not a JSON object/ },
    { payload: '[]', error: /empty JSON array/ },
    { payload: '[{"v": 1}, 3]', error: /^item 1: is not a JSON object/ },
    { payload: '{}', error: /no values/ },
    { payload: '{"a": null, "b": {}}', error: /no values/ },
    { payload: '{"x": 1}', json: { fields: ['temp'], time_precision: 'ms' }, error: /none of the fields temp/ },
    { payload: '{"v": 1}', json: { time_key: 'ts', time_precision: 'ms' }, error: /no time: key ts is missing/ },
    { payload: '{"ts": true, "v": 1}', json: { time_key: 'ts', time_precision: 'ms' }, error: /is a boolean/ },
    { payload: '{"ts": "yesterday", "v": 1}', json: { time_key: 'ts', time_precision: 'ms' }, error: /not RFC 3339/ },
    { payload: '{"ts": 1e300, "v": 1}', json: { time_key: 'ts', time_precision: 'ms' }, error: /out of range/ },
    { payload: '{"a":'.repeat(40) + '1' + '}'.repeat(40), error: /nested deeper than 32/ },
  ];
  it.each(bad)('refuses $payload', ({ payload, json, error }) => {
    expect(() => decode({ json }, payload)).toThrow(ValueError);
    expect(() => decode({ json }, payload)).toThrow(error);
  });
});

describe('format value', () => {
  const cases: [string, number | boolean][] = [
    ['21.5', 21.5],
    [' 42 \n', 42],
    ['-1e-3', -0.001],
    ['.5', 0.5],
    ['true', true],
    ['FALSE', false],
    ['True', true],
  ];
  it.each(cases)('%j is %j', (payload, value) => {
    const d = decode({ format: 'value' }, payload);
    expect(d.points).toEqual([{ measurement: 'm', tags: {}, fields: { value }, timeUs: RECEIVED_US }]);
    expect(typeof d.points[0].fields.value).toBe(typeof value);
  });
  it.each(['', '  ', 'abc', '1,5', '1e400', 'NaN', 'Infinity', '0x10', '{"v":1}'])('refuses %j', (payload) => {
    expect(() => parseValue(payload)).toThrow(ValueError);
  });
});

describe('format influx', () => {
  it('one or more lines, with their own measurement, tags and types; no timestamp means the receipt', () => {
    const d = decode({ format: 'influx' }, 'cpu,host=a usage=1.5,n=3i,u=4u,ok=t,s="x" 1700000000000000000\nmem free=2\n');
    expect(d.points).toEqual([
      { measurement: 'cpu', tags: { host: 'a' }, fields: { usage: 1.5, n: 3n, u: new Unsigned(4n), ok: true, s: 'x' }, timeUs: 1_700_000_000_000_000 },
      { measurement: 'mem', tags: {}, fields: { free: 2 }, timeUs: RECEIVED_US },
    ]);
    expect(d.rejectedLines).toEqual([]);
  });
  it('takes the timestamp precision from the settings', () => {
    expect(decode({ format: 'influx', influxPrecision: 'ms' }, 'm v=1 1700000000123').points[0].timeUs).toBe(1_700_000_000_123_000);
  });
  it('keeps the good lines of a message and reports the bad ones', () => {
    const d = decode({ format: 'influx' }, 'm v=1 1000\nthis is not line protocol\nm v=3 3000');
    expect(d.points.map((p) => p.fields.v)).toEqual([1, 3]);
    expect(d.rejectedLines).toHaveLength(1);
    expect(d.rejectedLines[0].line).toBe(2);
  });
  it('refuses a message with no good line', () => {
    expect(() => decode({ format: 'influx' }, 'garbage\nmore garbage')).toThrow(/not line protocol: line 1/);
    expect(() => decode({ format: 'influx' }, '# only a comment\n')).toThrow(/no line-protocol lines/);
  });
  it("input tags, then topic tags, then the line's own tags: the later wins", () => {
    const d = decode({ format: 'influx', tags: { site: 'p', area: 'x', host: 'y' }, topicTags: 'plant/{area}/{host}' }, 'm,host=line v=1', 'plant/north/dev');
    expect(d.points[0].tags).toEqual({ site: 'p', area: 'north', host: 'line' });
  });
});

describe('topic_tags', () => {
  const cases: [string, string, Record<string, string> | undefined][] = [
    ['plant/{area}/{device}/state', 'plant/north/pump-1/state', { area: 'north', device: 'pump-1' }],
    ['plant/+/{device}/state', 'plant/north/pump-1/state', { device: 'pump-1' }],
    ['plant/{area}/#', 'plant/north/pump-1/state/extra', { area: 'north' }],
    ['plant/{area}/#', 'plant/north', { area: 'north' }],
    ['plant/{area}/{device}/state', 'plant/north/pump-1/status', undefined],
    ['plant/{area}/{device}/state', 'plant/north/state', undefined],
    ['plant/{area}/{device}/state', 'plant/north/pump-1/state/x', undefined],
    ['plant/{area}/{device}', 'plant//pump-1', { device: 'pump-1' }],
  ];
  it.each(cases)('%s on %s', (template, topic, tags) => {
    expect(compileTopicTags(template)(topic)).toEqual(tags);
  });

  it('topic tags win over the input tags; a topic that does not fit keeps the input tags only', () => {
    const settings: Partial<DecoderSettings> = { format: 'value', tags: { site: 'p', area: 'default' }, topicTags: 'plant/{area}/{device}/state' };
    const hit = decode(settings, '1', 'plant/north/pump-1/state');
    expect(hit.topicMatched).toBe(true);
    expect(hit.points[0].tags).toEqual({ site: 'p', area: 'north', device: 'pump-1' });
    const miss = decode(settings, '1', 'plant/north');
    expect(miss.topicMatched).toBe(false);
    expect(miss.points[0].tags).toEqual({ site: 'p', area: 'default' });
  });

  it('every point gets its own tags object (the agent adds its tags per point)', () => {
    const d = decode({ tags: { a: '1' } }, '[{"v":1},{"v":2}]');
    expect(d.points[0].tags).not.toBe(d.points[1].tags);
  });
});

describe('times', () => {
  it.each([
    ['1700000000', 's', 1_700_000_000_000_000],
    ['1700000000.5', 's', 1_700_000_000_500_000],
    ['1.7e12', 'ms', 1_700_000_000_000_000],
    ['-1500', 'ms', -1_500_000],
    ['1700000000123456789', 'ns', 1_700_000_000_123_456],
    ['-1', 'ns', -1],
  ] as const)('epoch %s %s', (text, precision, us) => {
    expect(epochToUs(text, precision)).toBe(us);
  });
  it.each([
    ['2024-05-01T12:00:00Z', Date.UTC(2024, 4, 1, 12) * 1000],
    ['2024-05-01 12:00:00.000001z', Date.UTC(2024, 4, 1, 12) * 1000 + 1],
    ['2024-05-01T12:00:00.9999999-00:30', Date.UTC(2024, 4, 1, 12, 30) * 1000 + 999_999],
  ])('RFC 3339 %s', (text, us) => {
    expect(rfc3339ToUs(text)).toBe(us);
  });
  it.each(['2024-05-01T12:00:00', '2024-02-30T00:00:00Z', '2024-05-01T24:00:00Z'])('refuses %s', (text) => {
    expect(() => rfc3339ToUs(text)).toThrow(ValueError);
  });
});

describe('bytes that are not UTF-8', () => {
  const bytes = (...parts: (string | number[])[]) => Buffer.concat(parts.map((p) => (typeof p === 'string' ? Buffer.from(p) : Buffer.from(p))));
  const decodeBytes = (settings: Partial<DecoderSettings>, payload: Uint8Array) =>
    createDecoder({ format: 'json', measurement: 'm', tags: {}, ...settings })('t', payload, RECEIVED_US);

  it('influx: the lines holding them are rejected with their number, the others kept; nothing becomes U+FFFD', () => {
    const d = decodeBytes({ format: 'influx' }, bytes('m', [0xff], ' v=1 1000000000\n', 'm', [0xfe], ' v=2 2000000000\nok v=3 3000000000\n'));
    expect(d.points).toEqual([{ measurement: 'ok', tags: {}, fields: { v: 3 }, timeUs: 3_000_000 }]);
    expect(d.rejectedLines.map((r) => r.line)).toEqual([1, 2]);
    expect(d.rejectedLines[0].error).toMatch(/invalid UTF-8 \(byte 0xff\) at column 2/);
    expect(d.rejectedLines[1].error).toMatch(/invalid UTF-8 \(byte 0xfe\)/);
    expect(() => decodeBytes({ format: 'influx' }, bytes('m v="a', [0xc3], '"'))).toThrow(/not line protocol: line 1: invalid UTF-8 \(byte 0xc3\)/);
    // a byte order mark and multi-byte characters are fine
    expect(decodeBytes({ format: 'influx' }, bytes([0xef, 0xbb, 0xbf], 'é,t=日 v="🚀" 1000')).points[0]).toMatchObject({ measurement: 'é', tags: { t: '日' }, fields: { v: '🚀' } });
  });

  it('json and value: the message is refused, naming the byte', () => {
    expect(() => decodeBytes({ format: 'json' }, bytes('{"s": "a', [0xff], '"}'))).toThrow(literal('not valid UTF-8 (byte 0xff at offset 8)'));
    expect(() => decodeBytes({ format: 'value' }, bytes('2', [0xe2, 0x82]))).toThrow(literal('not valid UTF-8 (byte 0xe2 at offset 1)'));
    expect(decodeBytes({ format: 'value' }, bytes('21.5')).points[0].fields).toEqual({ value: 21.5 });
  });

  it('json: an unpaired surrogate escape (no UTF-8 form) is refused rather than stored as U+FFFD', () => {
    expect(() => decode({}, '{"s": "a\\ud800"}')).toThrow(/"s": not valid Unicode/);
    expect(() => decode({}, '{"\\udc00": 1}')).toThrow(/not valid Unicode/);
    expect(decode({}, '{"s": "\\ud83d\\ude80"}').points[0].fields).toEqual({ s: '🚀' });
  });
});

/** A pattern matching the text as it is. */
function literal(message: string): RegExp {
  return new RegExp(message.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'));
}
