// The chunk codec: one RowGroup (one series, many rows) <-> one self-describing byte string.
//
// ON-DISK FORMAT, version 1. This is what the ring stores; change it only by adding a version.
// "varint" is unsigned LEB128 (values below 2^53); multi-byte fixed fields are little-endian.
//
//   u8      version                 1
//   u8      flags                   bit 0 RAW_TIME: timestamps are raw float64 (not compact)
//                                   bit 1 FIRST_NEGATIVE, bit 2 LAST_NEGATIVE (compact only)
//                                   other bits must be 0
//   varint  rows                    at most MAX_ROWS
//   if rows > 0:
//     compact: varint |firstUs|, varint |lastUs|     (signs in flags)
//     raw:     f64 firstUs, f64 lastUs
//   varint  timeBytes, then the time section (a bit stream, see below)
//   varint  columnCount
//   per column:
//     varint  nameTag = byteLength * 2 + isUtf16; name bytes (UTF-8, or UTF-16LE code units if
//             the name holds a lone surrogate)
//     u8      typeTag: bits 0-2 type (0 float, 1 integer, 2 unsigned, 3 boolean, 4 string),
//             bit 7 = a presence map starts the body; other bits 0
//     varint  count                 present values (= rows without a presence map)
//     varint  bodyBytes, then the body: a bit stream, so a reader skips a column in O(1)
//   u32     CRC-32 of every byte before it
//
// Bit streams are packed LSB-first and padded to a byte. Their building blocks:
//   var-bits                  6 bits length L, then L bits; signed: a sign bit first
//   block stream (blocks.ts)  n unsigned values (n known from context): 1 bit all-zero; else 1 bit
//                             sparse (var-bits count - 1, block streams of position gaps and of the
//                             non-zero values) or dense: blocks of 128, each a 7-bit code, PFor
//                             (bit width + exceptions) or Rice(k)
//   int sequence (intseq.ts)  n signed integers: 2 bits transform (FOR | DELTA | DOD), its start
//                             values as signed var-bits, var-bits GCD - 1, then the (zigzagged)
//                             transformed values divided by the GCD as a block stream
//   time section, compact     int sequence of timeUs - firstUs (regular series: DOD, all zero)
//   time section, raw         rows x 64 bits
//   body                      [presence: a bitmap of rows bits] then the values by type:
//     float     3 bits scheme (floats.ts):
//               0 DECIMAL, 1 DECIMAL_F32, 6 DECIMAL_MUL: 4 bits d, int sequence of n, 1 bit residuals
//                         present [block stream of zigzagged bits(v) - bits(approx); 32-bit
//                         float32 patterns for DECIMAL_F32], where approx is n / 10^d,
//                         fround(n / 10^d) or n * 10^-d respectively
//               2 PATTERN32  int sequence of the float32 patterns as ordered int32
//               3 PATTERN64  block stream of zigzagged wrapping deltas of ordered 64-bit patterns
//               4 GORILLA    64 bits, then per value 0 | 10 + bits | 11 + 5 bits leading zeros,
//                            6 bits width - 1, bits
//               5 DICTIONARY var-bits size - 1, the sorted distinct values as a float body (any
//                            scheme but DICTIONARY), int sequence of indices into them
//     integer,  1 bit wide; 0: int sequence of the values (all within ±2^50);
//     unsigned  1: block stream of zigzagged wrapping 64-bit deltas (exact over the full range)
//     boolean   bitmap: 1 bit mode; RAW: one bit per value; RUNS: first bit, var-bits runs - 1,
//               block stream of run lengths - 1
//     string    var-bits dictionary size - 1; block stream of entry lengths (UTF-16 units); 1 bit
//               UTF-16, 1 bit deflated, var-bits stored bytes [, var-bits raw bytes], aligned
//               bytes; then if more than one entry: 1 bit mode, PLAIN: block stream of indices,
//               RUNS: var-bits runs - 1, block streams of run values and run lengths - 1;
//               entries are ordered by frequency, most frequent first
//
// No whole-chunk LZ4/deflate/brotli stage: measured on the reference datasets, keeping deflate
// only where it shrank a chunk saved 1.3% (Beijing), 0.3% (SKAB) and nothing (NAB), LZ4 under
// 0.7%, at about twice the encode time; the bit-packed payload is already close to its entropy.
// String dictionaries, where byte-level redundancy does survive, are deflated when that saves 10%.
import { crc32 } from 'node:zlib';
import type { Column, ColumnValues, FieldType, RowGroup } from '../../core/chunk.js';
import { BitReader, BitWriter } from './bits.js';
import { readBitmap, writeBitmap } from './booleans.js';
import { CodecError } from './errors.js';
import { readFloats, writeFloats } from './floats.js';
import { readIntegers, writeIntegers } from './integers.js';
import { bytesToText, isWellFormed, readStrings, textToBytes, writeStrings } from './strings.js';
import { isCompactTimes, readCompactTimes, readRawTimes, writeCompactTimes, writeRawTimes } from './timestamps.js';

export const CHUNK_FORMAT_VERSION = 1;

/** The most rows one chunk may hold; far above what the ring should use. */
export const MAX_ROWS = 1 << 20;

/**
 * Rows per chunk the ring should aim for (and seal at). Measured on the reference datasets, size
 * is within 1% of its best anywhere from 1024 to 8192 rows (Beijing 5.09 bits/value at 1024 and
 * 5.12 at 4096; SKAB 10.22 and 10.10), while small chunks pay for their names, headers and scheme
 * choices: Beijing costs 5.2 bits/value at 512 rows, 6.0 at 128, 12.8 at 16 and 116 at one row.
 * 4096 rows of a dozen fields decode in about a millisecond.
 */
export const RECOMMENDED_MAX_ROWS = 4096;

const FLAG_RAW_TIME = 1;
const FLAG_FIRST_NEGATIVE = 2;
const FLAG_LAST_NEGATIVE = 4;
const KNOWN_FLAGS = FLAG_RAW_TIME | FLAG_FIRST_NEGATIVE | FLAG_LAST_NEGATIVE;
const TYPE_MASK = 0x07;
const HAS_PRESENCE = 0x80;
const CRC_BYTES = 4;

const scratchF64 = new Float64Array(1);
const scratchBytes = new Uint8Array(scratchF64.buffer);

const TYPE_CODES: Record<FieldType, number> = { float: 0, integer: 1, unsigned: 2, boolean: 3, string: 4 };
const TYPES: readonly FieldType[] = ['float', 'integer', 'unsigned', 'boolean', 'string'];

export interface ChunkColumnInfo {
  name: string;
  type: FieldType;
  /** Number of present values. */
  count: number;
}

export interface ChunkInfo {
  version: number;
  rows: number;
  /** First and last timestamp of the chunk; NaN when it has no rows. */
  firstUs: number;
  lastUs: number;
  columns: ChunkColumnInfo[];
}

// --- encoding ------------------------------------------------------------------------------------

/** Growable byte buffer for the byte-aligned outer structure; one instance, reset per chunk. */
class ByteWriter {
  private buf: Uint8Array;
  private pos = 0;

  constructor(initialBytes: number) {
    this.buf = new Uint8Array(initialBytes);
  }

  reset(): void {
    this.pos = 0;
  }

  u8(value: number): void {
    this.ensure(1);
    this.buf[this.pos++] = value;
  }

  varint(value: number): void {
    this.ensure(8);
    // Division rather than shifts: values may exceed 2^32.
    while (value >= 0x80) {
      this.buf[this.pos++] = (value % 0x80) | 0x80;
      value = Math.floor(value / 0x80);
    }
    this.buf[this.pos++] = value;
  }

  f64(value: number): void {
    this.ensure(8);
    scratchF64[0] = value;
    this.bytes(scratchBytes);
  }

  bytes(data: Uint8Array): void {
    this.ensure(data.length);
    this.buf.set(data, this.pos);
    this.pos += data.length;
  }

  copy(): Uint8Array {
    return this.buf.slice(0, this.pos);
  }

  /** Appends the CRC-32 of everything so far and returns a copy of the bytes. */
  finishWithCrc(): Uint8Array {
    const crc = crc32(this.buf.subarray(0, this.pos));
    this.ensure(CRC_BYTES);
    const b = this.buf;
    b[this.pos++] = crc;
    b[this.pos++] = crc >>> 8;
    b[this.pos++] = crc >>> 16;
    b[this.pos++] = crc >>> 24;
    return b.slice(0, this.pos);
  }

  private ensure(extra: number): void {
    if (this.pos + extra <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.pos + extra) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.buf.subarray(0, this.pos));
    this.buf = next;
  }
}

// One writer of each kind, reused for every chunk: encoding is synchronous, so they are never shared.
const out = new ByteWriter(1 << 16);
const bodyWriter = new BitWriter(1 << 16);

// Field names repeat in every chunk of a series; their encoded form is cached (bounded).
const MAX_CACHED_NAMES = 4096;
const nameCache = new Map<string, Uint8Array>();

/** The name's stored form: varint tag (byte length * 2 + isUtf16) then the bytes. */
function encodedName(name: string): Uint8Array {
  let encoded = nameCache.get(name);
  if (encoded === undefined) {
    const utf16 = !isWellFormed(name);
    const bytes = textToBytes(name, utf16);
    const tag = new ByteWriter(bytes.length + 8);
    tag.varint(bytes.length * 2 + (utf16 ? 1 : 0));
    tag.bytes(bytes);
    encoded = tag.copy();
    if (nameCache.size >= MAX_CACHED_NAMES) nameCache.clear();
    nameCache.set(name, encoded);
  }
  return encoded;
}

/**
 * Encodes one row group. Throws RangeError when the group breaks the RowGroup contract (value
 * counts that do not match the rows or the presence map, more than MAX_ROWS rows). Timestamps
 * are not checked for order: any float64 round-trips, integers in a 35-year span compactly.
 */
export function encodeChunk(group: RowGroup): Uint8Array {
  const { timesUs, columns } = group;
  const rows = timesUs.length;
  if (rows > MAX_ROWS) throw new RangeError(`chunk of ${rows} rows exceeds the limit of ${MAX_ROWS}`);
  out.reset();
  out.u8(CHUNK_FORMAT_VERSION);
  const compact = isCompactTimes(timesUs);
  const firstUs = rows > 0 ? timesUs[0] : 0;
  const lastUs = rows > 0 ? timesUs[rows - 1] : 0;
  let flags = 0;
  if (!compact) flags |= FLAG_RAW_TIME;
  else {
    if (firstUs < 0) flags |= FLAG_FIRST_NEGATIVE;
    if (lastUs < 0) flags |= FLAG_LAST_NEGATIVE;
  }
  out.u8(flags);
  out.varint(rows);
  if (rows > 0) {
    if (compact) {
      out.varint(Math.abs(firstUs));
      out.varint(Math.abs(lastUs));
    } else {
      out.f64(firstUs);
      out.f64(lastUs);
    }
  }
  bodyWriter.reset();
  if (compact) writeCompactTimes(bodyWriter, timesUs);
  else writeRawTimes(bodyWriter, timesUs);
  const timeSection = bodyWriter.finish();
  out.varint(timeSection.length);
  out.bytes(timeSection);

  out.varint(columns.length);
  for (const column of columns) {
    const typeCode = TYPE_CODES[column.type];
    if (typeCode === undefined) throw new RangeError(`column ${column.name}: unknown type ${String(column.type)}`);
    const count = column.values.length;
    const present = presenceOf(column, rows, count);
    out.bytes(encodedName(column.name));
    out.u8(typeCode | (present === null ? 0 : HAS_PRESENCE));
    out.varint(count);
    bodyWriter.reset();
    if (present !== null) writeBitmap(bodyWriter, present, rows);
    writeValues(bodyWriter, column);
    const body = bodyWriter.finish();
    out.varint(body.length);
    out.bytes(body);
  }
  return out.finishWithCrc();
}

/** The presence map to store, or null when every row has a value (an all-ones map is dropped). */
function presenceOf(column: Column, rows: number, count: number): Uint8Array | null {
  const present = column.present;
  if (present === null) {
    if (count !== rows) throw new RangeError(`column ${column.name}: ${count} values for ${rows} rows and no presence map`);
    return null;
  }
  if (present.length !== rows) throw new RangeError(`column ${column.name}: presence map of ${present.length} for ${rows} rows`);
  let ones = 0;
  for (let i = 0; i < rows; i++) if (present[i] !== 0) ones++;
  if (ones !== count) throw new RangeError(`column ${column.name}: ${count} values but ${ones} rows marked present`);
  return ones === rows ? null : present;
}

function writeValues(w: BitWriter, column: ColumnValues): void {
  switch (column.type) {
    case 'float':
      writeFloats(w, column.values);
      return;
    case 'integer':
    case 'unsigned':
      writeIntegers(w, column.values);
      return;
    case 'boolean':
      writeBitmap(w, column.values, column.values.length);
      return;
    case 'string':
      writeStrings(w, column.values);
      return;
  }
}

// --- decoding ------------------------------------------------------------------------------------

/** Byte cursor over the outer structure; every read is bounds-checked. */
class ByteReader {
  constructor(
    readonly bytes: Uint8Array,
    public pos: number,
    readonly end: number,
  ) {}

  u8(): number {
    if (this.pos >= this.end) throw truncated();
    return this.bytes[this.pos++];
  }

  varint(): number {
    let value = 0;
    let scale = 1;
    for (let i = 0; i < 8; i++) {
      const byte = this.u8();
      value += (byte & 0x7f) * scale;
      if (byte < 0x80) {
        if (value > Number.MAX_SAFE_INTEGER) break;
        return value;
      }
      scale *= 0x80;
    }
    throw new CodecError('corrupt chunk: varint too long');
  }

  f64(): number {
    if (this.pos + 8 > this.end) throw truncated();
    const value = new DataView(this.bytes.buffer, this.bytes.byteOffset).getFloat64(this.pos, true);
    this.pos += 8;
    return value;
  }

  /** Returns [start, end) of the next `length` bytes and skips them. */
  skip(length: number): number {
    if (length > this.end - this.pos) throw truncated();
    const start = this.pos;
    this.pos += length;
    return start;
  }
}

function truncated(): CodecError {
  return new CodecError('truncated chunk');
}

interface Header {
  reader: ByteReader;
  rows: number;
  compact: boolean;
  firstUs: number;
  lastUs: number;
  timeStart: number;
  timeEnd: number;
  columnCount: number;
}

function readHeader(bytes: Uint8Array): Header {
  if (bytes.length === 0) throw truncated();
  const version = bytes[0];
  if (version !== CHUNK_FORMAT_VERSION) {
    throw new CodecError(`unsupported chunk format version ${version} (this build reads version ${CHUNK_FORMAT_VERSION})`);
  }
  if (bytes.length < 2 + CRC_BYTES) throw truncated();
  const end = bytes.length - CRC_BYTES;
  const storedCrc = new DataView(bytes.buffer, bytes.byteOffset).getUint32(end, true);
  if (crc32(bytes.subarray(0, end)) !== storedCrc) throw new CodecError('corrupt or truncated chunk: checksum mismatch');
  const reader = new ByteReader(bytes, 1, end);
  const flags = reader.u8();
  if ((flags & ~KNOWN_FLAGS) !== 0) throw new CodecError(`corrupt chunk: unknown flags 0x${flags.toString(16)}`);
  const compact = (flags & FLAG_RAW_TIME) === 0;
  const rows = reader.varint();
  if (rows > MAX_ROWS) throw new CodecError(`corrupt chunk: ${rows} rows exceeds the limit of ${MAX_ROWS}`);
  let firstUs = NaN;
  let lastUs = NaN;
  if (rows > 0) {
    if (compact) {
      firstUs = reader.varint();
      lastUs = reader.varint();
      if (flags & FLAG_FIRST_NEGATIVE) firstUs = -firstUs;
      if (flags & FLAG_LAST_NEGATIVE) lastUs = -lastUs;
    } else {
      firstUs = reader.f64();
      lastUs = reader.f64();
    }
  }
  const timeBytes = reader.varint();
  const timeStart = reader.skip(timeBytes);
  const columnCount = reader.varint();
  // Every column takes at least four bytes (name tag, type, count, body length).
  if (columnCount * 4 > end - reader.pos) throw new CodecError(`corrupt chunk: ${columnCount} columns do not fit`);
  return { reader, rows, compact, firstUs, lastUs, timeStart, timeEnd: timeStart + timeBytes, columnCount };
}

interface ColumnHeader {
  name: string;
  type: FieldType;
  hasPresence: boolean;
  count: number;
  bodyStart: number;
  bodyEnd: number;
}

// Decoded field names, keyed by a hash of their stored bytes and checked byte for byte on a hit,
// so reading many small chunks of one series does not decode the same names again and again.
const decodedNames = new Map<number, { bytes: Uint8Array; name: string }>();

function decodeName(bytes: Uint8Array, start: number, end: number, utf16: boolean): string {
  let hash = utf16 ? 0x811c9dc5 ^ 1 : 0x811c9dc5;
  for (let i = start; i < end; i++) hash = Math.imul(hash ^ bytes[i], 0x01000193);
  const cached = decodedNames.get(hash);
  if (cached !== undefined && cached.bytes.length === end - start) {
    let same = true;
    for (let i = start; i < end && same; i++) same = cached.bytes[i - start] === bytes[i];
    if (same) return cached.name;
  }
  const name = bytesToText(bytes.subarray(start, end), utf16);
  if (decodedNames.size >= MAX_CACHED_NAMES) decodedNames.clear();
  decodedNames.set(hash, { bytes: bytes.slice(start, end), name });
  return name;
}

function readColumnHeader(reader: ByteReader, rows: number): ColumnHeader {
  const nameTag = reader.varint();
  const nameStart = reader.skip(Math.floor(nameTag / 2));
  const name = decodeName(reader.bytes, nameStart, reader.pos, nameTag % 2 === 1);
  const typeTag = reader.u8();
  const type = TYPES[typeTag & TYPE_MASK];
  if (type === undefined || (typeTag & ~(TYPE_MASK | HAS_PRESENCE)) !== 0) {
    throw new CodecError(`corrupt chunk: column ${name} has unknown type tag ${typeTag}`);
  }
  const hasPresence = (typeTag & HAS_PRESENCE) !== 0;
  const count = reader.varint();
  if (hasPresence ? count > rows : count !== rows) {
    throw new CodecError(`corrupt chunk: column ${name} has ${count} values for ${rows} rows`);
  }
  const bodyBytes = reader.varint();
  const bodyStart = reader.skip(bodyBytes);
  return { name, type, hasPresence, count, bodyStart, bodyEnd: bodyStart + bodyBytes };
}

/** Reads the header and column directory without decoding any values (the checksum is verified). */
export function peekChunk(bytes: Uint8Array): ChunkInfo {
  const header = readHeader(bytes);
  const columns: ChunkColumnInfo[] = [];
  for (let c = 0; c < header.columnCount; c++) {
    const { name, type, count } = readColumnHeader(header.reader, header.rows);
    columns.push({ name, type, count });
  }
  expectEnd(header.reader);
  return { version: CHUNK_FORMAT_VERSION, rows: header.rows, firstUs: header.firstUs, lastUs: header.lastUs, columns };
}

/**
 * Decodes a chunk. With `fields`, only the columns named there are decoded and returned; the
 * others are skipped by their stored length. Throws CodecError on truncated, corrupt or
 * unknown-version input.
 */
export function decodeChunk(bytes: Uint8Array, fields?: ReadonlySet<string>): RowGroup {
  const header = readHeader(bytes);
  const { reader, rows } = header;
  const timeReader = new BitReader(bytes, header.timeStart, header.timeEnd);
  let timesUs: Float64Array;
  if (header.compact) {
    timesUs = readCompactTimes(timeReader, rows, header.firstUs);
    if (rows > 0 && timesUs[rows - 1] !== header.lastUs) throw new CodecError('corrupt chunk: timestamps disagree with the header');
  } else {
    timesUs = readRawTimes(timeReader, rows);
  }
  const columns: Column[] = [];
  for (let c = 0; c < header.columnCount; c++) {
    const column = readColumnHeader(reader, rows);
    if (fields !== undefined && !fields.has(column.name)) continue;
    const r = new BitReader(bytes, column.bodyStart, column.bodyEnd);
    let present: Uint8Array | null = null;
    if (column.hasPresence) {
      present = readBitmap(r, rows);
      let ones = 0;
      for (let i = 0; i < rows; i++) ones += present[i];
      if (ones !== column.count) throw new CodecError(`corrupt chunk: column ${column.name} presence map disagrees with its count`);
    }
    columns.push({ name: column.name, present, ...readValues(r, column.type, column.count) });
  }
  expectEnd(reader);
  return { timesUs, columns };
}

function expectEnd(reader: ByteReader): void {
  if (reader.pos !== reader.end) throw new CodecError('corrupt chunk: trailing bytes after the last column');
}

function readValues(r: BitReader, type: FieldType, count: number): ColumnValues {
  switch (type) {
    case 'float':
      return { type, values: readFloats(r, count) };
    case 'integer':
      return { type, values: readIntegers(r, count, true) as BigInt64Array };
    case 'unsigned':
      return { type, values: readIntegers(r, count, false) as BigUint64Array };
    case 'boolean':
      return { type, values: readBitmap(r, count) };
    case 'string':
      return { type, values: readStrings(r, count) };
  }
}
