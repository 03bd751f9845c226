import { describe, expect, it } from 'vitest';
import {
  LineProtocolError,
  compareUtf8,
  floorToPrecision,
  formatFieldValue,
  formatTime,
  parseLine,
  parseLines,
  parseSeriesKey,
  serializeLine,
  serializePoint,
  seriesKey,
  type SerializeStats,
} from '../src/core/line-protocol.js';
import { INT64_MAX, INT64_MIN, Unsigned, type FieldValue, type Point } from '../src/core/point.js';
import type { Precision } from '../src/core/time.js';

const DEFAULT = 1_700_000_000_123_456; // µs, used for lines without a timestamp

function pt(measurement: string, tags: Record<string, string>, fields: Record<string, FieldValue>, timeUs = DEFAULT): Point {
  return { measurement, tags, fields, timeUs };
}

/** toEqual treats -0 and 0 alike in places; compare floats with Object.is on top. */
function expectSamePoint(actual: Point, expected: Point): void {
  expect(actual).toEqual(expected);
  expect(Object.keys(actual.fields)).toEqual(Object.keys(expected.fields));
  for (const k of Object.keys(expected.fields)) {
    const a = actual.fields[k];
    const e = expected.fields[k];
    expect(typeof a).toBe(typeof e);
    if (typeof e === 'number') expect(Object.is(a, e), `field ${k}: ${String(a)} vs ${e}`).toBe(true);
  }
  expect(Object.is(actual.timeUs, 0) || actual.timeUs !== 0).toBe(true); // never -0
}

describe('parseLine: valid lines', () => {
  const cases: [string, string, Point][] = [
    ['minimal', 'cpu value=1', pt('cpu', {}, { value: 1 })],
    [
      'every type and tags',
      'cpu,host=a,region=b f=1.5,i=3i,u=7u,b=t,s="hi" 1000',
      pt('cpu', { host: 'a', region: 'b' }, { f: 1.5, i: 3n, u: new Unsigned(7n), b: true, s: 'hi' }, 1),
    ],
    // measurement: comma and space are escapes; '=' needs none; other backslashes are literal
    ['measurement \\,', 'wea\\,ther t=1', pt('wea,ther', {}, { t: 1 })],
    ['measurement \\ ', 'wea\\ ther t=1', pt('wea ther', {}, { t: 1 })],
    ['measurement with =', 'a=b t=1', pt('a=b', {}, { t: 1 })],
    ['measurement \\= is literal', 'a\\=b t=1', pt('a\\=b', {}, { t: 1 })],
    ['measurement literal backslash', 'a\\b t=1', pt('a\\b', {}, { t: 1 })],
    ['measurement \\\\ is two backslashes', 'a\\\\b t=1', pt('a\\\\b', {}, { t: 1 })],
    ['measurement \\\\ then escaped space', 'a\\\\ b t=1', pt('a\\ b', {}, { t: 1 })],
    ['measurement with quotes', 'joe\'s"m t=1', pt('joe\'s"m', {}, { t: 1 })],
    // tag keys and values: comma, equals, space
    ['tag key escapes', 'm,loc\\ pl\\,a\\=ce=x t=1', pt('m', { 'loc pl,a=ce': 'x' }, { t: 1 })],
    ['tag value escapes', 'm,loc=us\\,mid\\ west\\=1 t=1', pt('m', { loc: 'us,mid west=1' }, { t: 1 })],
    ['tag value backslash then escaped comma', 'm,t=a\\\\,b f=1', pt('m', { t: 'a\\,b' }, { f: 1 })],
    ['tag value literal backslashes', 'm,t=C:\\dir\\x f=1', pt('m', { t: 'C:\\dir\\x' }, { f: 1 })],
    ['tag value with quote', 'm,t="q" f=1', pt('m', { t: '"q"' }, { f: 1 })],
    ['unsorted tags', 'm,b=2,a=1 f=1', pt('m', { a: '1', b: '2' }, { f: 1 })],
    // field keys
    ['field key escapes', 'm temp\\=rature=82,a\\ b=1,c\\,d=2', pt('m', {}, { 'temp=rature': 82, 'a b': 1, 'c,d': 2 })],
    ['field key with quote', 'm a"b=1', pt('m', {}, { 'a"b': 1 })],
    ['field key with backslash', 'm a\\b=1', pt('m', {}, { 'a\\b': 1 })],
    // string values: only \" and \\ are escapes
    ['string \\"', 'm s="too\\"hot\\""', pt('m', {}, { s: 'too"hot"' })],
    ['string \\\\', 'm s="a\\\\b"', pt('m', {}, { s: 'a\\b' })],
    ['string literal backslash', 'm s="a\\b\\n"', pt('m', {}, { s: 'a\\b\\n' })],
    ['string ending in backslash', 'm s="C:\\\\dir\\\\"', pt('m', {}, { s: 'C:\\dir\\' })],
    ['string \\\\\\"', 'm s="\\\\\\""', pt('m', {}, { s: '\\"' })],
    ['empty string', 'm s=""', pt('m', {}, { s: '' })],
    ['string with separators', 'm s="a,b c=d",t=1', pt('m', {}, { s: 'a,b c=d', t: 1 })],
    ['string with raw newline', 'm s="two\nlines" 5000', pt('m', {}, { s: 'two\nlines' }, 5)],
    ['string with raw CRLF', 'm s="two\r\nlines" 5000', pt('m', {}, { s: 'two\r\nlines' }, 5)],
    ['unicode', '温度,地点=北京 值=1.5,s="🚀 ok"', pt('温度', { 地点: '北京' }, { 值: 1.5, s: '🚀 ok' })],
    // floats
    ['float integral', 'm f=4', pt('m', {}, { f: 4 })],
    ['float 1.', 'm f=1.', pt('m', {}, { f: 1 })],
    ['float .5', 'm f=.5', pt('m', {}, { f: 0.5 })],
    ['float -.5', 'm f=-.5', pt('m', {}, { f: -0.5 })],
    ['float -0', 'm f=-0', pt('m', {}, { f: -0 })],
    ['float -0.0', 'm f=-0.0', pt('m', {}, { f: -0 })],
    ['float exponent', 'm a=1e3,b=1E+3,c=-1.5e-3,d=1e+21,e=2.5E-7', pt('m', {}, { a: 1000, b: 1000, c: -0.0015, d: 1e21, e: 2.5e-7 })],
    ['float leading zeros', 'm f=00012.50', pt('m', {}, { f: 12.5 })],
    ['float 0.1', 'm f=0.1,g=0.3', pt('m', {}, { f: 0.1, g: 0.3 })],
    ['float many digits', 'm f=123456789012345678901234567890', pt('m', {}, { f: Number('123456789012345678901234567890') })],
    ['float 2^53+1 rounds', 'm f=9007199254740993', pt('m', {}, { f: 9007199254740992 })],
    ['float max', 'm f=1.7976931348623157e308', pt('m', {}, { f: 1.7976931348623157e308 })],
    ['float min subnormal', 'm f=5e-324,g=4.9406564584124654e-324', pt('m', {}, { f: 5e-324, g: 5e-324 })],
    ['float underflow is 0', 'm f=1e-400', pt('m', {}, { f: 0 })],
    ['float 17 digits', 'm f=0.30000000000000004', pt('m', {}, { f: 0.30000000000000004 })],
    // integers and unsigned
    ['integers', 'm a=0i,b=-0i,c=12i,d=-12i', pt('m', {}, { a: 0n, b: 0n, c: 12n, d: -12n })],
    ['int64 bounds', 'm a=9223372036854775807i,b=-9223372036854775808i', pt('m', {}, { a: INT64_MAX, b: INT64_MIN })],
    ['int 2^53+1 exact', 'm a=9007199254740993i', pt('m', {}, { a: 9007199254740993n })],
    ['uint bounds', 'm a=0u,b=18446744073709551615u', pt('m', {}, { a: new Unsigned(0n), b: new Unsigned(18446744073709551615n) })],
    // booleans
    [
      'booleans',
      'm a=t,b=T,c=true,d=True,e=TRUE,f=f,g=F,h=false,i=False,j=FALSE',
      pt('m', {}, { a: true, b: true, c: true, d: true, e: true, f: false, g: false, h: false, i: false, j: false }),
    ],
    // layout
    ['leading blanks', ' \t\u0000 m f=1', pt('m', {}, { f: 1 })],
    ['several spaces between sections', 'm,t=1   f=1   2000', pt('m', { t: '1' }, { f: 1 }, 2)],
    ['tabs before fields and timestamp (as InfluxDB 1.x)', 'm \t\u0000f=1 \t2000', pt('m', {}, { f: 1 }, 2)],
    // control characters: refused in names (see the rejected lines), kept in tag values and strings, as InfluxDB 2's reference does
    ['control characters in a tag value', 'm,t=v\tw\u0001 f=1', pt('m', { t: 'v\tw\u0001' }, { f: 1 })],
    ['trailing spaces', 'm f=1 2000   ', pt('m', {}, { f: 1 }, 2)],
    ['trailing spaces without time', 'm f=1   ', pt('m', {}, { f: 1 })],
    ['CRLF', 'm f=1 2000\r\n', pt('m', {}, { f: 1 }, 2)],
    ['duplicate field: last wins at first position', 'm f=1,g=2,f=3', pt('m', {}, { f: 3, g: 2 })],
  ];
  it.each(cases)('%s', (_name, line, expected) => {
    expectSamePoint(parseLine(line, 'ns', DEFAULT), expected);
  });

  it('keeps __proto__ as an ordinary tag and field key', () => {
    const p = parseLine('m,__proto__=x __proto__=1,toString=2', 'ns', 0);
    expect(Object.getPrototypeOf(p.fields)).toBe(Object.prototype);
    expect(Object.keys(p.tags)).toEqual(['__proto__']);
    expect(Object.getOwnPropertyDescriptor(p.tags, '__proto__')?.value).toBe('x');
    expect(Object.getOwnPropertyDescriptor(p.fields, '__proto__')?.value).toBe(1);
    expect(Object.getOwnPropertyDescriptor(p.fields, 'toString')?.value).toBe(2);
  });

  it('rejects duplicate tags even when one is named like an Object member', () => {
    expect(() => parseLine('m,constructor=a,constructor=b f=1', 'ns', 0)).toThrow(/duplicate tag 'constructor'/);
    expectSamePoint(parseLine('m,constructor=a f=1', 'ns', 0), pt('m', { constructor: 'a' }, { f: 1 }, 0));
  });
});

describe('parseLine: rejected lines', () => {
  const cases: [string, RegExp, number][] = [
    ['cpu', /missing fields/, 4],
    ['cpu ', /missing fields/, 5],
    ['cpu,t=1', /missing fields/, 8],
    [',t=1 f=1', /missing measurement/, 1],
    [' f=1', /missing fields/, 5],
    ['m,t f=1', /missing '=' after tag key/, 4],
    ['m,=v f=1', /missing tag key/, 3],
    ['m,t= f=1', /missing value for tag 't'/, 5],
    ['m,t=1, f=1', /missing tag key/, 7],
    ['m,t=a=b f=1', /unescaped '=' in the value of tag 't'/, 6],
    ['m,t=1,t=2 f=1', /duplicate tag 't'/, 7],
    ['m,b=1,a=1,b=2 f=1', /duplicate tag 'b'/, 11],
    ['m f', /missing '=' after field key 'f'/, 4],
    ['m f g=1', /missing '=' after field key 'f'/, 4],
    ['m =1', /missing field key/, 3],
    ['m f=', /missing value for field 'f'/, 5],
    ['m f=,g=1', /missing value for field 'f'/, 5],
    ['m f= 1', /missing value for field 'f'/, 5],
    ['m f=1,', /missing field key after ','/, 7],
    ['m f=1, 5', /missing field key after ','/, 7],
    ['m f=1,,g=2', /missing field key/, 7],
    ['m f=1 x', /invalid character 'x' in timestamp/, 7],
    ['m f=1 12x', /invalid character 'x' in timestamp/, 9],
    ['m f=1 1.5', /timestamp must be an integer/, 8],
    ['m f=1 1e9', /timestamp must be an integer/, 8],
    ['m f=1 -', /invalid timestamp/, 7],
    ['m f=1 --5', /invalid character '-' in timestamp/, 8],
    ['m f=1 123 456', /unexpected text after the timestamp/, 11],
    ['m f=1 123\tx', /invalid character/, 10],
    ['m f=1\t5', /invalid value '1\t5'/, 5],
    ['m\tf=1', /control character U\+0009 in the measurement/, 2],
    ['m\u0001 f=1', /control character U\+0001 in the measurement/, 2],
    ['m,t\u007fk=v f=1', /control character U\+007F in a tag key/, 4],
    ['m f=1,\tg=2', /control character U\+0009 in a field key/, 7],
    ['m g\rh=2', /control character U\+000D in a field key/, 4],
    // bytes that are not UTF-8 arrive as U+DC80…U+DCFF (src/core/utf8.ts); other unpaired surrogates are refused too
    ['m\udcff f=1', /invalid UTF-8 \(byte 0xff\)/, 2],
    ['m f="a\udc80b"', /invalid UTF-8 \(byte 0x80\)/, 7],
    ['m,t=\ud800 f=1', /not valid Unicode \(unpaired surrogate U\+D800\)/, 5],
    ['m f="abc', /unterminated string for field 'f'/, 5],
    ['m f="abc\\"', /unterminated string/, 5],
    ['m f="abc"x', /unexpected 'x' after the value of field 'f'/, 10],
    ['m f="abc""d"', /unexpected '"' after the value/, 10],
    ['m f=NaN', /NaN is not a valid value .*no NaN or Inf/, 5],
    ['m f=nan', /no NaN or Inf/, 5],
    ['m f=inf', /no NaN or Inf/, 5],
    ['m f=-Inf', /no NaN or Inf/, 5],
    ['m f=+inf', /no NaN or Inf/, 5],
    ['m f=Infinity', /no NaN or Inf/, 5],
    ['m f=1e400', /float out of range for field 'f'/, 5],
    ['m f=-1e309', /float out of range/, 5],
    ['m f=1.2.3', /invalid value '1.2.3' for field 'f'/, 5],
    ['m f=1-2', /invalid value '1-2'/, 5],
    ['m f=12abc', /invalid value '12abc'/, 5],
    ['m f=-', /invalid value '-'/, 5],
    ['m f=.', /invalid value '.'/, 5],
    ['m f=-.', /invalid value '-.'/, 5],
    ['m f=1e', /invalid value '1e'/, 5],
    ['m f=1e+', /invalid value '1e\+'/, 5],
    ['m f=.e5', /invalid value '.e5'/, 5],
    ['m f=0x10', /invalid value '0x10'/, 5],
    ['m f=+1', /invalid value '\+1'/, 5],
    ['m f=1_000', /invalid value '1_000'/, 5],
    ['m f=1.5i', /invalid value '1.5i'/, 5],
    ['m f=1e3i', /invalid value '1e3i'/, 5],
    ['m f=1ii', /invalid value '1ii'/, 5],
    ['m f=1iu', /invalid value '1iu'/, 5],
    ['m f=i', /invalid value 'i'/, 5],
    ['m f=-i', /invalid value '-i'/, 5],
    ['m f=1.0u', /invalid value '1.0u'/, 5],
    ['m f=9223372036854775808i', /integer out of the int64 range/, 5],
    ['m f=-9223372036854775809i', /integer out of the int64 range/, 5],
    ['m f=-1u', /unsigned value cannot be negative/, 5],
    ['m f=-0u', /unsigned value cannot be negative/, 5],
    ['m f=18446744073709551616u', /unsigned out of the uint64 range/, 5],
    ['m f=tru', /invalid value 'tru'/, 5],
    ['m f=yes', /invalid value 'yes'/, 5],
    ['m f=tRUE', /invalid value 'tRUE'/, 5],
    ['m f=T1', /invalid value 'T1'/, 5],
    ['m f=falsey', /invalid value 'falsey'/, 5],
    ['m f=abc', /invalid value 'abc'/, 5],
    ['', /blank or a comment/, 1],
    ['   ', /blank or a comment/, 1],
    ['# comment', /blank or a comment/, 1],
    ['m f=1\nm f=2', /more than one line/, 1],
  ];
  it.each(cases)('%j', (line, reason, column) => {
    let err: unknown;
    try {
      parseLine(line, 'ns', 0);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(LineProtocolError);
    const lpe = err as LineProtocolError;
    expect(lpe.message).toMatch(reason);
    expect(lpe.column).toBe(column);
    expect(lpe.message).toContain(`at column ${column}`);
  });
});

describe('timestamps and precision', () => {
  const cases: [Precision, string, number][] = [
    ['ns', '1434055562000000000', 1434055562000000],
    ['ns', '1434055562000000999', 1434055562000000], // truncated to µs
    ['ns', '999', 0],
    ['ns', '1000', 1],
    ['ns', '0', 0],
    ['ns', '-0', 0],
    ['ns', '-1', -1], // floored, not truncated toward zero: stays before 0
    ['ns', '-1000', -1],
    ['ns', '-1001', -2],
    ['ns', '-999999', -1000],
    ['ns', '-86400000000000', -86_400_000_000], // 1969-12-31
    ['ns', '-2208988800000000001', -2_208_988_800_000_001], // 1899-12-31T23:59:59.999999999
    ['ns', '0001000', 1],
    ['ns', '9007199254740991999', 9007199254740991],
    ['ns', '-9007199254740991000', -9007199254740991],
    ['us', '1434055562000001', 1434055562000001],
    ['us', '-1', -1],
    ['us', '9007199254740991', 9007199254740991],
    ['us', '-9007199254740991', -9007199254740991],
    ['ms', '1362067200000', 1362067200000000],
    ['ms', '-1', -1000],
    ['ms', '-2208988800000', -2208988800000000],
    ['ms', '9007199254740', 9007199254740000],
    ['s', '1362067200', 1362067200000000],
    ['s', '-1', -1_000_000],
    ['s', '9007199254', 9007199254000000],
    ['s', '-9007199254', -9007199254000000],
  ];
  it.each(cases)('%s %s', (precision, ts, us) => {
    const p = parseLine(`m f=1 ${ts}`, precision, 0);
    expect(p.timeUs).toBe(us);
    expect(Object.is(p.timeUs, -0)).toBe(false);
  });

  const outOfRange: [Precision, string][] = [
    ['ns', '9007199254740992000'],
    ['ns', '-9007199254740991001'],
    ['ns', '9223372036854775807'],
    ['ns', '99999999999999999999999'],
    ['us', '9007199254740992'],
    ['us', '-9007199254740992'],
    ['ms', '9007199254741'],
    ['s', '9007199255'],
    ['s', '-9007199255'],
  ];
  it.each(outOfRange)('%s %s is out of range', (precision, ts) => {
    expect(() => parseLine(`m f=1 ${ts}`, precision, 0)).toThrow(/timestamp out of range \(1684-.* … 2255-/);
  });

  it('uses the default time, floored to the precision, when the line has none', () => {
    expect(parseLine('m f=1', 'ns', 1_500_123).timeUs).toBe(1_500_123);
    expect(parseLine('m f=1', 'us', 1_500_123).timeUs).toBe(1_500_123);
    expect(parseLine('m f=1', 'ms', 1_500_123).timeUs).toBe(1_500_000);
    expect(parseLine('m f=1', 's', 1_500_123).timeUs).toBe(1_000_000);
    expect(parseLine('m f=1', 's', -1).timeUs).toBe(-1_000_000);
    expect(parseLines('m f=1\nm f=2 7', { precision: 'ms', defaultTimeUs: 2_345 }).points.map((p) => p.timeUs)).toEqual([2000, 7000]);
    expect(floorToPrecision(-1001, 'ms')).toBe(-2000);
  });

  it('formats times, flooring to coarser precisions', () => {
    expect(formatTime(1, 'ns')).toBe('1000');
    expect(formatTime(0, 'ns')).toBe('0');
    expect(formatTime(-1, 'ns')).toBe('-1000');
    expect(formatTime(-1, 'us')).toBe('-1');
    expect(formatTime(1999, 'ms')).toBe('1');
    expect(formatTime(-1, 'ms')).toBe('-1');
    expect(formatTime(-1000, 'ms')).toBe('-1');
    expect(formatTime(-1001, 'ms')).toBe('-2');
    expect(formatTime(-999, 'ms')).toBe('-1');
    expect(formatTime(999, 'ms')).toBe('0');
    expect(formatTime(1_999_999, 's')).toBe('1');
    expect(formatTime(-1, 's')).toBe('-1');
    expect(formatTime(9007199254740991, 'ms')).toBe('9007199254740');
    expect(formatTime(-9007199254740991, 'ms')).toBe('-9007199254741');
    expect(formatTime(9007199254740991, 'ns')).toBe('9007199254740991000');
  });
});

describe('parseLines', () => {
  it('skips blank and comment lines, rejects bad lines by number and keeps their neighbours', () => {
    const text = [
      '# a comment',
      'm f=1 1000',
      '',
      '   ',
      '\t# indented comment',
      'm f= 2000',
      'm f=2 2000',
      'bad',
      'm f=3 3000',
      'm,t=1,t=2 f=1',
      'm f="open',
      'm f=4 4000',
    ].join('\n');
    const r = parseLines(text, { precision: 'ns', defaultTimeUs: 0 });
    expect(r.points.map((p) => p.fields.f)).toEqual([1, 2, 3, 4]);
    expect(r.rejects).toEqual([
      { line: 6, error: "missing value for field 'f' at column 5", text: 'm f= 2000' },
      { line: 8, error: 'missing fields (no space after the measurement) at column 4', text: 'bad' },
      { line: 10, error: "duplicate tag 't' at column 7", text: 'm,t=1,t=2 f=1' },
      { line: 11, error: "unterminated string for field 'f' at column 5", text: 'm f="open' },
    ]);
  });

  it('handles CRLF, a last line without newline and firstLineNumber', () => {
    const r = parseLines('m f=1 1000\r\n\r\nm f=x\r\n# c\r\nm f=2 2000', { firstLineNumber: 41, defaultTimeUs: 0 });
    expect(r.points.map((p) => [p.fields.f, p.timeUs])).toEqual([
      [1, 1],
      [2, 2],
    ]);
    expect(r.rejects).toEqual([{ line: 43, error: "invalid value 'x' for field 'f' at column 5", text: 'm f=x' }]);
  });

  it('counts the lines of a string value that spans lines', () => {
    const r = parseLines('m s="a\nb\nc" 1000\nbad\nm f=1 2000', { defaultTimeUs: 0 });
    expect(r.points.map((p) => p.fields)).toEqual([{ s: 'a\nb\nc' }, { f: 1 }]);
    expect(r.rejects.map((x) => x.line)).toEqual([4]);
  });

  it('after an unclosed string, rejects only its first line and reads on', () => {
    const r = parseLines('m s="open\nm f=1 1000\nm s="x" 2000\n', { defaultTimeUs: 0 });
    // s = "open\nm f=1 1000\nm s=" then x" is garbage: the entry is bad; the next lines are read again
    expect(r.rejects).toHaveLength(1);
    expect(r.rejects[0]).toMatchObject({ line: 1, text: 'm s="open' });
    expect(r.rejects[0].error).toMatch(/unexpected 'x' .* at line 3 column 6/);
    expect(r.points.map((p) => p.fields)).toEqual([{ f: 1 }, { s: 'x' }]);
  });

  it('clips the text of a very long rejected line', () => {
    const r = parseLines('m f=' + 'x'.repeat(5000));
    expect(r.rejects[0].text.length).toBeLessThan(1100);
  });

  it('reuses parsed keys only for identical key text', () => {
    // consecutive lines whose key text is a prefix of the next one's, and field-key prefixes
    const r = parseLines(
      [
        'm,t=a f=1,g=2 1000',
        'm,t=a f=3,g=4 2000',
        'm,t=a\\ b f=5,g\\=x=6 3000',
        'm,t=a,u=b f\\ y=7,g=8 4000',
        'm,t=a ff=9,g=10 5000',
        'm,t=a f=11 6000',
        'm,t=ab f=12,g="s",h=t 7000',
        'm,t=ab f=13,g=14 8000',
      ].join('\n'),
    );
    expect(r.rejects).toEqual([]);
    expect(r.points.map((p) => [p.tags, p.fields])).toEqual([
      [{ t: 'a' }, { f: 1, g: 2 }],
      [{ t: 'a' }, { f: 3, g: 4 }],
      [{ t: 'a b' }, { f: 5, 'g=x': 6 }],
      [{ t: 'a', u: 'b' }, { 'f y': 7, g: 8 }],
      [{ t: 'a' }, { ff: 9, g: 10 }],
      [{ t: 'a' }, { f: 11 }],
      [{ t: 'ab' }, { f: 12, g: 's', h: true }],
      [{ t: 'ab' }, { f: 13, g: 14 }],
    ]);
    // points never share tag objects
    r.points[0].tags.t = 'changed';
    expect(r.points[1].tags.t).toBe('a');
  });
});

describe('serialization', () => {
  it('writes every type', () => {
    const p = pt('cpu load', { 'host name': 'a,b', region: 'x=y' }, { f: 1.5, i: -3n, u: new Unsigned(7n), b: false, s: 'say "hi" \\o/' }, 1);
    expect(serializePoint(p, 'us')).toBe('cpu\\ load,host\\ name=a\\,b,region=x\\=y f=1.5,i=-3i,u=7u,b=false,s="say \\"hi\\" \\\\o/" 1');
    expect(serializePoint(p)).toMatch(/ 1000$/);
  });

  it('writes floats so that they read back as the same floats', () => {
    const v: [number, string][] = [
      [4, '4'],
      [-0, '-0'],
      [0, '0'],
      [0.1, '0.1'],
      [1e21, '1e+21'],
      [1e-7, '1e-7'],
      [5e-324, '5e-324'],
      [1.7976931348623157e308, '1.7976931348623157e+308'],
      [-123.456, '-123.456'],
    ];
    for (const [x, text] of v) {
      expect(formatFieldValue(x)).toBe(text);
      expect(Object.is(parseLine(`m f=${text}`, 'ns', 0).fields.f, x)).toBe(true);
    }
    expect(formatFieldValue(9007199254740993n)).toBe('9007199254740993i');
    expect(formatFieldValue(new Unsigned(2n ** 64n - 1n))).toBe('18446744073709551615u');
    expect(formatFieldValue(2n ** 63n)).toBeNull(); // outside int64: no form
  });

  it('leaves NaN and ±Inf fields out and counts them; a point with nothing left is not written', () => {
    const stats: SerializeStats = { skippedFields: 0, skippedPoints: 0 };
    expect(serializePoint(pt('m', {}, { a: NaN, b: 1, c: Infinity, d: -Infinity }, 0), 'ns', stats)).toBe('m b=1 0');
    expect(stats).toEqual({ skippedFields: 3, skippedPoints: 0 });
    expect(serializePoint(pt('m', {}, { a: NaN }, 0), 'ns', stats)).toBe('');
    expect(stats).toEqual({ skippedFields: 4, skippedPoints: 1 });
    expect(serializeLine('m', [['a', NaN]], 0, 'ns', stats)).toBe('');
    expect(stats).toEqual({ skippedFields: 5, skippedPoints: 2 });
  });

  it('does not write what line protocol cannot express', () => {
    const stats: SerializeStats = { skippedFields: 0, skippedPoints: 0 };
    expect(serializePoint(pt('', {}, { f: 1 }, 0), 'ns', stats)).toBe('');
    expect(serializePoint(pt('#m', {}, { f: 1 }, 0), 'ns', stats)).toBe(''); // would be a comment
    expect(serializePoint(pt('\tm', {}, { f: 1 }, 0), 'ns', stats)).toBe(''); // tab would be skipped as indentation
    expect(serializePoint(pt('\u0000m', {}, { f: 1 }, 0), 'ns', stats)).toBe('');
    expect(serializePoint(pt('m', {}, { f: 1 }, NaN), 'ns', stats)).toBe('');
    expect(serializePoint(pt('m', {}, { f: 1 }, 2 ** 53), 'ns', stats)).toBe('');
    expect(serializePoint(pt('m', {}, { f: 1 }, 0.5), 'ns', stats)).toBe('');
    expect(serializePoint(pt('m', {}, { '': 1, g: 2 }, 0), 'ns', stats)).toBe('m g=2 0');
    expect(stats).toEqual({ skippedFields: 1, skippedPoints: 7 });
    expect(serializePoint(pt(' #m', {}, { f: 1 }, 0))).toBe('\\ #m f=1 0');
    expect(parseLine('\\ #m f=1 0').measurement).toBe(' #m');
  });

  it('normalises keys line protocol cannot hold, the same way in seriesKey and the lines', () => {
    // empty tag values and keys are dropped (InfluxDB: no tag); trailing backslashes removed; LF becomes space
    const p = pt('m\\', { empty: '', '': 'x', dir: 'C:\\dir\\', nl: 'a\nb', 'k\\\\': 'v' }, { 'f\\': 1 }, 0);
    const key = seriesKey(p.measurement, p.tags);
    expect(key).toBe('m,dir=C:\\dir,k=v,nl=a\\ b');
    expect(parseSeriesKey(key)).toEqual({ measurement: 'm', tags: { dir: 'C:\\dir', k: 'v', nl: 'a b' } });
    const line = serializePoint(p);
    expect(line).toBe('m,dir=C:\\dir,k=v,nl=a\\ b f=1 0');
    const back = parseLine(line, 'ns', 0);
    expect(back).toEqual(pt('m', { dir: 'C:\\dir', k: 'v', nl: 'a b' }, { f: 1 }, 0));
    expect(seriesKey(back.measurement, back.tags)).toBe(key);
  });

  it('keeps a backslash that precedes a separator or quote in keys, as the reference encoder does', () => {
    const p = pt('a\\,b\\ c\\=d\\"e', { 'k\\=': 'v\\,w\\=x\\\\ y\\"z' }, { 'f\\,g\\"': 's\\' }, 0);
    const line = serializePoint(p);
    // the backslash is written as it is and the separator after it escaped: `\\,` reads as backslash + comma
    expect(line).toBe(String.raw`a\\,b\\ c\=d\"e,k\\==v\\,w\\=x\\\ y\"z f\\,g\"="s\\" 0`);
    const back = parseLine(line, 'ns', 0);
    expect(back).toEqual(p);
    expect(seriesKey(back.measurement, back.tags)).toBe(seriesKey(p.measurement, p.tags));
    // the corpus's case: the tag value `eas\ t` (backslash, space)
    expect(serializePoint(pt('cpu', { regions: 'eas\\ t' }, { value: 1 }, 0))).toBe(String.raw`cpu,regions=eas\\ t value=1 0`);
  });

  it('keeps other backslashes in keys as they are', () => {
    const p = pt('a\\b\\\\c', { 't\\x': 'C:\\dir\\file', 'é\\🚀': '\\\\\\z' }, { 'f\\\\g': 1 }, 0);
    const line = serializePoint(p);
    expect(line).toBe('a\\b\\\\c,t\\x=C:\\dir\\file,é\\🚀=\\\\\\z f\\\\g=1 0');
    expect(parseLine(line, 'ns', 0)).toEqual(p);
  });

  it('leaves out, counted, fields and points whose names hold control characters (readers refuse them)', () => {
    const stats: SerializeStats = { skippedFields: 0, skippedPoints: 0 };
    expect(serializePoint(pt('m', {}, { '\tb': 1, 'c\u0000': 2, d: 3, 'e\u007f': 4 }, 0), 'ns', stats)).toBe('m d=3 0');
    expect(stats).toEqual({ skippedFields: 3, skippedPoints: 0 });
    expect(serializePoint(pt('m\tx', {}, { f: 1 }, 0), 'ns', stats)).toBe('');
    expect(serializePoint(pt('m', { 'k\r': 'v' }, { f: 1 }, 0), 'ns', stats)).toBe('');
    expect(serializeLine('m', [['\tb', 1]], 0, 'ns', stats)).toBe('');
    expect(stats).toEqual({ skippedFields: 4, skippedPoints: 3 });
    // tag values may hold them
    const line = serializePoint(pt('m', { k: 'v\tw' }, { f: 1 }, 0), 'ns', stats);
    expect(line).toBe('m,k=v\tw f=1 0');
    expect(parseLine(line, 'ns', 0)).toEqual(pt('m', { k: 'v\tw' }, { f: 1 }, 0));
  });

  it('sorts tags by the bytes of their keys (not of their escaped text), as InfluxDB does', () => {
    expect(seriesKey('m', { b: '2', a: '1', c: '3' })).toBe('m,a=1,b=2,c=3');
    // 'a b' before 'a!' (space 0x20 < '!' 0x21), though its escaped text `a\ b` would sort after ('\' is 0x5c)
    expect(seriesKey('m', { 'a!': '2', 'a b': '1' })).toBe('m,a\\ b=1,a!=2');
    // the corpus's case
    expect(seriesKey('test', { APPLE: 'orange', 'A FOO': 'bar', host: 'serverA' })).toBe('test,A\\ FOO=bar,APPLE=orange,host=serverA');
    // UTF-8 order: U+E000 (EE 80 80) before U+1F600 (F0 9F 98 80), unlike UTF-16 order
    expect(seriesKey('m', { '\u{1F600}': '1', '\uE000': '2', z: '3', é: '4' })).toBe('m,z=3,é=4,\uE000=2,\u{1F600}=1');
    expect(compareUtf8('\uE000', '\u{1F600}')).toBeLessThan(0);
    expect(compareUtf8('\u{1F600}', '\uFFFF')).toBeGreaterThan(0);
    expect(compareUtf8('a', 'ab')).toBeLessThan(0);
    expect(compareUtf8('', '')).toBe(0);
    expect(seriesKey('m', {})).toBe('m');
    expect(parseSeriesKey('m')).toEqual({ measurement: 'm', tags: {} });
  });

  it('round-trips the key of a parsed line as its series key', () => {
    const p = parseLine('we\\,a\\ th=er,z=1,a=x\\=y\\,z f=1', 'ns', 0);
    expect(seriesKey(p.measurement, p.tags)).toBe('we\\,a\\ th=er,a=x\\=y\\,z,z=1');
    expect(serializeLine(seriesKey(p.measurement, p.tags), Object.entries(p.fields), 1, 'us')).toBe('we\\,a\\ th=er,a=x\\=y\\,z,z=1 f=1 1');
  });

  it('round-trips ms data exported at ms', () => {
    const text = 'air,station=A PM2.5=4,TEMP=-0.7,wd="NNW" 1362067200000\nair,station=A PM2.5=8,TEMP=-1.1 -1362067200001';
    const { points } = parseLines(text, { precision: 'ms' });
    expect(points.map((p) => serializePoint(p, 'ms')).join('\n')).toBe(text);
  });
});

// ---------------------------------------------------------------------------------------------------------
// Round trip over random points from a seeded PRNG.

function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const KEY_CHARS = ['a', 'b', 'Z', '0', '_', '-', '.', ' ', ',', '=', '"', "'", '\\', '\\\\', '#', 'é', '日', '🚀', '\u{10FFFF}', '\uE000', '\t', '\r'];
const NAME_CHARS = KEY_CHARS.filter((c) => c !== '\t' && c !== '\r');
const STRING_CHARS = [...KEY_CHARS, '\n', '\r\n', '\\"', '\\\\', ''];
const EDGE_FLOATS = [0, -0, 1, -1, 0.1, 1e-300, 5e-324, -5e-324, 1.7976931348623157e308, -1.7976931348623157e308, 2 ** 53, 2 ** 53 + 2, 1e21, 1e-7, 123.456, 2.2250738585072014e-308];
const EDGE_INTS = [0n, 1n, -1n, INT64_MIN, INT64_MAX, 2n ** 53n + 1n, -(2n ** 53n) - 1n, 999999999999999n, 1000000000000000n];
const EDGE_UINTS = [0n, 1n, 2n ** 64n - 1n, 2n ** 63n, 2n ** 53n + 1n];

class Gen {
  constructor(private readonly rnd: () => number) {}
  int(n: number): number {
    return Math.floor(this.rnd() * n);
  }
  pick<T>(xs: readonly T[]): T {
    return xs[this.int(xs.length)];
  }
  /**
   * A tag value line protocol can hold unchanged: non-empty, no LF, no trailing backslash (backslashes
   * before separators and quotes are fine).
   */
  key(chars: readonly string[] = KEY_CHARS): string {
    let s = '';
    const n = 1 + this.int(6);
    for (let i = 0; i < n; i++) s += this.pick(chars);
    s = s.replace(/\\+$/, '');
    return s === '' ? 'k' : s;
  }
  /** Measurements, tag keys and field keys: also no control character. */
  name(): string {
    return this.key(NAME_CHARS);
  }
  measurement(): string {
    const m = this.name();
    return m.startsWith('#') ? 'm' + m : m;
  }
  string(): string {
    let s = '';
    const n = this.int(8);
    for (let i = 0; i < n; i++) s += this.pick(STRING_CHARS);
    return s;
  }
  float(): number {
    switch (this.int(4)) {
      case 0:
        return this.pick(EDGE_FLOATS);
      case 1: {
        // any finite double, from random bits
        const b = new DataView(new ArrayBuffer(8));
        for (;;) {
          b.setUint32(0, this.int(2 ** 32));
          b.setUint32(4, this.int(2 ** 32));
          const x = b.getFloat64(0);
          if (Number.isFinite(x)) return x;
        }
      }
      case 2:
        return Math.round((this.rnd() - 0.5) * 1e6) / 10 ** this.int(8); // sensor-like decimals
      default:
        return (this.rnd() - 0.5) * 10 ** (this.int(40) - 20);
    }
  }
  value(): FieldValue {
    switch (this.int(5)) {
      case 0:
        return this.float();
      case 1:
        return this.int(2) ? this.pick(EDGE_INTS) : BigInt.asIntN(64, BigInt(this.int(2 ** 32)) * BigInt(this.int(2 ** 32)) - 2n ** 62n);
      case 2:
        return new Unsigned(this.int(2) ? this.pick(EDGE_UINTS) : BigInt(this.int(2 ** 32)) * BigInt(this.int(2 ** 32)));
      case 3:
        return this.int(2) === 1;
      default:
        return this.string();
    }
  }
  timeUs(precision: Precision): number {
    const unit = precision === 's' ? 1_000_000 : precision === 'ms' ? 1000 : 1;
    const span = Math.floor(Number.MAX_SAFE_INTEGER / unit);
    const edge = [0, 1, -1, span, -span, 1_362_067_200_000_000 / unit, -2_208_988_800_000_000 / unit];
    const t = this.int(3) === 0 ? this.pick(edge) : Math.floor((this.rnd() * 2 - 1) * span);
    return t * unit || 0;
  }
  point(precision: Precision, keys: { m: string[]; t: string[]; f: string[] }): Point {
    const tags: Record<string, string> = {};
    const nt = this.int(4);
    for (let i = 0; i < nt; i++) tags[this.pick(keys.t)] = this.key();
    const fields: Record<string, FieldValue> = {};
    const nf = 1 + this.int(5);
    for (let i = 0; i < nf; i++) {
      const k = this.pick(keys.f);
      // integer-like keys are ordered first by JS objects whatever the line says: keep them out of the order check
      if (/^(0|[1-9]\d*)$/.test(k)) continue;
      fields[k] = this.value();
    }
    if (Object.keys(fields).length === 0) fields.v = this.value();
    return { measurement: this.pick(keys.m), tags, fields, timeUs: this.timeUs(precision) };
  }
}

describe('random round trip', () => {
  for (const precision of ['ns', 'us', 'ms', 's'] as const) {
    it(`parse(serialize(p)) === p at ${precision}`, () => {
      const g = new Gen(mulberry32(0x5111ce + precision.length));
      // small key pools, so consecutive lines share keys and exercise the parser's key caches
      const keys = {
        m: Array.from({ length: 3 }, () => g.measurement()),
        t: Array.from({ length: 4 }, () => g.name()),
        f: Array.from({ length: 6 }, () => g.name()),
      };
      const points = Array.from({ length: 3000 }, () => g.point(precision, keys));
      const lines = points.map((p) => serializePoint(p, precision));
      for (let i = 0; i < points.length; i++) {
        expect(lines[i], JSON.stringify(points[i], (_k, v: unknown) => (typeof v === 'bigint' ? `${v}n` : v))).not.toBe('');
        expectSamePoint(parseLine(lines[i], precision, 0), points[i]);
        expect(parseSeriesKey(seriesKey(points[i].measurement, points[i].tags))).toEqual({
          measurement: points[i].measurement,
          tags: points[i].tags,
        });
      }
      // the same lines as one text, CRLF line ends, comments in between
      const text = lines.map((l, i) => (i % 7 === 0 ? `# ${i}\r\n${l}` : l)).join('\r\n');
      const parsed = parseLines(text, { precision, defaultTimeUs: 0 });
      expect(parsed.rejects).toEqual([]);
      expect(parsed.points).toHaveLength(points.length);
      for (let i = 0; i < points.length; i++) expectSamePoint(parsed.points[i], points[i]);
    });
  }
});
