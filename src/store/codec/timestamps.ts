// Timestamps: integer microseconds as offsets from the chunk's first timestamp, through the integer
// sequence coder. Its delta-of-delta transform with a common divisor makes a regular series (1 s,
// 5 min, 1 h, whole-ms jitter) cost a few bits per chunk; a gap costs two exceptions in one block.
// Anything that is not a safe integer, or a span of 2^50 µs (35 years) or more, falls back to raw
// float64 so that no input is ever rejected or altered.
import type { BitReader, BitWriter } from './bits.js';
import { INT_SEQ_LIMIT, readIntSeq, writeIntSeq } from './intseq.js';

let offsets = new Float64Array(1024);

/** Whether the compact coding applies: safe integers (not -0) spanning less than 2^50 µs. */
export function isCompactTimes(timesUs: Float64Array): boolean {
  if (timesUs.length === 0) return true;
  let min = timesUs[0];
  let max = min;
  for (let i = 0; i < timesUs.length; i++) {
    const t = timesUs[i];
    if (!Number.isSafeInteger(t) || (t === 0 && 1 / t < 0)) return false;
    if (t < min) min = t;
    else if (t > max) max = t;
  }
  return max - min < INT_SEQ_LIMIT;
}

export function writeCompactTimes(w: BitWriter, timesUs: Float64Array): void {
  const rows = timesUs.length;
  if (offsets.length < rows) offsets = new Float64Array(Math.max(rows, offsets.length * 2));
  const firstUs = rows > 0 ? timesUs[0] : 0;
  for (let i = 0; i < rows; i++) offsets[i] = timesUs[i] - firstUs;
  writeIntSeq(w, offsets, rows);
}

export function readCompactTimes(r: BitReader, rows: number, firstUs: number): Float64Array {
  const timesUs = new Float64Array(rows);
  readIntSeq(r, rows, timesUs);
  for (let i = 0; i < rows; i++) timesUs[i] += firstUs;
  return timesUs;
}

export function writeRawTimes(w: BitWriter, timesUs: Float64Array): void {
  const bits = new Uint32Array(timesUs.buffer, timesUs.byteOffset, timesUs.length * 2);
  for (let i = 0; i < bits.length; i++) w.write(bits[i], 32);
}

export function readRawTimes(r: BitReader, rows: number): Float64Array {
  const timesUs = new Float64Array(rows);
  const bits = new Uint32Array(timesUs.buffer);
  for (let i = 0; i < bits.length; i++) bits[i] = r.read(32);
  return timesUs;
}
