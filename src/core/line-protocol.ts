// InfluxDB line protocol (https://docs.influxdata.com/influxdb/v1/write_protocols/line_protocol_reference/):
// parse and serialize. Pure, no I/O.
//
// The parser is a hand-written char-code scanner over one string (a whole text or a chunk of a stream):
// `sluice import` must sustain ≥ 500k values/s including SQLite and compression, which leaves the parser a
// few hundred nanoseconds per value. It avoids regular expressions and per-field slicing where it can:
// a line whose measurement+tags text equals the previous line's reuses the parsed key, field keys are
// matched against the previous line's (`startsWith`, no allocation), and numbers are computed from their
// digits (Clinger's exact fast path) instead of slicing and calling Number().
//
// Semantics follow InfluxDB 1.x (the server sluice ships to) and the escaping table of the v2 reference:
// - measurement: `\,` and `\ ` are escapes; tag keys, tag values and field keys: `\,` `\=` `\ `;
//   string field values: `\"` and `\\`. Any other backslash is a literal backslash (so `\\,` in a tag is a
//   backslash followed by an escaped comma), which means no key can end with a backslash.
// - floats `1`, `1.`, `.5`, `-1.5e-3`, `1E+10`; NaN and ±Inf are rejected, as are floats that overflow.
//   integers `123i` (int64), unsigned `123u` (uint64), booleans t T true True TRUE f F false False FALSE,
//   strings "…" (may span lines: a raw newline inside the quotes is part of the value, as in InfluxDB).
// - timestamps are integers in the given precision; ns are truncated (floored) to the internal µs by
//   their digit string, never through a double. The range is what a double holds exactly in µs:
//   ±(2^53 − 1) µs, 1684-07-28 … 2255-06-05 (InfluxDB's own range is 1677-09-21 … 2262-04-11).
// - blank lines and lines whose first non-blank character is `#` are skipped; CRLF is accepted. Like
//   InfluxDB 1.x, blanks (space, tab, NUL) are skipped at the start of a line and before the fields and
//   the timestamp, so several spaces between sections are fine.
// - a tag with an empty value is rejected when parsing (InfluxDB: "missing tag value"); when
//   serializing, a tag with an empty key or value is left out (InfluxDB treats it as no tag).
// - duplicate tag keys reject the line; duplicate field keys: the last value wins, at the first key's
//   position.
// - control characters (U+0000–U+001F, U+007F) in a measurement, tag key or field key reject the line,
//   as InfluxDB 2's reference does; tag values and strings may hold them (so does the reference).
// - an unpaired surrogate rejects its entry (comments excepted): the byte decoders (utf8.ts) turn
//   bytes that are not UTF-8 into U+DC80…U+DCFF, so such a line is rejected naming the byte rather
//   than stored with U+FFFD. Checked only when a text is not well-formed, which one native scan tells.
import { INT64_MAX, INT64_MIN, Unsigned, type FieldValue, type Fields, type Point, type Tags } from './point.js';
import { BACKSLASH, COMMA, CR, EQUALS, HASH, LF, MAX_TIME_US, MIN_TIME_US, NUL, QUOTE, SPACE, TAB, floorDiv, isControl, setProp, unitUs } from './line-protocol-common.js';
import { nowUs, type Precision } from './time.js';
import { describeLoneSurrogate, firstLoneSurrogate, isWellFormedText } from './utf8.js';

// Serialization lives in line-protocol-write.ts; importers keep one module to import from.
export { MAX_TIME_US, MIN_TIME_US } from './line-protocol-common.js';
export * from './line-protocol-write.js';

/** A line that is not valid line protocol: `reason` says what, `column` (1-based) where. */
export class LineProtocolError extends Error {
  override readonly name = 'LineProtocolError';
  constructor(
    readonly reason: string,
    readonly column: number,
    /** > 0 when the error is on a later physical line of an entry whose string value spans lines. */
    readonly lineOffset = 0,
  ) {
    super(lineOffset > 0 ? `${reason} at column ${column} of the entry's line +${lineOffset}` : `${reason} at column ${column}`);
  }
}

export interface Reject {
  /** 1-based number of the (first physical) line of the rejected entry. */
  line: number;
  error: string;
  /** The line as read, without its line break; clipped to MAX_REJECT_TEXT characters. */
  text: string;
}

export interface ParseResult {
  points: Point[];
  rejects: Reject[];
}

export interface ParseOptions {
  /** Unit of the timestamps in the text (default ns, like InfluxDB). */
  precision?: Precision;
  /** Time of points written without a timestamp, in µs (default now); floored to `precision` as InfluxDB does. */
  defaultTimeUs?: number;
  /** Number of the text's first line, for the line numbers of rejects (default 1). */
  firstLineNumber?: number;
}

/** Rejects keep at most this much of the offending line, so a garbage input cannot pin huge strings. */
export const MAX_REJECT_TEXT = 1024;

const TIME_RANGE = `${new Date(Math.ceil(MIN_TIME_US / 1000)).toISOString()} … ${new Date(Math.floor(MAX_TIME_US / 1000)).toISOString()}`;

const UINT64_MAX = 0xffff_ffff_ffff_ffffn;
/** Exact powers of ten: 10^22 is the largest a double holds exactly (Clinger's fast path). */
const POW10 = [1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22];

/** Blank as InfluxDB 1.x skips it at the start of a line, before the fields and before the timestamp. */
function isBlank(c: number): boolean {
  return c === SPACE || c === TAB || c === NUL;
}

function controlName(c: number): string {
  return `U+${c.toString(16).toUpperCase().padStart(4, '0')}`;
}

// ---------------------------------------------------------------------------------------------------------
// Scanner state. Module-level variables rather than an object: the scanner is synchronous and not
// re-entrant, and V8 keeps these in registers/context slots far better than in a passed-around object.

/** The text being parsed. */
let T = '';
/** Index of the first character of the current entry's first physical line. */
let LS = 0;
/** End of the entry's current physical line, a trailing CR excluded. Grows when a string spans lines. */
let END = 0;
/** Index of the newline ending the entry (or T.length). */
let NL = 0;
/** Physical lines beyond the first that the entry took (string values with raw newlines). */
let EXTRA = 0;
/** False while streaming: running off the end of T means "wait for more input", not "input ended". */
let FINAL = true;
/** Position after the token just scanned. */
let POS = 0;
let PREC: Precision = 'ns';
let DEFAULT_US = 0;

// Key cache: consecutive lines of one series share the measurement+tags text, so the parsed key of the
// previous line is reused when the new line starts with the same text followed by a space. The escape
// state at that space depends only on the text before it, so equal text means an equal parse.
let cKeyRaw = '';
let cMeasurement = '';
let cTags: Tags = {};
// Field-key cache by position in the line: the raw key text and its unescaped name.
const cFieldRaw: string[] = [];
const cFieldName: string[] = [];
// Results of scanKey.
let kMeasurement = '';
let kTags: Tags = {};

function fail(reason: string, at: number): never {
  const ls = at > 0 ? T.lastIndexOf('\n', at - 1) + 1 : 0;
  let offset = 0;
  for (let i = LS; i < ls; i++) if (T.charCodeAt(i) === LF) offset++;
  throw new LineProtocolError(reason, at - Math.max(ls, LS) + 1, offset);
}

function unescapeKey(s: number, e: number, equalsEscapes: boolean): string {
  let out = '';
  let last = s;
  for (let i = s; i < e - 1; i++) {
    if (T.charCodeAt(i) !== BACKSLASH) continue;
    const d = T.charCodeAt(i + 1);
    if (d === COMMA || d === SPACE || (equalsEscapes && d === EQUALS)) {
      out += T.slice(last, i);
      last = i + 1;
      i++;
    }
  }
  return out + T.slice(last, e);
}

function unescapeString(s: number, e: number): string {
  let out = '';
  let last = s;
  for (let i = s; i < e - 1; i++) {
    if (T.charCodeAt(i) !== BACKSLASH) continue;
    const d = T.charCodeAt(i + 1);
    if (d === QUOTE || d === BACKSLASH) {
      out += T.slice(last, i);
      last = i + 1;
    }
    // Whatever follows a backslash is taken as is (an escaped backslash does not escape the next char).
    i++;
  }
  return out + T.slice(last, e);
}

/** Scans `measurement[,k=v…]` from s up to the space before the fields; returns that space's index. */
function scanKey(s: number): number {
  let pos = s;
  let esc = false;
  let c = 0;
  for (;;) {
    if (pos >= END) fail(pos === s ? 'missing measurement' : 'missing fields (no space after the measurement)', pos);
    c = T.charCodeAt(pos);
    if (c === COMMA || c === SPACE) break;
    if (isControl(c)) fail(`control character ${controlName(c)} in the measurement`, pos);
    if (c === BACKSLASH && pos + 1 < END) {
      const d = T.charCodeAt(pos + 1);
      if (d === COMMA || d === SPACE) {
        esc = true;
        pos += 2;
        continue;
      }
    }
    pos++;
  }
  if (pos === s) fail('missing measurement', pos);
  const measurement = esc ? unescapeKey(s, pos, false) : T.slice(s, pos);
  const tags: Tags = {};
  while (c === COMMA) {
    pos++;
    const ks = pos;
    esc = false;
    for (;;) {
      if (pos >= END) fail(pos === ks ? 'missing tag key' : "missing '=' after tag key", pos);
      c = T.charCodeAt(pos);
      if (c === EQUALS) break;
      if (c === COMMA || c === SPACE) fail(pos === ks ? 'missing tag key' : "missing '=' after tag key", pos);
      if (isControl(c)) fail(`control character ${controlName(c)} in a tag key`, pos);
      if (c === BACKSLASH && pos + 1 < END) {
        const d = T.charCodeAt(pos + 1);
        if (d === COMMA || d === SPACE || d === EQUALS) {
          esc = true;
          pos += 2;
          continue;
        }
      }
      pos++;
    }
    if (pos === ks) fail('missing tag key', pos);
    const key = esc ? unescapeKey(ks, pos, true) : T.slice(ks, pos);
    pos++;
    const vs = pos;
    esc = false;
    for (;;) {
      if (pos >= END) fail(pos === vs ? `missing value for tag '${key}'` : 'missing fields (no space after the tags)', pos);
      c = T.charCodeAt(pos);
      if (c === COMMA || c === SPACE) break;
      if (c === EQUALS) fail(`unescaped '=' in the value of tag '${key}'`, pos);
      if (c === BACKSLASH && pos + 1 < END) {
        const d = T.charCodeAt(pos + 1);
        if (d === COMMA || d === SPACE || d === EQUALS) {
          esc = true;
          pos += 2;
          continue;
        }
      }
      pos++;
    }
    if (pos === vs) fail(`missing value for tag '${key}'`, pos);
    // typeof, not `in`: inherited members (toString, __proto__) must not count as present.
    if (typeof tags[key] === 'string') fail(`duplicate tag '${key}'`, ks);
    setProp(tags, key, esc ? unescapeKey(vs, pos, true) : T.slice(vs, pos));
  }
  cKeyRaw = T.slice(s, pos);
  cMeasurement = measurement;
  cTags = tags;
  kMeasurement = measurement;
  kTags = { ...tags };
  return pos;
}

function badValue(s: number, name: string): never {
  let e = s;
  while (e < END) {
    const c = T.charCodeAt(e);
    if (c === COMMA || c === SPACE) break;
    e++;
  }
  const token = T.slice(s, e);
  if (/^[-+]?(nan|inf|infinity)$/i.test(token)) fail(`${token} is not a valid value for field '${name}' (line protocol has no NaN or Inf)`, s);
  fail(`invalid value '${token}' for field '${name}'`, s);
}

/** Scans a float, integer (…i) or unsigned (…u) starting at s; sets POS after it. */
function scanNumber(s: number, name: string): FieldValue {
  let pos = s;
  let c = T.charCodeAt(pos);
  const neg = c === 45;
  if (neg) c = T.charCodeAt(++pos);
  const ds = pos;
  let mant = 0;
  let sig = 0; // significant digits seen (leading zeros excluded)
  let digits = 0;
  let exp10 = 0;
  let long = false; // more significant digits than the exact fast path takes
  let dot = false;
  let sci = false;
  while (c >= 48 && c <= 57) {
    digits++;
    if (mant !== 0 || c !== 48) {
      if (sig < 15) mant = mant * 10 + (c - 48);
      else long = true;
      sig++;
    }
    c = T.charCodeAt(++pos);
  }
  if (c === 46) {
    dot = true;
    c = T.charCodeAt(++pos);
    while (c >= 48 && c <= 57) {
      digits++;
      if (mant !== 0 || c !== 48) {
        if (sig < 15) mant = mant * 10 + (c - 48);
        else long = true;
        sig++;
      }
      exp10--;
      c = T.charCodeAt(++pos);
    }
  }
  if (digits === 0) badValue(s, name);
  if (c === 101 || c === 69) {
    sci = true;
    c = T.charCodeAt(++pos);
    let eneg = false;
    if (c === 43 || c === 45) {
      eneg = c === 45;
      c = T.charCodeAt(++pos);
    }
    let e = 0;
    let ed = 0;
    while (c >= 48 && c <= 57) {
      if (e < 100000) e = e * 10 + (c - 48);
      ed++;
      c = T.charCodeAt(++pos);
    }
    if (ed === 0) badValue(s, name);
    exp10 += eneg ? -e : e;
  }
  let kind = 0; // 0 float, 1 integer, 2 unsigned
  if (c === 105 || c === 117) {
    if (dot || sci) badValue(s, name);
    kind = c === 105 ? 1 : 2;
    c = T.charCodeAt(++pos);
  }
  if (pos < END && c !== COMMA && c !== SPACE) badValue(s, name);
  POS = pos;
  if (kind === 0) {
    let v: number;
    if (!long && exp10 >= -22 && exp10 <= 22) {
      // Both operands are exact doubles, so one IEEE operation rounds the exact decimal value correctly.
      v = exp10 < 0 ? mant / POW10[-exp10] : mant * POW10[exp10];
      if (neg) v = -v;
    } else {
      v = Number(T.slice(s, pos));
    }
    if (v === Infinity || v === -Infinity) fail(`float out of range for field '${name}'`, s);
    return v;
  }
  if (kind === 1) {
    if (!long) return BigInt(neg ? -mant : mant);
    const b = BigInt(T.slice(s, pos - 1));
    if (b < INT64_MIN || b > INT64_MAX) fail(`integer out of the int64 range for field '${name}'`, s);
    return b;
  }
  if (neg) fail(`unsigned value cannot be negative for field '${name}'`, s);
  const b = long ? BigInt(T.slice(ds, pos - 1)) : BigInt(mant);
  if (b > UINT64_MAX) fail(`unsigned out of the uint64 range for field '${name}'`, s);
  return new Unsigned(b);
}

function scanBoolean(s: number, name: string): boolean {
  let pos = s;
  while (pos < END) {
    const c = T.charCodeAt(pos);
    if (c === COMMA || c === SPACE) break;
    pos++;
  }
  POS = pos;
  const c0 = T.charCodeAt(s);
  switch (pos - s) {
    case 1:
      if (c0 === 116 || c0 === 84) return true;
      if (c0 === 102 || c0 === 70) return false;
      break;
    case 4:
      if (T.startsWith('true', s) || T.startsWith('True', s) || T.startsWith('TRUE', s)) return true;
      break;
    case 5:
      if (T.startsWith('false', s) || T.startsWith('False', s) || T.startsWith('FALSE', s)) return false;
      break;
  }
  return badValue(s, name);
}

/**
 * Scans a string value whose opening quote is at q; sets POS after the closing quote. A string may
 * run over line ends (InfluxDB keeps raw newlines inside quotes); END/NL/EXTRA then move to the line
 * where it closes. Returns null when the text ends first and more may come (streaming).
 */
function scanString(q: number, name: string): string | null {
  const n = T.length;
  let i = q + 1;
  let esc = false;
  for (;;) {
    if (i >= n) {
      if (!FINAL) return null;
      fail(`unterminated string for field '${name}'`, q);
    }
    const c = T.charCodeAt(i);
    if (c === QUOTE) break;
    if (c === BACKSLASH) {
      esc = true;
      i += 2;
      continue;
    }
    i++;
  }
  const v = esc ? unescapeString(q + 1, i) : T.slice(q + 1, i);
  if (i > END) {
    let k = NL;
    while (k !== -1 && k < i) {
      EXTRA++;
      k = T.indexOf('\n', k + 1);
    }
    if (k === -1) {
      if (!FINAL) return null;
      k = n;
    }
    NL = k;
    END = k > i + 1 && T.charCodeAt(k - 1) === CR ? k - 1 : k;
  }
  POS = i + 1;
  return v;
}

function scanTime(s: number): number {
  let pos = s;
  let c = T.charCodeAt(pos);
  const neg = c === 45;
  if (neg) c = T.charCodeAt(++pos);
  const ds = pos;
  while (pos < END && c >= 48 && c <= 57) c = T.charCodeAt(++pos);
  const de = pos;
  if (pos < END && c !== SPACE) {
    if (c === 46 || c === 101 || c === 69) fail('timestamp must be an integer', pos);
    fail(`invalid character '${T[pos]}' in timestamp`, pos);
  }
  if (de === ds) fail('invalid timestamp', s);
  POS = pos;
  let i = ds;
  while (i < de - 1 && T.charCodeAt(i) === 48) i++; // leading zeros carry no magnitude
  let us: number;
  if (PREC === 'ns') {
    // Truncate by digits: the µs are all but the last three digits, floored when negative.
    const hiEnd = de - 3;
    if (hiEnd - i > 16) fail(`timestamp out of range (${TIME_RANGE})`, s);
    let hi = 0;
    for (let j = i; j < hiEnd; j++) hi = hi * 10 + (T.charCodeAt(j) - 48);
    let loNonZero = false;
    for (let j = Math.max(i, hiEnd); j < de; j++) if (T.charCodeAt(j) !== 48) loNonZero = true;
    if (hi > MAX_TIME_US) fail(`timestamp out of range (${TIME_RANGE})`, s);
    us = neg ? (loNonZero ? -hi - 1 : -hi) : hi;
  } else {
    if (de - i > 16) fail(`timestamp out of range (${TIME_RANGE})`, s);
    let v = 0;
    for (let j = i; j < de; j++) v = v * 10 + (T.charCodeAt(j) - 48);
    const unit = unitUs(PREC);
    if (v > MAX_TIME_US / unit) fail(`timestamp out of range (${TIME_RANGE})`, s);
    us = (neg ? -v : v) * unit;
  }
  if (us < MIN_TIME_US) fail(`timestamp out of range (${TIME_RANGE})`, s);
  return us === 0 ? 0 : us; // no -0
}

/** Parses the entry whose first non-blank character is at s. Null: incomplete, wait for more text. */
function parseEntry(s: number): Point | null {
  let measurement: string;
  let tags: Tags;
  let pos: number;
  const kl = cKeyRaw.length;
  if (kl !== 0 && s + kl < END && T.charCodeAt(s + kl) === SPACE && T.startsWith(cKeyRaw, s)) {
    measurement = cMeasurement;
    tags = { ...cTags };
    pos = s + kl;
  } else {
    pos = scanKey(s);
    measurement = kMeasurement;
    tags = kTags;
  }
  while (pos < END && isBlank(T.charCodeAt(pos))) pos++;
  if (pos >= END) fail('missing fields', pos);

  const fields: Fields = {};
  let fi = 0;
  for (;;) {
    let name: string;
    const raw = fi < cFieldRaw.length ? cFieldRaw[fi] : '';
    const rl = raw.length;
    if (rl !== 0 && T.charCodeAt(pos + rl) === EQUALS && pos + rl < END && T.startsWith(raw, pos)) {
      name = cFieldName[fi]!;
      pos += rl;
    } else {
      const ks = pos;
      let esc = false;
      for (;;) {
        if (pos >= END) fail(`missing '=' after field key '${T.slice(ks, pos)}'`, pos);
        const c = T.charCodeAt(pos);
        if (c === EQUALS) break;
        if (c === COMMA || c === SPACE) fail(pos === ks ? 'missing field key' : `missing '=' after field key '${T.slice(ks, pos)}'`, pos);
        if (isControl(c)) fail(`control character ${controlName(c)} in a field key`, pos);
        if (c === BACKSLASH && pos + 1 < END) {
          const d = T.charCodeAt(pos + 1);
          if (d === COMMA || d === SPACE || d === EQUALS) {
            esc = true;
            pos += 2;
            continue;
          }
        }
        pos++;
      }
      if (pos === ks) fail('missing field key', pos);
      name = esc ? unescapeKey(ks, pos, true) : T.slice(ks, pos);
      if (fi <= cFieldRaw.length) {
        cFieldRaw[fi] = T.slice(ks, pos);
        cFieldName[fi] = name;
      }
    }
    pos++; // '='
    if (pos >= END) fail(`missing value for field '${name}'`, pos);
    const c = T.charCodeAt(pos);
    let v: FieldValue;
    if (c === QUOTE) {
      const str = scanString(pos, name);
      if (str === null) return null;
      v = str;
    } else if ((c >= 48 && c <= 57) || c === 45 || c === 46) {
      v = scanNumber(pos, name);
    } else if (c === COMMA || c === SPACE) {
      fail(`missing value for field '${name}'`, pos);
    } else {
      v = scanBoolean(pos, name);
    }
    pos = POS;
    if (name === '__proto__') setProp(fields, name, v);
    else fields[name] = v;
    fi++;
    if (pos >= END) break;
    const d = T.charCodeAt(pos);
    if (d === COMMA) {
      pos++;
      if (pos >= END || T.charCodeAt(pos) === SPACE) fail("missing field key after ','", pos);
      continue;
    }
    if (d === SPACE) break;
    fail(`unexpected '${T[pos]}' after the value of field '${name}'`, pos);
  }

  while (pos < END && isBlank(T.charCodeAt(pos))) pos++;
  let timeUs = DEFAULT_US;
  if (pos < END) {
    timeUs = scanTime(pos);
    pos = POS;
    while (pos < END && T.charCodeAt(pos) === SPACE) pos++;
    if (pos < END) fail('unexpected text after the timestamp', pos);
  }
  return { measurement, tags, fields, timeUs };
}

/** Parse state carried across the chunks of one stream. */
export interface ChunkState {
  precision: Precision;
  /** Already floored to `precision`; see floorToPrecision. */
  defaultTimeUs: number;
  /** Number of the physical line at the current position. */
  line: number;
}

/** Floors a µs time to the precision's unit (InfluxDB truncates its default time likewise). */
export function floorToPrecision(us: number, precision: Precision): number {
  const unit = unitUs(precision);
  return unit === 1 ? Math.floor(us) : floorDiv(us, unit) * unit;
}

/**
 * Rejects the entry when T[from, to) holds an unpaired surrogate: an invalid UTF-8 byte as the byte
 * decoders (utf8.ts) escape it, or a broken string from elsewhere. Such text has no UTF-8 form, and
 * storing U+FFFD instead would alter the value (and merge different bad bytes into one series).
 */
function checkWellFormed(from: number, to: number): void {
  const i = firstLoneSurrogate(T, from, to);
  if (i !== -1) fail(describeLoneSurrogate(T.charCodeAt(i)), i);
}

function clip(s: string): string {
  return s.length > MAX_REJECT_TEXT ? s.slice(0, MAX_REJECT_TEXT) + '…' : s;
}

/**
 * Parses entries of `text` from `pos`, appending to `out`, and returns where it stopped: at the end, at
 * the start of an entry that is not complete yet (when !final: the caller keeps that tail and calls
 * again with more text appended), or once `out` holds maxItems points + rejects. A bad entry is
 * rejected and parsing resumes on the next physical line.
 */
export function parseChunk(text: string, pos: number, final: boolean, st: ChunkState, out: ParseResult, maxItems = Infinity): number {
  T = text;
  FINAL = final;
  PREC = st.precision;
  DEFAULT_US = st.defaultTimeUs;
  const n = text.length;
  // Most texts are well-formed: one native scan per call, and lines are only checked when it fails.
  const wellFormed = isWellFormedText(pos === 0 ? text : text.slice(pos));
  while (pos < n) {
    if (out.points.length + out.rejects.length >= maxItems) break;
    let nl = text.indexOf('\n', pos);
    if (nl === -1) {
      if (!final) break;
      nl = n;
    }
    let s = pos;
    let c = 0;
    while (s < nl && isBlank((c = text.charCodeAt(s)))) s++;
    let e = nl;
    if (e > s && text.charCodeAt(e - 1) === CR) e--;
    if (s >= e || c === HASH) {
      pos = nl + 1;
      st.line++;
      continue;
    }
    LS = pos;
    END = e;
    NL = nl;
    EXTRA = 0;
    let p: Point | null;
    try {
      if (!wellFormed) checkWellFormed(pos, nl);
      p = parseEntry(s);
      // A string value that ran over line ends: its further lines are checked too.
      if (!wellFormed && p !== null && NL > nl) checkWellFormed(nl, NL);
    } catch (err) {
      if (!(err instanceof LineProtocolError)) throw err;
      const error = err.lineOffset > 0 ? `${err.reason} at line ${st.line + err.lineOffset} column ${err.column}` : err.message;
      out.rejects.push({ line: st.line, error, text: clip(text.slice(pos, e)) });
      pos = nl + 1;
      st.line++;
      continue;
    }
    if (p === null) break;
    out.points.push(p);
    pos = NL + 1;
    st.line += 1 + EXTRA;
  }
  return pos > n ? n : pos;
}

/**
 * Parses a whole text: blank and `#` comment lines are skipped; each bad line becomes a reject with its
 * 1-based line number and the good lines around it are kept.
 */
export function parseLines(text: string, opts: ParseOptions = {}): ParseResult {
  const precision = opts.precision ?? 'ns';
  const st: ChunkState = {
    precision,
    defaultTimeUs: floorToPrecision(opts.defaultTimeUs ?? nowUs(), precision),
    line: opts.firstLineNumber ?? 1,
  };
  const out: ParseResult = { points: [], rejects: [] };
  parseChunk(text, 0, true, st, out);
  return out;
}

/** Parses one line (a trailing line break is allowed); throws LineProtocolError. */
export function parseLine(line: string, precision: Precision = 'ns', defaultTimeUs: number = nowUs()): Point {
  T = line;
  FINAL = true;
  PREC = precision;
  DEFAULT_US = floorToPrecision(defaultTimeUs, precision);
  let nl = line.indexOf('\n');
  if (nl === -1) nl = line.length;
  let s = 0;
  let c = 0;
  while (s < nl && isBlank((c = line.charCodeAt(s)))) s++;
  let e = nl;
  if (e > s && line.charCodeAt(e - 1) === CR) e--;
  if (s >= e || c === HASH) throw new LineProtocolError('no point: the line is blank or a comment', 1);
  LS = 0;
  END = e;
  NL = nl;
  EXTRA = 0;
  const wellFormed = isWellFormedText(line);
  if (!wellFormed) checkWellFormed(0, nl);
  const p = parseEntry(s)!; // FINAL: never incomplete
  if (!wellFormed) checkWellFormed(0, NL);
  for (let i = NL + 1; i < line.length; i++) {
    const d = line.charCodeAt(i);
    if (!isBlank(d) && d !== CR && d !== LF) fail('more than one line', i);
  }
  return p;
}
