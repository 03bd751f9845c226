// Unsigned integer streams: the entropy stage every column type ends in. Values are cut into blocks
// of 128, and each block picks the cheaper of two codings, by exact bit count:
//  - PFor: a bit width b for every value plus "exceptions" (position + high bits) for the few
//    outliers, so one spike does not widen the whole block;
//  - Rice with parameter k: near-optimal for the geometric-looking residuals of smooth sensor data.
// A stream that is almost all zeros (residuals with one NaN or spike) is instead stored sparse, as
// the positions and values of its non-zero entries, so it does not pay a header per block.
// Values are 64-bit, held as uint32 halves (`lo`, `hi`); `hi` is null for streams known to fit in
// 32 bits, so the common case never touches a second array.
//
// Layout: 1 bit "all zero"; else 1 bit "sparse":
//   sparse  var-bits (non-zero count - 1), stream of position gaps, stream of the non-zero values
//   dense   per block of up to 128 values a 7-bit code, then:
//           0..64  PFor width b: 1 bit exceptions flag [7 bits count - 1, 6 bits high width - 1,
//                  positions (7 bits each), high parts], then every value's low b bits
//           65..96 Rice k = code - 65: per value unary(v >>> k), then its low k bits
import { type BitReader, type BitWriter, shiftRight64, TWO_POW_32, wide } from './bits.js';
import { CodecError } from './errors.js';

export const BLOCK_SIZE = 128;
const POSITION_BITS = 7; // log2(BLOCK_SIZE)
const CODE_BITS = 7;
/** Block codes 0..64 are PFor bit widths; RICE_BASE + k (k = 0..31) is Rice with parameter k. */
const RICE_BASE = 65;
const MAX_RICE_K = 31;

// A block plan, kept in module state to avoid allocating a result object per block.
let planCode = 0;
let planExceptionBits = 0;
const histogram = new Int32Array(65);

/** Chooses the cheapest coding of one block and returns its size in bits. */
function planBlock(lo: Uint32Array, hi: Uint32Array | null, start: number, n: number): number {
  histogram.fill(0);
  let maxBits = 0;
  let sumLo = 0;
  const end = start + n;
  if (hi === null) {
    for (let i = start; i < end; i++) {
      const v = lo[i];
      sumLo += v;
      histogram[32 - Math.clz32(v)]++;
    }
  } else {
    for (let i = start; i < end; i++) {
      const h = hi[i];
      const v = lo[i];
      sumLo += v;
      histogram[h === 0 ? 32 - Math.clz32(v) : 64 - Math.clz32(h)]++;
    }
  }
  for (let b = 64; b > 0; b--) {
    if (histogram[b] !== 0) {
      maxBits = b;
      break;
    }
  }
  // PFor: try every width below the maximum; exceptions cost a position and their high bits.
  let bestCost = CODE_BITS + 1 + n * maxBits;
  planCode = maxBits;
  planExceptionBits = 0;
  let exceptions = 0;
  for (let b = maxBits - 1; b >= 0; b--) {
    exceptions += histogram[b + 1];
    if (exceptions > BLOCK_SIZE / 2) break;
    const cost = CODE_BITS + 1 + n * b + 13 + exceptions * (POSITION_BITS + maxBits - b);
    if (cost < bestCost) {
      bestCost = cost;
      planCode = b;
      planExceptionBits = maxBits - b;
    }
  }
  if (maxBits <= 32 && maxBits > 0) {
    // Rice: the optimum k for a geometric distribution is about log2(mean * ln 2); check k and k + 1.
    const target = (sumLo / n) * Math.LN2;
    const k0 = target < 2 ? 0 : Math.min(MAX_RICE_K, 31 - Math.clz32(Math.floor(target)));
    for (let k = k0; k <= Math.min(k0 + 1, MAX_RICE_K); k++) {
      let cost = CODE_BITS + n * (k + 1);
      for (let i = start; i < end; i++) cost += lo[i] >>> k;
      if (cost < bestCost) {
        bestCost = cost;
        planCode = RICE_BASE + k;
        planExceptionBits = 0;
      }
    }
  }
  return bestCost;
}

function isAllZero(lo: Uint32Array, hi: Uint32Array | null, count: number): boolean {
  for (let i = 0; i < count; i++) if (lo[i] !== 0) return false;
  if (hi !== null) for (let i = 0; i < count; i++) if (hi[i] !== 0) return false;
  return true;
}

function denseCost(lo: Uint32Array, hi: Uint32Array | null, count: number): number {
  let bits = 0;
  for (let start = 0; start < count; start += BLOCK_SIZE) bits += planBlock(lo, hi, start, Math.min(BLOCK_SIZE, count - start));
  return bits;
}

/** At most one value in SPARSE_RATIO non-zero: worth pricing the sparse form. */
const SPARSE_RATIO = 8;

interface Sparse {
  count: number;
  gaps: Uint32Array;
  lo: Uint32Array;
  hi: Uint32Array | null;
}

/** The non-zero entries, or null when there are too many for the sparse form to pay. */
function sparseOf(lo: Uint32Array, hi: Uint32Array | null, count: number): Sparse | null {
  let nonZero = 0;
  for (let i = 0; i < count; i++) if (lo[i] !== 0 || (hi !== null && hi[i] !== 0)) nonZero++;
  if (nonZero * SPARSE_RATIO > count) return null;
  // Fresh arrays: the sub-streams below may recurse into this function.
  const sparse: Sparse = { count: nonZero, gaps: new Uint32Array(nonZero), lo: new Uint32Array(nonZero), hi: hi === null ? null : new Uint32Array(nonZero) };
  let k = 0;
  let next = 0;
  for (let i = 0; i < count; i++) {
    if (lo[i] === 0 && (hi === null || hi[i] === 0)) continue;
    sparse.gaps[k] = i - next;
    sparse.lo[k] = lo[i];
    if (sparse.hi !== null && hi !== null) sparse.hi[k] = hi[i];
    next = i + 1;
    k++;
  }
  return sparse;
}

function sparseCost(sparse: Sparse): number {
  return 6 + (32 - Math.clz32(sparse.count - 1)) + streamCost(sparse.gaps, null, sparse.count) + streamCost(sparse.lo, sparse.hi, sparse.count);
}

/** Exact size in bits that writeStream would produce. */
export function streamCost(lo: Uint32Array, hi: Uint32Array | null, count: number): number {
  if (isAllZero(lo, hi, count)) return 1;
  const dense = denseCost(lo, hi, count);
  const sparse = sparseOf(lo, hi, count);
  return 2 + (sparse === null ? dense : Math.min(dense, sparseCost(sparse)));
}

/** Writes `count` values; `hi` null means every value is below 2^32. */
export function writeStream(w: BitWriter, lo: Uint32Array, hi: Uint32Array | null, count: number): void {
  if (isAllZero(lo, hi, count)) {
    w.write(1, 1);
    return;
  }
  w.write(0, 1);
  const sparse = sparseOf(lo, hi, count);
  if (sparse !== null && sparseCost(sparse) < denseCost(lo, hi, count)) {
    w.write(1, 1);
    w.writeVarBits(sparse.count - 1);
    writeStream(w, sparse.gaps, null, sparse.count);
    writeStream(w, sparse.lo, sparse.hi, sparse.count);
    return;
  }
  w.write(0, 1);
  for (let start = 0; start < count; start += BLOCK_SIZE) {
    const n = Math.min(BLOCK_SIZE, count - start);
    planBlock(lo, hi, start, n);
    const code = planCode;
    w.write(code, CODE_BITS);
    if (code >= RICE_BASE) w.writeRice(lo, start, n, code - RICE_BASE);
    else writePFor(w, lo, hi, start, n, code, planExceptionBits);
  }
}

function writePFor(w: BitWriter, lo: Uint32Array, hi: Uint32Array | null, start: number, n: number, b: number, exceptionBits: number): void {
  const end = start + n;
  if (exceptionBits === 0) {
    w.write(0, 1);
  } else {
    w.write(1, 1);
    // Exceptions are the values wider than b; the plan guarantees there are 1..64 of them.
    let exceptions = 0;
    for (let i = start; i < end; i++) if (widthAt(lo, hi, i) > b) exceptions++;
    w.write(exceptions - 1, POSITION_BITS);
    w.write(exceptionBits - 1, 6);
    for (let i = start; i < end; i++) if (widthAt(lo, hi, i) > b) w.write(i - start, POSITION_BITS);
    for (let i = start; i < end; i++) {
      if (widthAt(lo, hi, i) <= b) continue;
      shiftRight64(lo[i], hi === null ? 0 : hi[i], b);
      w.writeWide(wide.lo, wide.hi, exceptionBits);
    }
  }
  if (b === 0) return;
  if (b <= 32) {
    w.writePacked(lo, start, n, b);
  } else {
    const mask = b === 64 ? -1 : (1 << (b - 32)) - 1;
    for (let i = start; i < end; i++) {
      w.write(lo[i], 32);
      w.write(hi === null ? 0 : hi[i] & mask, b - 32);
    }
  }
}

function widthAt(lo: Uint32Array, hi: Uint32Array | null, i: number): number {
  const h = hi === null ? 0 : hi[i];
  return h === 0 ? 32 - Math.clz32(lo[i]) : 64 - Math.clz32(h);
}

const exceptionPositions = new Int32Array(BLOCK_SIZE);
const stashLo = new Uint32Array(BLOCK_SIZE);
const stashHi = new Uint32Array(BLOCK_SIZE);

/** Reads `count` values written by writeStream into `lo` (and `hi`, which it fully overwrites). */
export function readStream(r: BitReader, count: number, lo: Uint32Array, hi: Uint32Array | null): void {
  if (r.read(1) === 1) {
    lo.fill(0, 0, count);
    if (hi !== null) hi.fill(0, 0, count);
    return;
  }
  if (r.read(1) === 1) {
    readSparse(r, count, lo, hi);
    return;
  }
  const maxWidth = hi === null ? 32 : 64;
  for (let start = 0; start < count; start += BLOCK_SIZE) {
    const n = Math.min(BLOCK_SIZE, count - start);
    const end = start + n;
    const code = r.read(CODE_BITS);
    if (code >= RICE_BASE) {
      const k = code - RICE_BASE;
      if (k > MAX_RICE_K) throw new CodecError(`corrupt chunk: block code ${code}`);
      // Rice is only chosen for 32-bit blocks, so the quotient stays below 2^(32-k).
      const maxQuotient = 2 ** (32 - k) - 1;
      r.readRice(lo, start, n, k, maxQuotient);
      if (hi !== null) hi.fill(0, start, end);
      continue;
    }
    const b = code;
    if (b > maxWidth) throw new CodecError(`corrupt chunk: bit width ${b} in a ${maxWidth}-bit stream`);
    let exceptions = 0;
    let exceptionBits = 0;
    if (r.read(1) === 1) {
      exceptions = r.read(POSITION_BITS) + 1;
      exceptionBits = r.read(6) + 1;
      if (b + exceptionBits > maxWidth) throw new CodecError('corrupt chunk: exception wider than the stream');
      for (let e = 0; e < exceptions; e++) {
        const pos = r.read(POSITION_BITS);
        if (pos >= n) throw new CodecError('corrupt chunk: exception position outside its block');
        exceptionPositions[e] = pos;
      }
    }
    // Exception high parts precede the packed low bits; they are OR-ed in afterwards.
    for (let e = 0; e < exceptions; e++) {
      stashLo[e] = r.read(Math.min(exceptionBits, 32));
      stashHi[e] = exceptionBits > 32 ? r.read(exceptionBits - 32) : 0;
    }
    if (b <= 32) {
      if (b === 0) lo.fill(0, start, end);
      else r.readPacked(lo, start, n, b);
      if (hi !== null) hi.fill(0, start, end);
    } else {
      for (let i = start; i < end; i++) {
        lo[i] = r.read(32);
        (hi as Uint32Array)[i] = r.read(b - 32);
      }
    }
    for (let e = 0; e < exceptions; e++) {
      const i = start + exceptionPositions[e];
      const sl = stashLo[e];
      const sh = stashHi[e];
      // value |= (sh:sl) << b
      if (b === 0) {
        lo[i] |= sl;
        if (hi !== null) hi[i] |= sh;
      } else if (b < 32) {
        lo[i] |= sl << b;
        if (hi !== null) hi[i] |= (sh << b) | (sl >>> (32 - b));
      } else if (hi !== null) {
        hi[i] |= sl << (b - 32);
      }
    }
  }
}

function readSparse(r: BitReader, count: number, lo: Uint32Array, hi: Uint32Array | null): void {
  const nonZero = r.readVarBits() + 1;
  // Strictly fewer entries than the stream keeps the recursion finite on corrupt input.
  if (nonZero >= count) throw new CodecError('corrupt chunk: sparse stream denser than its length');
  const gaps = new Uint32Array(nonZero);
  const valuesLo = new Uint32Array(nonZero);
  const valuesHi = hi === null ? null : new Uint32Array(nonZero);
  readStream(r, nonZero, gaps, null);
  readStream(r, nonZero, valuesLo, valuesHi);
  lo.fill(0, 0, count);
  if (hi !== null) hi.fill(0, 0, count);
  let pos = 0;
  for (let k = 0; k < nonZero; k++) {
    pos += gaps[k];
    if (pos >= count) throw new CodecError('corrupt chunk: sparse position past the stream');
    lo[pos] = valuesLo[k];
    if (hi !== null && valuesHi !== null) hi[pos] = valuesHi[k];
    pos++;
  }
}

// Number-array front end: non-negative integers below 2^53 held in a Float64Array.
let scratchLo = new Uint32Array(1024);
let scratchHi = new Uint32Array(1024);

function ensureScratch(count: number): void {
  if (scratchLo.length >= count) return;
  let size = scratchLo.length;
  while (size < count) size *= 2;
  scratchLo = new Uint32Array(size);
  scratchHi = new Uint32Array(size);
}

/** Splits numbers into scratch halves; returns whether any value needs the high half. */
function split(values: Float64Array, offset: number, count: number): boolean {
  ensureScratch(count);
  let wide = false;
  for (let i = 0; i < count; i++) {
    const v = values[offset + i];
    const l = v >>> 0;
    scratchLo[i] = l;
    if (v >= TWO_POW_32) {
      scratchHi[i] = (v - l) / TWO_POW_32;
      wide = true;
    } else {
      scratchHi[i] = 0;
    }
  }
  return wide;
}

export function numStreamCost(values: Float64Array, offset: number, count: number): number {
  const wide = split(values, offset, count);
  return streamCost(scratchLo, wide ? scratchHi : null, count);
}

/** Writes values[offset .. offset+count) (non-negative integers below 2^53). */
export function writeNumStream(w: BitWriter, values: Float64Array, offset: number, count: number): void {
  const wide = split(values, offset, count);
  writeStream(w, scratchLo, wide ? scratchHi : null, count);
}

/** Reads `count` values into out[offset ..). Corrupt input yields wrong numbers or a CodecError. */
export function readNumStream(r: BitReader, count: number, out: Float64Array, offset: number): void {
  ensureScratch(count);
  readStream(r, count, scratchLo, scratchHi);
  for (let i = 0; i < count; i++) out[offset + i] = scratchHi[i] * TWO_POW_32 + scratchLo[i];
}
