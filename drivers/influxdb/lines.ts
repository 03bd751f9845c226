// A batch as line protocol, remembering where each line starts and which point it is, so an error
// that names a line can be turned back into the point to reject. Times go out in microseconds (the
// store's precision), so nothing is rounded on the way.
//
// The text is written straight into one growing Buffer rather than built as strings and joined:
// draining a backlog spends most of its CPU here, and millions of short-lived strings cost more in
// garbage collection than in formatting. The output is byte for byte what serializeLine writes (the
// reference, which the tests compare against); rare shapes go through serializeLine itself.
//
// Unsigned fields: InfluxDB 1.x refuses `123u` ("invalid number") unless built with a flag, so for api
// v1 an unsigned value is sent as an integer (`123i`) when it fits int64, which every uint16/uint32
// register and most uint64 counters do, and as a float beyond 2^63 - 1 (counted: a field that crosses
// that line changes type, which InfluxDB then refuses for the rest of its shard). api v2 sends `123u`.
//
// Names with a backslash directly before `,` `=` space or `"`: written with the reference escaping,
// which InfluxDB 2 and tag keys and values in 1.x read back unchanged. InfluxDB 1.x's own readers do not
// for measurements and field keys (checked against influxd 1.6.7): it turns `a\\,b` and `a\=b` in a
// measurement into `a,b` and `a=b`, `\"` in a field key into `"`, and refuses the whole line for a field
// key `f\\ g`. No spelling reaches 1.x unchanged, so for api v1 such a field is left out and such a
// point not sent, both counted (skipped_fields, skipped_points), rather than stored under another name.
import type { Column, RowGroup } from '../../src/core/chunk.js';
import type { OutputBatch } from '../../src/core/component.js';
import { MAX_TIME_US, MIN_TIME_US, controlInNames, escapeStringValue, escapeTag, parseSeriesKey, serializeLine, writableFieldKey, type SerializeStats } from '../../src/core/line-protocol.js';
import { INT64_MAX, Unsigned, type FieldValue } from '../../src/core/point.js';

export interface Lines {
  /** The request body: each line followed by a line break. */
  payload: Buffer;
  /** Byte offset where each line starts. */
  starts: number[];
  /** For each line, the index of its point in the batch. */
  pointOfLine: number[];
  /** Points with nothing writable (only NaN/±Inf fields): not sent, counted as rejected. */
  skippedPoints: number;
  /** Fields left out of their line (NaN, ±Inf). */
  skippedFields: number;
  /** api v1: unsigned values above int64 sent as floats. */
  unsignedAsFloat: number;
}

export type Api = 'v1' | 'v2';

/** Line i without its line break. */
export function lineText(lines: Lines, i: number): string {
  const end = i + 1 < lines.starts.length ? lines.starts[i + 1] : lines.payload.length;
  return lines.payload.toString('utf8', lines.starts[i], end - 1);
}

/** Every line, for tests and error reports. */
export function allLines(lines: Lines): string[] {
  return lines.starts.map((_, i) => lineText(lines, i));
}

class Writer {
  buf: Buffer;
  len = 0;
  constructor(sizeHint: number) {
    this.buf = Buffer.allocUnsafe(Math.max(64 * 1024, sizeHint));
  }
  private grow(need: number): void {
    const next = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.len + need));
    this.buf.copy(next, 0, 0, this.len);
    this.buf = next;
  }
  // Byte loops in JS for the short pieces a line is made of: several times faster than a native call
  // (Buffer#write, #copy) per piece, which costs more to enter than to copy ten bytes.
  bytes(b: Buffer): void {
    const n = b.length;
    if (this.len + n > this.buf.length) this.grow(n);
    if (n > 64) {
      this.len += b.copy(this.buf, this.len);
      return;
    }
    const buf = this.buf;
    let o = this.len;
    for (let i = 0; i < n; i++) buf[o++] = b[i];
    this.len = o;
  }
  /** Text known to be ASCII (numbers, booleans). */
  ascii(s: string): void {
    const n = s.length;
    if (this.len + n > this.buf.length) this.grow(n);
    const buf = this.buf;
    let o = this.len;
    for (let i = 0; i < n; i++) buf[o++] = s.charCodeAt(i);
    this.len = o;
  }
  utf8(s: string): void {
    const n = s.length;
    if (this.len + 3 * n > this.buf.length) this.grow(3 * n);
    const buf = this.buf;
    let o = this.len;
    for (let i = 0; i < n; i++) {
      const c = s.charCodeAt(i);
      if (c >= 0x80) {
        // Not ASCII after all: let the encoder take the rest.
        this.len = o + buf.write(s.slice(i), o, 'utf8');
        return;
      }
      buf[o++] = c;
    }
    this.len = o;
  }
  byte(c: number): void {
    if (this.len + 1 > this.buf.length) this.grow(1);
    this.buf[this.len++] = c;
  }
}

export function batchLines(batch: OutputBatch, api: Api): Lines {
  const out: Lines = { payload: Buffer.alloc(0), starts: [], pointOfLine: [], skippedPoints: 0, skippedFields: 0, unsignedAsFloat: 0 };
  const stats: SerializeStats = { skippedFields: 0, skippedPoints: 0 };
  const w = new Writer(batch.points * 128);
  let point = 0;
  for (const part of batch.parts) point = groupLines(part.seriesKey, part.group, api, point, w, out, stats);
  out.payload = w.buf.subarray(0, w.len);
  out.skippedPoints = stats.skippedPoints;
  out.skippedFields = stats.skippedFields;
  return out;
}

interface FastColumn {
  /** `key=` as the first field and `,key=` after another, or null when the key cannot be written (skipped, as serializeLine does). */
  first: Buffer | null;
  later: Buffer | null;
  present: Uint8Array | null;
  next: number;
  col: Column;
}

const SPACE = 32;
const NEWLINE = 10;

/** See above: a backslash before one of these, which InfluxDB 1.x reads otherwise in measurements and field keys. */
const V1_UNREADABLE = /\\[,= "]/;

function groupLines(key: string, group: RowGroup, api: Api, firstPoint: number, w: Writer, out: Lines, stats: SerializeStats): number {
  if (api === 'v1' && key.includes('\\') && V1_UNREADABLE.test(parseSeriesKey(key).measurement)) {
    stats.skippedPoints += group.timesUs.length;
    return firstPoint + group.timesUs.length;
  }
  const names = group.columns.map((c) => (api === 'v1' && V1_UNREADABLE.test(c.name) ? '' : escapeTag(c.name)));
  // Rare shapes (an unwritable series key) take the reference path.
  if (!writableKey(key)) return slowGroupLines(key, group, api, firstPoint, w, out, stats, names);
  const columns: FastColumn[] = group.columns.map((col, c) => ({
    first: writableFieldKey(names[c]) ? Buffer.from(names[c] + '=') : null,
    later: writableFieldKey(names[c]) ? Buffer.from(',' + names[c] + '=') : null,
    present: col.present,
    next: 0,
    col,
  }));
  const head = Buffer.from(key + ' ');
  const times = group.timesUs;
  let point = firstPoint;
  for (let r = 0; r < times.length; r++, point++) {
    const start = w.len;
    let fields = 0;
    for (const c of columns) {
      if (c.present !== null && c.present[r] === 0) continue;
      const text = valueText(c.col, c.next++, api, out);
      if (text === null || c.first === null) {
        stats.skippedFields++;
        continue;
      }
      if (fields++ === 0) {
        w.bytes(head);
        w.bytes(c.first);
      } else w.bytes(c.later!);
      if (c.col.type === 'string') w.utf8(text);
      else w.ascii(text);
    }
    const t = times[r];
    if (fields === 0 || !Number.isInteger(t) || t > MAX_TIME_US || t < MIN_TIME_US) {
      w.len = start;
      stats.skippedPoints++;
      continue;
    }
    w.byte(SPACE);
    w.ascii(String(t));
    w.byte(NEWLINE);
    out.starts.push(start);
    out.pointOfLine.push(point);
  }
  return point;
}

/** A value's text in line protocol, or null when it has none (NaN, ±Inf). A switch, not a closure per column: the hottest call. */
function valueText(col: Column, i: number, api: Api, out: Lines): string | null {
  switch (col.type) {
    case 'float': {
      const v = col.values[i];
      if (v !== v || v === Infinity || v === -Infinity) return null;
      return v === 0 ? (1 / v < 0 ? '-0' : '0') : String(v);
    }
    case 'integer':
      return col.values[i].toString() + 'i';
    case 'unsigned': {
      const v = col.values[i];
      if (api === 'v2') return v.toString() + 'u';
      if (v <= INT64_MAX) return v.toString() + 'i';
      out.unsignedAsFloat++;
      return String(Number(v));
    }
    case 'boolean':
      return col.values[i] ? 'true' : 'false';
    case 'string':
      return '"' + escapeStringValue(col.values[i]) + '"';
  }
}

/** As line-protocol.ts: a key a reader would take for a comment or nothing, or would refuse, is not written. */
function writableKey(key: string): boolean {
  if (key.length === 0) return false;
  const c = key.charCodeAt(0);
  return c !== 44 && c !== 35 && !controlInNames(key);
}

/** The reference path: serializeLine per row. `names` are the escaped field keys, '' for one not to send. */
function slowGroupLines(key: string, group: RowGroup, api: Api, firstPoint: number, w: Writer, out: Lines, stats: SerializeStats, names: readonly string[]): number {
  const cursors = group.columns.map((col, c) => {
    let value: (i: number) => FieldValue;
    switch (col.type) {
      case 'float':
      case 'integer':
      case 'string': {
        const values = col.values;
        value = (i) => values[i];
        break;
      }
      case 'boolean': {
        const values = col.values;
        value = (i) => values[i] === 1;
        break;
      }
      case 'unsigned': {
        const values = col.values;
        value =
          api === 'v2'
            ? (i) => new Unsigned(values[i])
            : (i) => {
                const v = values[i];
                if (v <= INT64_MAX) return v;
                out.unsignedAsFloat++;
                return Number(v);
              };
        break;
      }
    }
    return { pair: [col.name, 0] as [string, FieldValue], present: col.present, next: 0, value, send: names[c] !== '' };
  });
  const fields: [string, FieldValue][] = [];
  const times = group.timesUs;
  let point = firstPoint;
  for (let r = 0; r < times.length; r++, point++) {
    fields.length = 0;
    for (const c of cursors) {
      if (c.present !== null && c.present[r] === 0) continue;
      if (!c.send) {
        c.next++;
        stats.skippedFields++;
        continue;
      }
      c.pair[1] = c.value(c.next++);
      fields.push(c.pair);
    }
    const line = serializeLine(key, fields, times[r], 'us', stats);
    if (line === '') continue;
    out.starts.push(w.len);
    out.pointOfLine.push(point);
    w.utf8(line);
    w.byte(NEWLINE);
  }
  return point;
}
