// Bitmaps: boolean columns and per-row presence maps. Sensor booleans (pump on, alarm) and presence
// maps (a field missing now and then) come in long runs, so run lengths usually win; a flickering
// bitmap falls back to one bit per row. The cheaper of the two is kept, by exact size.
import { type BitReader, type BitWriter, bitLengthNum } from './bits.js';
import { readStream, streamCost, writeStream } from './blocks.js';
import { CodecError } from './errors.js';

const RAW = 0;
const RUNS = 1;

let runLengths = new Uint32Array(1024);

/** Writes bits[0..count) (any non-zero byte is a one). */
export function writeBitmap(w: BitWriter, bits: Uint8Array, count: number): void {
  if (count === 0) return;
  if (runLengths.length < count) runLengths = new Uint32Array(Math.max(count, runLengths.length * 2));
  let runs = 0;
  let current = bits[0] !== 0;
  let runStart = 0;
  for (let i = 1; i < count; i++) {
    const bit = bits[i] !== 0;
    if (bit !== current) {
      runLengths[runs++] = i - runStart - 1;
      runStart = i;
      current = bit;
    }
  }
  runLengths[runs++] = count - runStart - 1;

  const runBits = 1 + 6 + bitLengthNum(runs - 1) + streamCost(runLengths, null, runs);
  if (runBits < count) {
    w.write(RUNS, 1);
    w.write(bits[0] !== 0 ? 1 : 0, 1);
    w.writeVarBits(runs - 1);
    writeStream(w, runLengths, null, runs);
    return;
  }
  w.write(RAW, 1);
  for (let i = 0; i < count; i++) w.write(bits[i] !== 0 ? 1 : 0, 1);
}

export function readBitmap(r: BitReader, count: number): Uint8Array {
  const out = new Uint8Array(count);
  if (count === 0) return out;
  if (r.read(1) === RAW) {
    for (let i = 0; i < count; i++) out[i] = r.read(1);
    return out;
  }
  let bit = r.read(1);
  const runs = r.readVarBits() + 1;
  if (runs > count) throw new CodecError(`corrupt chunk: ${runs} runs in a bitmap of ${count}`);
  if (runLengths.length < runs) runLengths = new Uint32Array(Math.max(runs, runLengths.length * 2));
  readStream(r, runs, runLengths, null);
  let pos = 0;
  for (let k = 0; k < runs; k++) {
    const end = pos + runLengths[k] + 1;
    if (end > count) throw new CodecError('corrupt chunk: bitmap runs overflow the row count');
    if (bit === 1) out.fill(1, pos, end);
    pos = end;
    bit ^= 1;
  }
  if (pos !== count) throw new CodecError('corrupt chunk: bitmap runs do not cover the row count');
  return out;
}
