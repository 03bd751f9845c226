// InfluxDB line protocol: serialization (the parser is line-protocol.ts, which re-exports all of this).
import { INT64_MAX, INT64_MIN, Unsigned, type FieldValue, type Point, type Tags } from './point.js';
import type { Precision } from './time.js';
import { BACKSLASH, COMMA, EQUALS, HASH, LF, MAX_TIME_US, MIN_TIME_US, QUOTE, SPACE, floorDiv, isControl, setProp, unitUs } from './line-protocol-common.js';

// ---------------------------------------------------------------------------------------------------------
// Serialization. Everything written parses back to the same point, with this parser and with InfluxDB
// 2's reference (checked against its corpus in test/line-protocol-corpus.test.ts), up to what line
// protocol cannot express. Keys are written the same way everywhere (seriesKey, serializeLine,
// serializePoint), keeping the store's series identity and its export in agreement:
// - `,` and space (and `=` outside the measurement) are escaped with a backslash; a backslash is written
//   as it is, also before a special character (`a\ b` is written `a\\ b`, which reads back as
//   backslash + escaped space), as the reference encoder does;
// - what has no line-protocol form: a trailing run of backslashes in a key (it would escape the
//   separator after it) is left out, and a line break in a key becomes a space (no escape exists). No
//   line-protocol input can produce either (such text never parses to such a name);
// - tags are ordered by their key's UTF-8 bytes, as InfluxDB orders them (not by the escaped text);
// - tags whose key or value is empty (after the above) are left out, as InfluxDB does (an empty tag is
//   no tag there); of two tags whose keys became equal the first in sort order is kept;
// - NaN and ±Inf floats have no line-protocol form (InfluxDB rejects them): such a field is left out of
//   the line and counted in SerializeStats.skippedFields. Writing them as strings would change the
//   field's type and make InfluxDB reject the whole line for a type conflict;
// - control characters (U+0000–U+001F, U+007F) in a field key: the field is left out and counted in
//   skippedFields; in the measurement or a tag key: the point is not written (skippedPoints). Readers
//   refuse them there (InfluxDB 2, this parser), and a refused line would lose every field of it;
// - a line with no writable field left, an empty measurement, one that starts with `#` (a comment), or a
//   time outside ±(2^53 − 1) µs is not written: '' is returned and skippedPoints counted;
// - times coarser than µs are floored (not rounded) to the precision: an exported time never lies after
//   the stored one, and ms or s data imported at that precision round-trips exactly.

export interface SerializeStats {
  /** Fields left out: NaN/±Inf floats, empty field keys, integers outside int64. */
  skippedFields: number;
  /** Points not written at all (nothing writable left, or a measurement that cannot be written). */
  skippedPoints: number;
}

/**
 * Escapes one key part: measurement (comma, space) or tag key / tag value / field key (also equals).
 * A backslash is written as it is: readers take a backslash that does not precede an escapable
 * character literally, so `eas\ t` (backslash, space) is written `eas\\ t`, which reads back as
 * backslash + escaped space. Only a backslash at the very end has no form (it would escape the
 * separator after it): a trailing run of them is left out, and a line break becomes an escaped space.
 */
function escapeKeyPart(s: string, equals: boolean): string {
  const n = s.length;
  let i = 0;
  for (; i < n; i++) {
    const c = s.charCodeAt(i);
    if (c === COMMA || c === SPACE || c === LF || (equals && c === EQUALS)) break;
  }
  let end = n;
  while (end > 0 && s.charCodeAt(end - 1) === BACKSLASH) end--;
  if (i >= end) return end === n ? s : s.slice(0, end);
  let out = s.slice(0, i);
  let last = i;
  for (; i < end; i++) {
    const c = s.charCodeAt(i);
    if (c === COMMA || c === SPACE || (equals && c === EQUALS)) {
      out += s.slice(last, i) + '\\';
      last = i;
    } else if (c === LF) {
      out += s.slice(last, i) + '\\ ';
      last = i + 1;
    }
  }
  return out + s.slice(last, end);
}

export function escapeMeasurement(s: string): string {
  return escapeKeyPart(s, false);
}

/** Escapes a tag key, tag value or field key. */
export function escapeTag(s: string): string {
  return escapeKeyPart(s, true);
}

export function escapeStringValue(s: string): string {
  if (s.indexOf('"') === -1 && s.indexOf('\\') === -1) return s;
  let out = '';
  let last = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === QUOTE || c === BACKSLASH) {
      out += s.slice(last, i) + '\\';
      last = i;
    }
  }
  return out + s.slice(last);
}

/**
 * Orders strings by their UTF-8 bytes (= code points), as Go's bytes.Compare orders InfluxDB tag keys.
 * Plain `<` compares UTF-16 units, which puts U+E000–U+FFFF after astral characters.
 */
export function compareUtf8(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    let x = a.charCodeAt(i);
    let y = b.charCodeAt(i);
    if (x === y) continue;
    if (x >= 0xd800 && y >= 0xd800) {
      // Surrogates (D800–DFFF) stand for code points above FFFF: move them above E000–FFFF.
      x = x >= 0xe000 ? x - 0x800 : x + 0x2000;
      y = y >= 0xe000 ? y - 0x800 : y + 0x2000;
    }
    return x - y;
  }
  return a.length - b.length;
}

/**
 * The canonical series key: escaped `measurement,k1=v1,k2=v2` with tags sorted by escaped key in byte
 * order, which is how InfluxDB keys a series. It is also valid line-protocol text for serializeLine.
 */
export function seriesKey(measurement: string, tags: Tags): string {
  const key = escapeKeyPart(measurement, false);
  const names = Object.keys(tags);
  if (names.length === 0) return key;
  if (names.length === 1) {
    const k = escapeKeyPart(names[0], true);
    const v = escapeKeyPart(tags[names[0]], true);
    return k === '' || v === '' ? key : key + ',' + k + '=' + v;
  }
  // Ordered by the key itself (its UTF-8 bytes), not by its escaped text: `A FOO` before `APPLE`.
  names.sort(compareUtf8);
  let out = key;
  // Keys that differ only in what has no line-protocol form (trailing backslashes, line breaks) can
  // come out equal: the first in order is kept. Checked only once such a key is seen.
  let lossy = false;
  const written: string[] = [];
  for (const name of names) {
    const k = escapeKeyPart(name, true);
    const v = escapeKeyPart(tags[name], true);
    if (k === '' || v === '') continue;
    if (!lossy && (name.charCodeAt(name.length - 1) === BACKSLASH || name.indexOf('\n') !== -1)) lossy = true;
    if (lossy && written.includes(k)) continue;
    written.push(k);
    out += ',' + k + '=' + v;
  }
  return out;
}

/** Reads one escaped key part of a series key from i; stops at an unescaped comma (and '=' if stopAtEquals). */
function readKeyPart(s: string, i: number, equals: boolean, stopAtEquals: boolean): [string, number] {
  const n = s.length;
  let out = '';
  let last = i;
  for (; i < n; i++) {
    const c = s.charCodeAt(i);
    if (c === BACKSLASH && i + 1 < n) {
      const d = s.charCodeAt(i + 1);
      if (d === COMMA || d === SPACE || (equals && d === EQUALS)) {
        out += s.slice(last, i);
        last = i + 1;
        i++;
      }
      continue;
    }
    if (c === COMMA || (stopAtEquals && c === EQUALS)) break;
  }
  return [out + s.slice(last, i), i];
}

/** The inverse of seriesKey. */
export function parseSeriesKey(key: string): { measurement: string; tags: Tags } {
  const [measurement, end] = readKeyPart(key, 0, false, false);
  const tags: Tags = {};
  let i = end;
  while (i < key.length) {
    const [k, ke] = readKeyPart(key, i + 1, true, true);
    const [v, ve] = readKeyPart(key, ke + 1, true, false);
    setProp(tags, k, v);
    i = ve;
  }
  return { measurement, tags };
}

/** A field value in line-protocol form, or null when it has none (NaN, ±Inf, an integer outside int64). */
export function formatFieldValue(v: FieldValue): string | null {
  switch (typeof v) {
    case 'number':
      if (v !== v || v === Infinity || v === -Infinity) return null;
      // String() gives the shortest text that reads back to the same double ("1e+21", "5e-324"); a bare
      // integral number is a float in line protocol, so only -0 needs help (String(-0) is "0").
      return v === 0 ? (1 / v < 0 ? '-0' : '0') : String(v);
    case 'bigint':
      return v >= INT64_MIN && v <= INT64_MAX ? v.toString() + 'i' : null;
    case 'boolean':
      return v ? 'true' : 'false';
    case 'string':
      return '"' + escapeStringValue(v) + '"';
    default:
      return v instanceof Unsigned ? v.value.toString() + 'u' : null;
  }
}

/** The timestamp text in the given precision; coarser precisions floor. */
export function formatTime(timeUs: number, precision: Precision): string {
  switch (precision) {
    case 'ns':
      return timeUs === 0 ? '0' : String(timeUs) + '000';
    case 'us':
      return String(timeUs === 0 ? 0 : timeUs);
    default: {
      const t = floorDiv(timeUs, unitUs(precision));
      return String(t === 0 ? 0 : t);
    }
  }
}

function writableKey(key: string): boolean {
  if (key.length === 0) return false;
  const c = key.charCodeAt(0);
  return c !== COMMA && c !== HASH && !controlInNames(key);
}

/**
 * Whether a series key holds a control character in its measurement or a tag key, which readers
 * (InfluxDB 2, this parser) refuse: such a point is not written rather than written to be refused.
 * Tag values may hold them.
 */
export function controlInNames(key: string): boolean {
  let i = 0;
  const n = key.length;
  while (i < n && !isControl(key.charCodeAt(i))) i++;
  if (i === n) return false;
  let inValue = false;
  let inTags = false;
  for (i = 0; i < n; i++) {
    const c = key.charCodeAt(i);
    if (c === BACKSLASH && i + 1 < n) {
      const d = key.charCodeAt(i + 1);
      if (d === COMMA || d === SPACE || (inTags && d === EQUALS)) {
        i++;
        continue;
      }
    }
    if (c === COMMA) {
      inTags = true;
      inValue = false;
    } else if (c === EQUALS && inTags) inValue = true;
    else if (!inValue && isControl(c)) return true;
  }
  return false;
}

/** Whether an escaped field key can be written: not empty, no control character. */
export function writableFieldKey(escaped: string): boolean {
  if (escaped.length === 0) return false;
  for (let i = 0; i < escaped.length; i++) if (isControl(escaped.charCodeAt(i))) return false;
  return true;
}

function writableTime(timeUs: number): boolean {
  return Number.isInteger(timeUs) && timeUs >= MIN_TIME_US && timeUs <= MAX_TIME_US;
}

// The field list being written.
let fBody = '';

function addField(name: string, value: FieldValue, stats: SerializeStats | undefined): void {
  const k = escapeKeyPart(name, true);
  const v = formatFieldValue(value);
  if (v === null || !writableFieldKey(k)) {
    if (stats) stats.skippedFields++;
    return;
  }
  fBody = fBody === '' ? k + '=' + v : fBody + ',' + k + '=' + v;
}

function finishLine(key: string, timeUs: number, precision: Precision, stats: SerializeStats | undefined): string {
  const body = fBody;
  fBody = '';
  if (body === '') {
    if (stats) stats.skippedPoints++;
    return '';
  }
  return key + ' ' + body + ' ' + formatTime(timeUs, precision);
}

/**
 * One line (no line break) from a series key (see seriesKey) and the fields in their order. Returns ''
 * when nothing can be written (see above); callers skip it (an empty line would also be harmless).
 */
export function serializeLine(
  key: string,
  fields: Iterable<readonly [string, FieldValue]>,
  timeUs: number,
  precision: Precision = 'ns',
  stats?: SerializeStats,
): string {
  fBody = '';
  if (!writableKey(key) || !writableTime(timeUs)) {
    if (stats) stats.skippedPoints++;
    return '';
  }
  for (const [name, value] of fields) addField(name, value, stats);
  return finishLine(key, timeUs, precision, stats);
}

/** One point as one line (no line break); '' when nothing of it can be written. */
export function serializePoint(p: Point, precision: Precision = 'ns', stats?: SerializeStats): string {
  const key = seriesKey(p.measurement, p.tags);
  fBody = '';
  if (!writableKey(key) || !writableTime(p.timeUs)) {
    if (stats) stats.skippedPoints++;
    return '';
  }
  for (const name of Object.keys(p.fields)) addField(name, p.fields[name], stats);
  return finishLine(key, p.timeUs, precision, stats);
}
