// String columns: a per-chunk dictionary ordered by frequency (so the common values get the small
// indices that Rice coding makes cheap), then the index stream, plain or as runs, whichever is
// smaller. Text is stored as UTF-8 when every dictionary entry is well-formed UTF-16, and as raw
// UTF-16 code units otherwise: JS strings may hold lone surrogates, which TextEncoder would
// silently replace with U+FFFD. A long dictionary is deflated when that saves at least 10%.
import { deflateRawSync, inflateRawSync } from 'node:zlib';
import type { BitReader, BitWriter } from './bits.js';
import { readStream, streamCost, writeStream } from './blocks.js';
import { CodecError } from './errors.js';

const PLAIN = 0;
const RUNS = 1;
const DEFLATE_MIN_BYTES = 256;
/** Refuse to inflate more than this from one column: corrupt input must not exhaust memory. */
const MAX_DICTIONARY_BYTES = 1 << 30;

const LONE_SURROGATE = /\p{Surrogate}/u;
const utf8Encoder = new TextEncoder();
const utf8Decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

export function isWellFormed(s: string): boolean {
  return !LONE_SURROGATE.test(s);
}

/** Text as bytes: UTF-8 when well-formed, else UTF-16LE code units (lossless for lone surrogates). */
export function textToBytes(text: string, utf16: boolean): Uint8Array {
  if (!utf16) return utf8Encoder.encode(text);
  const bytes = new Uint8Array(text.length * 2);
  for (let i = 0; i < text.length; i++) {
    const unit = text.charCodeAt(i);
    bytes[2 * i] = unit;
    bytes[2 * i + 1] = unit >>> 8;
  }
  return bytes;
}

export function bytesToText(bytes: Uint8Array, utf16: boolean): string {
  if (!utf16) {
    try {
      return utf8Decoder.decode(bytes);
    } catch (cause) {
      throw new CodecError('corrupt chunk: invalid UTF-8 text', { cause });
    }
  }
  if (bytes.length % 2 !== 0) throw new CodecError('corrupt chunk: odd UTF-16 byte length');
  const units = new Uint16Array(bytes.length / 2);
  for (let i = 0; i < units.length; i++) units[i] = bytes[2 * i] | (bytes[2 * i + 1] << 8);
  // fromCharCode takes arguments, so go in slices that stay far below the engine's argument limit.
  const parts: string[] = [];
  for (let i = 0; i < units.length; i += 8192) parts.push(String.fromCharCode(...units.subarray(i, i + 8192)));
  return parts.join('');
}

let indices = new Uint32Array(1024);
let runValues = new Uint32Array(1024);
let runLengths = new Uint32Array(1024);

function ensure(count: number): void {
  if (indices.length >= count) return;
  let size = indices.length;
  while (size < count) size *= 2;
  indices = new Uint32Array(size);
  runValues = new Uint32Array(size);
  runLengths = new Uint32Array(size);
}

export function writeStrings(w: BitWriter, values: readonly string[]): void {
  const count = values.length;
  if (count === 0) return;
  ensure(count);
  const ids = new Map<string, number>();
  const firstSeen: string[] = [];
  const counts: number[] = [];
  for (let i = 0; i < count; i++) {
    const v = values[i];
    let id = ids.get(v);
    if (id === undefined) {
      id = firstSeen.length;
      ids.set(v, id);
      firstSeen.push(v);
      counts.push(0);
    }
    counts[id]++;
    indices[i] = id;
  }
  const dictSize = firstSeen.length;
  const byRank = Array.from({ length: dictSize }, (_, id) => id).sort((a, b) => counts[b] - counts[a] || a - b);
  const rankOf = new Uint32Array(dictSize);
  for (let rank = 0; rank < dictSize; rank++) rankOf[byRank[rank]] = rank;
  for (let i = 0; i < count; i++) indices[i] = rankOf[indices[i]];
  const dictionary = byRank.map((id) => firstSeen[id]);

  w.writeVarBits(dictSize - 1);
  writeDictionary(w, dictionary);
  if (dictSize === 1) return;

  let runs = 0;
  for (let i = 0; i < count; i++) {
    if (i > 0 && indices[i] === indices[i - 1]) {
      runLengths[runs - 1]++;
    } else {
      runValues[runs] = indices[i];
      runLengths[runs] = 0;
      runs++;
    }
  }
  const plainBits = streamCost(indices, null, count);
  const runBits = 6 + 32 - Math.clz32(runs - 1) + streamCost(runValues, null, runs) + streamCost(runLengths, null, runs);
  if (runBits < plainBits) {
    w.write(RUNS, 1);
    w.writeVarBits(runs - 1);
    writeStream(w, runValues, null, runs);
    writeStream(w, runLengths, null, runs);
  } else {
    w.write(PLAIN, 1);
    writeStream(w, indices, null, count);
  }
}

function writeDictionary(w: BitWriter, dictionary: string[]): void {
  const lengths = new Uint32Array(dictionary.length);
  let utf16 = false;
  for (let i = 0; i < dictionary.length; i++) {
    lengths[i] = dictionary[i].length;
    if (!utf16 && !isWellFormed(dictionary[i])) utf16 = true;
  }
  writeStream(w, lengths, null, dictionary.length);
  const raw = textToBytes(dictionary.join(''), utf16);
  let stored = raw;
  let deflated = false;
  if (raw.length >= DEFLATE_MIN_BYTES) {
    const packed = deflateRawSync(raw);
    if (packed.length < raw.length * 0.9) {
      stored = packed;
      deflated = true;
    }
  }
  w.write(utf16 ? 1 : 0, 1);
  w.write(deflated ? 1 : 0, 1);
  w.writeVarBits(stored.length);
  if (deflated) w.writeVarBits(raw.length);
  w.writeBytes(stored);
}

function readDictionary(r: BitReader, dictSize: number): string[] {
  const lengths = new Uint32Array(dictSize);
  readStream(r, dictSize, lengths, null);
  const utf16 = r.read(1) === 1;
  const deflated = r.read(1) === 1;
  const storedBytes = r.readVarBits();
  const rawBytes = deflated ? r.readVarBits() : storedBytes;
  if (rawBytes > MAX_DICTIONARY_BYTES) throw new CodecError('corrupt chunk: dictionary too large');
  let raw = r.readBytes(storedBytes);
  if (deflated) {
    try {
      raw = inflateRawSync(raw, { maxOutputLength: Math.max(1, rawBytes) });
    } catch (cause) {
      throw new CodecError('corrupt chunk: dictionary does not inflate', { cause });
    }
    if (raw.length !== rawBytes) throw new CodecError('corrupt chunk: dictionary inflates to the wrong size');
  }
  const text = bytesToText(raw, utf16);
  const dictionary = new Array<string>(dictSize);
  let pos = 0;
  for (let i = 0; i < dictSize; i++) {
    const end = pos + lengths[i];
    if (end > text.length) throw new CodecError('corrupt chunk: dictionary shorter than its lengths');
    dictionary[i] = text.slice(pos, end);
    pos = end;
  }
  if (pos !== text.length) throw new CodecError('corrupt chunk: dictionary longer than its lengths');
  return dictionary;
}

export function readStrings(r: BitReader, count: number): string[] {
  const out = new Array<string>(count);
  if (count === 0) return out;
  const dictSize = r.readVarBits() + 1;
  if (dictSize > count) throw new CodecError(`corrupt chunk: ${dictSize} dictionary entries for ${count} values`);
  const dictionary = readDictionary(r, dictSize);
  if (dictSize === 1) return out.fill(dictionary[0]);
  ensure(count);
  if (r.read(1) === PLAIN) {
    readStream(r, count, indices, null);
    for (let i = 0; i < count; i++) {
      const id = indices[i];
      if (id >= dictSize) throw new CodecError('corrupt chunk: string index outside the dictionary');
      out[i] = dictionary[id];
    }
    return out;
  }
  const runs = r.readVarBits() + 1;
  if (runs > count) throw new CodecError(`corrupt chunk: ${runs} runs for ${count} values`);
  readStream(r, runs, runValues, null);
  readStream(r, runs, runLengths, null);
  let pos = 0;
  for (let k = 0; k < runs; k++) {
    const id = runValues[k];
    if (id >= dictSize) throw new CodecError('corrupt chunk: string index outside the dictionary');
    const end = pos + runLengths[k] + 1;
    if (end > count) throw new CodecError('corrupt chunk: string runs overflow the value count');
    out.fill(dictionary[id], pos, end);
    pos = end;
  }
  if (pos !== count) throw new CodecError('corrupt chunk: string runs do not cover the value count');
  return out;
}
