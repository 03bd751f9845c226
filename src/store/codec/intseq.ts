// Signed integer sequences held as numbers: timestamps, scaled decimals, integer columns in the
// safe range, float32 bit patterns. Each sequence picks, by exact size, one transform:
//   FOR   x - min          (noisy values around a level)
//   DELTA x[i] - x[i-1]    (random walks: most sensors)
//   DOD   delta of deltas  (regular timestamps, counters with a steady rate)
// then divides by the greatest common divisor of what it codes (timestamps in whole ms or s held in
// µs; values quantised in steps such as 100 or 0.2856), zigzags signed values, and hands the
// result to the block stream. |x| < 2^50 keeps every intermediate exact in a double.
import { type BitReader, type BitWriter, bitLengthNum, TWO_POW_32 } from './bits.js';
import { numStreamCost, readNumStream, writeNumStream } from './blocks.js';
import { CodecError } from './errors.js';

export const INT_SEQ_LIMIT = 2 ** 50;

const FOR = 0;
const DELTA = 1;
const DOD = 2;

/** Maps signed to unsigned (0, -1, 1, -2 → 0, 1, 2, 3); `+ 0` turns -0 into +0. */
export function zigzag(x: number): number {
  return x >= 0 ? 2 * x + 0 : -2 * x - 1;
}

export function unzigzag(z: number): number {
  if (z < TWO_POW_32) return (z >>> 1) ^ -(z & 1);
  return z % 2 === 0 ? z / 2 : -(z + 1) / 2;
}

function gcd(a: number, b: number): number {
  while (b !== 0) {
    const t = a % b;
    a = b;
    b = t;
  }
  return a;
}

/** GCD of |values[0..count)|, 1 when all are zero; stops early once it reaches 1. */
function gcdOf(values: Float64Array, count: number): number {
  let g = 0;
  for (let i = 0; i < count && g !== 1; i++) {
    const v = values[i];
    if (v !== 0) g = gcd(v < 0 ? -v : v, g);
  }
  return g === 0 ? 1 : g;
}

let forBuf = new Float64Array(1024);
let deltaBuf = new Float64Array(1024);
let dodBuf = new Float64Array(1024);

function ensure(count: number): void {
  if (forBuf.length >= count) return;
  let size = forBuf.length;
  while (size < count) size *= 2;
  forBuf = new Float64Array(size);
  deltaBuf = new Float64Array(size);
  dodBuf = new Float64Array(size);
}

/** Exact stream size of a transform that survived the proxy cut; 0 when it is the only one left. */
function price(proxy: number, cutoff: number, survivors: number, values: Float64Array, count: number): number {
  if (proxy > cutoff) return Infinity;
  return survivors === 1 ? 0 : numStreamCost(values, 0, count);
}

/** Writes xs[0..count); every value must be an integer with |x| < INT_SEQ_LIMIT. */
export function writeIntSeq(w: BitWriter, xs: Float64Array, count: number): void {
  if (count === 0) return;
  const x0 = xs[0];
  if (count === 1) {
    w.writeSignedVarBits(x0);
    return;
  }
  ensure(count);
  let min = x0;
  let prevDelta = 0;
  for (let i = 1; i < count; i++) {
    const x = xs[i];
    if (x < min) min = x;
    const d = x - xs[i - 1];
    deltaBuf[i - 1] = d;
    if (i >= 2) dodBuf[i - 2] = d - prevDelta;
    prevDelta = d;
  }
  for (let i = 0; i < count; i++) forBuf[i] = xs[i] - min;
  const d1 = deltaBuf[0];

  const gFor = gcdOf(forBuf, count);
  const gDelta = gcdOf(deltaBuf, count - 1);
  const gDod = count >= 3 ? gcdOf(dodBuf, count - 2) : 1;
  // A cheap proxy (total significant bits) rules out clear losers; the rest are priced exactly.
  let proxyFor = 0;
  let proxyDelta = 0;
  let proxyDod = count >= 3 ? 0 : Infinity;
  // Without a common divisor (the usual case for values) the division is skipped.
  if (gFor === 1) for (let i = 0; i < count; i++) proxyFor += bitLengthNum(forBuf[i]);
  else for (let i = 0; i < count; i++) proxyFor += bitLengthNum((forBuf[i] /= gFor));
  if (gDelta === 1) for (let i = 0; i < count - 1; i++) proxyDelta += bitLengthNum((deltaBuf[i] = zigzag(deltaBuf[i])));
  else for (let i = 0; i < count - 1; i++) proxyDelta += bitLengthNum((deltaBuf[i] = zigzag(deltaBuf[i] / gDelta)));
  if (gDod === 1) for (let i = 0; i < count - 2; i++) proxyDod += bitLengthNum((dodBuf[i] = zigzag(dodBuf[i])));
  else for (let i = 0; i < count - 2; i++) proxyDod += bitLengthNum((dodBuf[i] = zigzag(dodBuf[i] / gDod)));
  const cutoff = Math.min(proxyFor, proxyDelta, proxyDod) * 1.15 + 16;

  const survivors = (proxyFor <= cutoff ? 1 : 0) + (proxyDelta <= cutoff ? 1 : 0) + (proxyDod <= cutoff ? 1 : 0);
  // Header sizes differ by a few bits only; the stream sizes decide.
  const costFor = price(proxyFor, cutoff, survivors, forBuf, count);
  const costDelta = price(proxyDelta, cutoff, survivors, deltaBuf, count - 1);
  const costDod = price(proxyDod, cutoff, survivors, dodBuf, count - 2);
  if (costDod < costDelta && costDod < costFor) {
    w.write(DOD, 2);
    w.writeSignedVarBits(x0);
    w.writeSignedVarBits(d1);
    w.writeVarBits(gDod - 1);
    writeNumStream(w, dodBuf, 0, count - 2);
  } else if (costDelta < costFor) {
    w.write(DELTA, 2);
    w.writeSignedVarBits(x0);
    w.writeVarBits(gDelta - 1);
    writeNumStream(w, deltaBuf, 0, count - 1);
  } else {
    w.write(FOR, 2);
    w.writeSignedVarBits(min);
    w.writeVarBits(gFor - 1);
    writeNumStream(w, forBuf, 0, count);
  }
}

/** Reads `count` values into out[0..count). Corrupt input yields wrong numbers or a CodecError. */
export function readIntSeq(r: BitReader, count: number, out: Float64Array): void {
  if (count === 0) return;
  if (count === 1) {
    out[0] = r.readSignedVarBits();
    return;
  }
  const transform = r.read(2);
  if (transform === FOR) {
    const min = r.readSignedVarBits();
    const g = r.readVarBits() + 1;
    readNumStream(r, count, out, 0);
    for (let i = 0; i < count; i++) out[i] = min + out[i] * g;
  } else if (transform === DELTA) {
    const x0 = r.readSignedVarBits();
    const g = r.readVarBits() + 1;
    readNumStream(r, count - 1, out, 1);
    out[0] = x0;
    for (let i = 1; i < count; i++) out[i] = out[i - 1] + unzigzag(out[i]) * g;
  } else if (transform === DOD) {
    const x0 = r.readSignedVarBits();
    let d = r.readSignedVarBits();
    const g = r.readVarBits() + 1;
    readNumStream(r, count - 2, out, 2);
    out[0] = x0;
    out[1] = x0 + d;
    for (let i = 2; i < count; i++) {
      d += unzigzag(out[i]) * g;
      out[i] = out[i - 1] + d;
    }
  } else {
    throw new CodecError(`corrupt chunk: unknown integer transform ${transform}`);
  }
}

/**
 * A cheap size estimate for choosing between float schemes on a sample: bits of the zigzagged
 * deltas plus one per value (roughly what Rice coding adds).
 */
export function estimateDeltaBits(xs: Float64Array, count: number): number {
  let bits = 0;
  let prev = count > 0 ? xs[0] : 0;
  for (let i = 1; i < count; i++) {
    const d = xs[i] - prev;
    prev = xs[i];
    const z = d >= 0 ? 2 * d : -2 * d - 1;
    bits += (z < TWO_POW_32 ? 32 - Math.clz32(z) : 64 - Math.clz32(Math.floor(z / TWO_POW_32))) + 1;
  }
  return bits;
}
