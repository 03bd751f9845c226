// Line decoders of the serial input: one text line in, one point out. Pure: the time of receipt is
// passed in, nothing here reads a clock or a port.
//
// Typing of text values (csv cells, regex groups), decided once for every format that carries no types:
// - a decimal number (`21.5`, `-3`, `1e-3`, `+.5`) becomes a float, also when it has no fraction: a
//   sensor printing `20` then `20.5` must not produce an integer and then a float in one field (InfluxDB
//   would reject the second write for a type conflict);
// - `true`/`false` (also `True`, `TRUE`, …) become booleans; `1`/`0` stay numbers;
// - anything else is a string; an empty value is no field at all.
// JSON values keep their JSON type (number → float, boolean, string); line protocol keeps its own types.
//
// A line that cannot be decoded throws DecodeError, with a reason meant for a log line.
import { LineProtocolError, parseLine } from '../../src/core/line-protocol.js';
import { ValueError, epochToUs, rfc3339ToUs } from '../../src/core/text-values.js';
import { jsonReading } from '../../src/core/json-payload.js';
import type { FieldValue, Fields, Point, Tags } from '../../src/core/point.js';
import type { SerialInputConfig } from './schema.js';

export class DecodeError extends ValueError {
  override readonly name = 'DecodeError';
}

/** Decodes one line (delimiter and surrounding CR/LF already removed); null means "nothing to store, not an error". */
export type LineDecoder = (line: string, receivedUs: number) => Point | null;

export type CsvSettings = NonNullable<SerialInputConfig['csv']>;
export type JsonSettings = NonNullable<SerialInputConfig['json']>;
export type RegexSettings = NonNullable<SerialInputConfig['regex']>;
export type InfluxSettings = NonNullable<SerialInputConfig['influx']>;
export type TimeFormat = NonNullable<CsvSettings['time_format']>;

/** What a format-specific decoder yields before measurement and tags are applied. */
interface Reading {
  fields: Fields;
  timeUs: number;
}

/** The decoder of an input's configured format, producing points with its measurement and tags. */
export function createDecoder(config: SerialInputConfig): LineDecoder {
  const tags = config.tags;
  if (config.format === 'influx') return influxDecoder(config.influx ?? { precision: 'ns' }, tags);
  let read: (line: string, receivedUs: number) => Reading;
  switch (config.format) {
    case 'csv':
      if (!config.csv) throw new Error('format csv without csv settings (the config loader should have refused this)');
      read = csvReader(config.csv);
      break;
    case 'json':
      read = jsonReader(config.json ?? { time_precision: 'ms' });
      break;
    case 'regex':
      if (!config.regex) throw new Error('format regex without regex settings (the config loader should have refused this)');
      read = regexReader(config.regex);
      break;
  }
  const measurement = config.measurement;
  return (line, receivedUs) => {
    const { fields, timeUs } = read(line, receivedUs);
    // A fresh tags object per point: the agent's sink adds its tags to each point in place.
    return { measurement, tags: { ...tags }, fields, timeUs };
  };
}

// ------------------------------------------------------------------------------------------ values

const DECIMAL = /^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$/;
const BOOLEAN: Record<string, boolean> = { true: true, True: true, TRUE: true, false: false, False: false, FALSE: false };

/** Types an untyped text value (see the file comment); undefined for an empty one. */
export function inferValue(text: string, what: string): FieldValue | undefined {
  if (text === '') return undefined;
  if (DECIMAL.test(text)) {
    const n = Number(text);
    if (!Number.isFinite(n)) throw new DecodeError(`${what}: ${clip(text)} is out of the range of a float`);
    return n;
  }
  const b = BOOLEAN[text];
  return b ?? text;
}

/** A csv time cell in its configured format. */
export function parseTime(text: string, format: TimeFormat): number {
  switch (format) {
    case 'rfc3339':
      return rfc3339ToUs(text);
    case 'unix':
      return epochToUs(text, 's');
    case 'unix_ms':
      return epochToUs(text, 'ms');
    case 'unix_us':
      return epochToUs(text, 'us');
    case 'unix_ns':
      return epochToUs(text, 'ns');
  }
}

// ------------------------------------------------------------------------------------------ csv

interface Cell {
  text: string;
  quoted: boolean;
}

/**
 * Splits a csv line. Unquoted cells are trimmed of spaces and tabs (unless that is the separator);
 * a cell may be quoted ("a, b", with "" for a quote), and then is taken as written, as a string.
 */
export function splitCsv(line: string, separator: string): Cell[] {
  const cells: Cell[] = [];
  const sep = separator.charCodeAt(0);
  const isBlank = (c: number): boolean => (c === 32 || c === 9) && c !== sep;
  let i = 0;
  const n = line.length;
  for (;;) {
    while (i < n && isBlank(line.charCodeAt(i))) i++;
    if (i < n && line.charCodeAt(i) === 34) {
      let text = '';
      let j = i + 1;
      for (;;) {
        const q = line.indexOf('"', j);
        if (q === -1) throw new DecodeError(`unterminated quote at column ${i + 1}`);
        text += line.slice(j, q);
        if (line.charCodeAt(q + 1) === 34) {
          text += '"';
          j = q + 2;
        } else {
          i = q + 1;
          break;
        }
      }
      while (i < n && isBlank(line.charCodeAt(i))) i++;
      if (i < n && line.charCodeAt(i) !== sep) throw new DecodeError(`text after a closing quote at column ${i + 1}`);
      cells.push({ text, quoted: true });
    } else {
      let end = line.indexOf(separator, i);
      if (end === -1) end = n;
      let e = end;
      while (e > i && isBlank(line.charCodeAt(e - 1))) e--;
      cells.push({ text: line.slice(i, e), quoted: false });
      i = end;
    }
    if (i >= n) return cells;
    i++; // the separator
    if (i === n) {
      cells.push({ text: '', quoted: false });
      return cells;
    }
  }
}

/**
 * csv: exactly as many cells as columns, so that a fragment or a line of another record type is
 * refused rather than stored in the wrong fields. Empty cells are left out.
 */
export function csvReader(settings: CsvSettings): (line: string, receivedUs: number) => Reading {
  const { columns, separator, time_column: timeColumn, time_format: timeFormat } = settings;
  const timeIndex = timeColumn === undefined ? -1 : columns.indexOf(timeColumn);
  return (line, receivedUs) => {
    const cells = splitCsv(line, separator);
    if (cells.length !== columns.length) {
      throw new DecodeError(`${cells.length} ${cells.length === 1 ? 'column' : 'columns'}, expected ${columns.length} (${columns.join(separator)})`);
    }
    const fields: Fields = {};
    let timeUs = receivedUs;
    let any = false;
    for (let i = 0; i < cells.length; i++) {
      const { text, quoted } = cells[i];
      if (i === timeIndex) {
        if (text === '') throw new DecodeError(`no time in column ${columns[i]}`);
        timeUs = parseTime(text, timeFormat ?? 'rfc3339');
        continue;
      }
      const value = quoted ? text : inferValue(text, columns[i]);
      if (value === undefined) continue;
      fields[columns[i]] = value;
      any = true;
    }
    if (!any) throw new DecodeError('no values');
    return { fields, timeUs };
  };
}

// ------------------------------------------------------------------------------------------ json

/** Deeper nesting is refused: it is not a sensor reading, and it would cost stack for nothing. */
/**
 * json: one object per line. Nested objects and arrays are flattened with `_` (`{"env":{"t":1}}` gives
 * field `env_t`, `{"v":[1,2]}` gives `v_0`, `v_1`); nulls are left out. `fields` picks flattened keys;
 * naming an object or array picks every value under it. time_key names a flattened key too.
 */
export function jsonReader(settings: JsonSettings): (line: string, receivedUs: number) => Reading {
  return (line, receivedUs) => {
    let parsed: unknown;
    try {
      parsed = JSON.parse(line);
    } catch (err) {
      throw new DecodeError(`not JSON: ${(err as Error).message}`);
    }
    return jsonReading(parsed, settings, receivedUs);
  };
}

// ------------------------------------------------------------------------------------------ regex

/** regex: every named group that took part in the match becomes a field, typed like a csv cell. */
export function regexReader(settings: RegexSettings): (line: string, receivedUs: number) => Reading {
  const re = new RegExp(settings.pattern);
  return (line, receivedUs) => {
    const m = re.exec(line);
    if (!m) throw new DecodeError('does not match the pattern');
    const fields: Fields = {};
    let any = false;
    for (const [name, text] of Object.entries(m.groups ?? {})) {
      if (text === undefined) continue;
      const value = inferValue(text, name);
      if (value === undefined) continue;
      fields[name] = value;
      any = true;
    }
    if (!any) throw new DecodeError('the pattern matched but captured no values');
    return { fields, timeUs: receivedUs };
  };
}

// ------------------------------------------------------------------------------------------ influx

/**
 * influx: each line is one line-protocol point with its own measurement; the input's tags are added
 * (the line's own tags win). `#` comment lines are skipped.
 */
export function influxDecoder(settings: InfluxSettings, tags: Tags): LineDecoder {
  const hasTags = Object.keys(tags).length > 0;
  return (line, receivedUs) => {
    if (line.trimStart().startsWith('#')) return null;
    let p: Point;
    try {
      p = parseLine(line, settings.precision, receivedUs);
    } catch (err) {
      if (err instanceof LineProtocolError) throw new DecodeError(`not line protocol: ${err.message}`);
      throw err;
    }
    if (hasTags) p.tags = { ...tags, ...p.tags };
    return p;
  };
}

/** Values in error messages are clipped: a garbage line must not produce a huge log line. */
function clip(text: string, max = 40): string {
  return JSON.stringify(text.length > max ? text.slice(0, max) + '…' : text);
}
