// Float columns. Sensor floats are almost always short decimals ("21.3", "1023.5"), sometimes
// float32 registers, rarely arbitrary doubles, so each column picks one scheme by estimating the
// size of every candidate on a sample (up to 256 values) and then encodes only the winner:
//
//   DECIMAL      v ≈ n / 10^d: the integers n go through the integer sequence coder (delta, GCD,
//                Rice/PFor), and a residual stream holds bits(v) - bits(n / 10^d) as a wrapping
//                64-bit difference — zero for true decimals (one bit for the whole column), a few
//                bits for "74.93588199999998"-style noise, and an exact escape for NaN payloads,
//                ±Infinity, -0, huge values and interpolated values like -0.533333333333333.
//   DECIMAL_F32  the same with v ≈ fround(n / 10^d) and 32-bit residuals, for float32 readings of
//                decimal quantities (a register holding 21.3f); needs every value float32-exact.
//   DECIMAL_MUL  the same with v ≈ n * 10^-d, for values scaled as `raw * 0.1`, which is not
//                always the double nearest raw / 10 (213 * 0.1 is, 3 * 0.1 is not); tried only when
//                DECIMAL leaves residuals.
//   PATTERN32    float32-exact values that are not decimal: the bit patterns mapped to ordered
//                int32 and coded as integers (≤ 32 bits per value plus block headers).
//   PATTERN64    ordered 64-bit patterns, wrapping deltas, zigzag, block stream.
//   GORILLA      XOR with the previous value, leading/trailing-zero windows (Pelkonen et al., 2015).
//   DICTIONARY   few distinct values (quantised ADC readings, set points, states): the sorted
//                distinct values through the schemes above, then each value's index in that order
//                as an integer sequence. Tried only when the sample shows many repeats, and kept
//                only if it is smaller when both are encoded in full.
//
// Every scheme is lossless by construction: decoding rebuilds the exact 64-bit pattern, including
// NaN payloads (bits are read from and written to typed-array views, never through a JS number
// when a NaN could be involved).
import { type BitReader, BitWriter, ctz32, shiftLeft64, shiftRight64, unzigzag64, wide, zigzag64 } from './bits.js';
import { readStream, writeStream } from './blocks.js';
import { CodecError } from './errors.js';
import { estimateDeltaBits, INT_SEQ_LIMIT, readIntSeq, writeIntSeq } from './intseq.js';

const DECIMAL = 0;
const DECIMAL_F32 = 1;
const PATTERN32 = 2;
const PATTERN64 = 3;
const GORILLA = 4;
const DICTIONARY = 5;
const DECIMAL_MUL = 6;
const SCHEME_BITS = 3;

export const MAX_DECIMALS = 15;
const DECIMALS_BITS = 4;
/** 10^d, exact in a double for d <= 22, so `n / POW10[d]` is the correctly rounded decimal. */
const POW10 = Float64Array.from({ length: MAX_DECIMALS + 1 }, (_, d) => 10 ** d);
/** The doubles nearest 10^-d: what `raw * 0.1` style scaling multiplies by. */
const INV_POW10 = Float64Array.from({ length: MAX_DECIMALS + 1 }, (_, d) => 1 / 10 ** d);

const SAMPLE_WINDOW = 64;
const SAMPLE_WINDOWS = 4;
const SCAN_LENGTH = 16;
const decimalsHistogram = new Int32Array(MAX_DECIMALS + 1);

// Scratch views for bit patterns of single values.
const f64 = new Float64Array(2);
const f64Bits = new Uint32Array(f64.buffer);
const f32 = new Float32Array(2);
const f32Bits = new Uint32Array(f32.buffer);

let scaled = new Float64Array(1024);
let residualLo = new Uint32Array(1024);
let residualHi = new Uint32Array(1024);

function ensure(count: number): void {
  if (scaled.length >= count) return;
  let size = scaled.length;
  while (size < count) size *= 2;
  scaled = new Float64Array(size);
  residualLo = new Uint32Array(size);
  residualHi = new Uint32Array(size);
}

// The input's bit patterns, read through a copy: creating a typed-array view per column costs more
// than copying a small column, and TypedArray#set copies bits exactly (NaN payloads included).
let patterns = new Float64Array(1024);
let patternWords = new Uint32Array(patterns.buffer);

function bitsOf(values: Float64Array): Uint32Array {
  if (patterns.length < values.length) {
    patterns = new Float64Array(Math.max(values.length, patterns.length * 2));
    patternWords = new Uint32Array(patterns.buffer);
  }
  patterns.set(values);
  return patternWords;
}

// Trial encodings for the dictionary comparison; encoding is synchronous, so they are never shared.
const trialPlain = new BitWriter();
const trialDictionary = new BitWriter();
let dictionaryIndices = new Float64Array(1024);

/** Writes `values` (all of them; the caller passes exactly the present values). */
export function writeFloats(w: BitWriter, values: Float64Array, allowDictionary = true): void {
  const count = values.length;
  if (count === 0) return;
  // Valid until the next writeFloats call, which only the dictionary scheme makes, after its last use.
  const bits = bitsOf(values);
  let float32Exact = true;
  for (let i = 0; i < count; i++) {
    const v = values[i];
    if (Math.fround(v) !== v) {
      float32Exact = false;
      break;
    }
  }

  // Sample windows of consecutive values, so delta-based estimates see real neighbours.
  const windowLength = count >= SAMPLE_WINDOW * SAMPLE_WINDOWS ? SAMPLE_WINDOW : count;
  const windows = windowLength === count ? 1 : SAMPLE_WINDOWS;
  const starts: number[] = [];
  for (let k = 0; k < windows; k++) starts.push(windows === 1 ? 0 : Math.floor((k * (count - windowLength)) / (windows - 1)));

  let bestScheme = GORILLA;
  let bestDecimals = 0;
  let bestBits = 0;
  for (const s of starts) bestBits += gorillaBits(bits, s, windowLength);
  let patternBits = 0;
  for (const s of starts) patternBits += float32Exact ? pattern32Bits(values, s, windowLength) : pattern64Bits(bits, s, windowLength);
  if (patternBits < bestBits) {
    bestBits = patternBits;
    bestScheme = float32Exact ? PATTERN32 : PATTERN64;
  }

  let maxDecimals = 0;
  decimalsHistogram.fill(0);
  for (const s of starts) {
    for (let i = s; i < s + windowLength; i++) {
      const d = decimalsOf(values[i], float32Exact);
      if (d > maxDecimals) maxDecimals = d;
      if (d >= 0) decimalsHistogram[d]++;
    }
  }
  let commonDecimals = 0;
  for (let d = 1; d <= MAX_DECIMALS; d++) if (decimalsHistogram[d] > decimalsHistogram[commonDecimals]) commonDecimals = d;
  // Price every digit count on the whole sample, except for noisy decimals ("74.93588199999998")
  // where up to 16 counts are in play: scan those on the first SCAN_LENGTH values of each window
  // and price only the scan's winner and the widest count on the whole sample.
  const scanLength = maxDecimals > 6 ? Math.min(windowLength, SCAN_LENGTH) : windowLength;
  const decimalSchemes = float32Exact ? [DECIMAL, DECIMAL_F32] : [DECIMAL];
  let divisionDecimals = -1;
  for (const scheme of decimalSchemes) {
    let scanBest = Infinity;
    let scanDecimals = 0;
    let scanExact = false;
    for (let d = 0; d <= maxDecimals; d++) {
      let estimate = 0;
      let exact = true;
      for (const s of starts) {
        estimate += decimalBits(values, bits, s, scanLength, d, scheme);
        exact &&= lastResidualsZero;
      }
      if (estimate < scanBest) {
        scanBest = estimate;
        scanDecimals = d;
        scanExact = exact;
      }
      // More digits only make the integers wider once the sample is exact.
      if (exact) break;
    }
    // The scan may be misled by the few values it sees; the digits most sampled values need and
    // the most any needs are the other candidates.
    const candidates = scanLength === windowLength ? [scanDecimals] : [...new Set([scanDecimals, commonDecimals, maxDecimals])];
    for (const d of candidates) {
      let estimate = scanBest;
      if (scanLength < windowLength) {
        estimate = 0;
        for (const s of starts) estimate += decimalBits(values, bits, s, windowLength, d, scheme);
      }
      if (estimate < bestBits) {
        bestBits = estimate;
        bestScheme = scheme;
        bestDecimals = d;
      }
    }
    if (scheme === DECIMAL && !scanExact) divisionDecimals = scanDecimals;
  }
  // Values scaled by multiplication share the digit count of the division form; price just that.
  if (divisionDecimals >= 0) {
    let estimate = 0;
    for (const s of starts) estimate += decimalBits(values, bits, s, windowLength, divisionDecimals, DECIMAL_MUL);
    if (estimate < bestBits) {
      bestBits = estimate;
      bestScheme = DECIMAL_MUL;
      bestDecimals = divisionDecimals;
    }
  }

  if (allowDictionary && dictionaryBits(values, starts, windowLength) < bestBits * 1.3) {
    const dictionary = distinctSorted(values);
    if (dictionary !== null) {
      trialPlain.reset();
      writeScheme(trialPlain, values, bits, bestScheme, bestDecimals);
      trialDictionary.reset();
      writeDictionary(trialDictionary, values, dictionary);
      w.appendBits(trialDictionary.bitCount < trialPlain.bitCount ? trialDictionary : trialPlain);
      return;
    }
  }
  writeScheme(w, values, bits, bestScheme, bestDecimals);
}

function writeScheme(w: BitWriter, values: Float64Array, bits: Uint32Array, scheme: number, decimals: number): void {
  const count = values.length;
  w.write(scheme, SCHEME_BITS);
  switch (scheme) {
    case DECIMAL:
    case DECIMAL_F32:
    case DECIMAL_MUL:
      w.write(decimals, DECIMALS_BITS);
      writeDecimal(w, values, bits, decimals, scheme);
      break;
    case PATTERN32:
      writePattern32(w, values);
      break;
    case PATTERN64:
      writePattern64(w, bits, count);
      break;
    default:
      writeGorilla(w, bits, count);
  }
}

export function readFloats(r: BitReader, count: number, allowDictionary = true): Float64Array {
  const out = new Float64Array(count);
  if (count === 0) return out;
  const scheme = r.read(SCHEME_BITS);
  switch (scheme) {
    case DECIMAL:
    case DECIMAL_F32:
    case DECIMAL_MUL:
      readDecimal(r, out, r.read(DECIMALS_BITS), scheme);
      break;
    case PATTERN32:
      readPattern32(r, out);
      break;
    case PATTERN64:
      readPattern64(r, new Uint32Array(out.buffer), count);
      break;
    case GORILLA:
      readGorilla(r, new Uint32Array(out.buffer), count);
      break;
    case DICTIONARY:
      // A dictionary is never itself dictionary-coded, which also bounds recursion on corrupt input.
      if (!allowDictionary) throw new CodecError('corrupt chunk: nested float dictionary');
      readDictionary(r, out);
      break;
    default:
      throw new CodecError(`corrupt chunk: unknown float scheme ${scheme}`);
  }
  return out;
}

/**
 * The fewest decimal digits that represent v exactly (in float32 terms if asked); MAX_DECIMALS for
 * finite values that are not short decimals, -1 for values no digit count helps (NaN, ±Infinity,
 * huge), so a stray NaN does not widen the search.
 */
function decimalsOf(v: number, float32: boolean): number {
  if (!(v < INT_SEQ_LIMIT && v > -INT_SEQ_LIMIT)) return -1;
  for (let d = 0; d <= MAX_DECIMALS; d++) {
    const p = POW10[d];
    const n = Math.round(v * p);
    if (!(n < INT_SEQ_LIMIT && n > -INT_SEQ_LIMIT)) return MAX_DECIMALS;
    if (n / p === v || (float32 && Math.fround(n / p) === v)) return d;
  }
  return MAX_DECIMALS;
}

// --- DECIMAL / DECIMAL_F32 / DECIMAL_MUL -------------------------------------------------------

/** What the decoder rebuilds from n: the defining formula of each decimal scheme. */
function approxOf(n: number, d: number, scheme: number): number {
  if (scheme === DECIMAL) return n / POW10[d];
  if (scheme === DECIMAL_F32) return Math.fround(n / POW10[d]);
  return n * INV_POW10[d];
}

let lastResidualsZero = true;

/** Estimated bits for values[start, start+length) at d digits; sets lastResidualsZero. */
function decimalBits(values: Float64Array, bits: Uint32Array, start: number, length: number, d: number, scheme: number): number {
  ensure(length);
  const p = POW10[d];
  let prevN = 0;
  let residualBits = 0;
  let residualsZero = true;
  for (let i = 0; i < length; i++) {
    const v = values[start + i];
    let n = Math.round(v * p) + 0;
    if (!(n < INT_SEQ_LIMIT && n > -INT_SEQ_LIMIT)) n = prevN;
    prevN = n;
    scaled[i] = n;
    if (residual(v, bits, start + i, n, d, scheme)) {
      residualsZero = false;
      residualBits += (wide.hi === 0 ? 32 - Math.clz32(wide.lo) : 64 - Math.clz32(wide.hi)) + 1;
    } else {
      residualBits += 1;
    }
  }
  lastResidualsZero = residualsZero;
  return estimateDeltaBits(scaled, length) + (residualsZero ? 1 : residualBits);
}

/**
 * Whether v differs (bitwise) from what n decodes to; if so the zigzagged residual is in `wide`
 * (DECIMAL_F32 residuals are differences of float32 patterns, in `wide.lo` only).
 */
function residual(v: number, bits: Uint32Array, index: number, n: number, d: number, scheme: number): boolean {
  const approx = approxOf(n, d, scheme);
  if (approx === v && (v !== 0 || 1 / v === 1 / approx)) return false;
  if (scheme === DECIMAL_F32) {
    f32[0] = v;
    f32[1] = approx;
    const diff = (f32Bits[0] - f32Bits[1]) | 0;
    wide.lo = ((diff << 1) ^ (diff >> 31)) >>> 0;
    wide.hi = 0;
    return true;
  }
  f64[0] = approx;
  const vLo = bits[2 * index];
  const vHi = bits[2 * index + 1];
  const aLo = f64Bits[0];
  const aHi = f64Bits[1];
  const lo = (vLo - aLo) >>> 0;
  const hi = (vHi - aHi - (vLo < aLo ? 1 : 0)) >>> 0;
  zigzag64(lo, hi);
  return true;
}

function writeDecimal(w: BitWriter, values: Float64Array, bits: Uint32Array, d: number, scheme: number): void {
  const count = values.length;
  ensure(count);
  const p = POW10[d];
  let prevN = 0;
  let anyResidual = false;
  let wideResidual = false;
  for (let i = 0; i < count; i++) {
    const v = values[i];
    // `+ 0` turns -0 into +0: the sign of zero travels in the residual.
    let n = Math.round(v * p) + 0;
    // NaN, ±Infinity and out-of-range values repeat the previous n (a zero delta); the residual carries them.
    if (!(n < INT_SEQ_LIMIT && n > -INT_SEQ_LIMIT)) n = prevN;
    prevN = n;
    scaled[i] = n;
    if (residual(v, bits, i, n, d, scheme)) {
      anyResidual = true;
      residualLo[i] = wide.lo;
      residualHi[i] = wide.hi;
      if (wide.hi !== 0) wideResidual = true;
    } else {
      residualLo[i] = 0;
      residualHi[i] = 0;
    }
  }
  writeIntSeq(w, scaled, count);
  if (!anyResidual) {
    w.write(0, 1);
    return;
  }
  w.write(1, 1);
  writeStream(w, residualLo, wideResidual ? residualHi : null, count);
}

function readDecimal(r: BitReader, out: Float64Array, d: number, scheme: number): void {
  const count = out.length;
  if (d > MAX_DECIMALS) throw new CodecError(`corrupt chunk: ${d} decimals`);
  ensure(count);
  readIntSeq(r, count, scaled);
  if (r.read(1) === 0) {
    for (let i = 0; i < count; i++) out[i] = approxOf(scaled[i], d, scheme);
    return;
  }
  const f32Mode = scheme === DECIMAL_F32;
  readStream(r, count, residualLo, f32Mode ? null : residualHi);
  const outBits = new Uint32Array(out.buffer);
  for (let i = 0; i < count; i++) {
    const approx = approxOf(scaled[i], d, scheme);
    const zLo = residualLo[i];
    const zHi = f32Mode ? 0 : residualHi[i];
    if (zLo === 0 && zHi === 0) {
      out[i] = approx;
    } else if (f32Mode) {
      f32[1] = approx;
      f32Bits[0] = (f32Bits[1] + ((zLo >>> 1) ^ -(zLo & 1))) >>> 0;
      out[i] = f32[0];
    } else {
      f64[0] = approx;
      unzigzag64(zLo, zHi);
      const sumLo = f64Bits[0] + wide.lo;
      outBits[2 * i] = sumLo >>> 0;
      outBits[2 * i + 1] = (f64Bits[1] + wide.hi + (sumLo > 0xffffffff ? 1 : 0)) >>> 0;
    }
  }
}

// --- DICTIONARY --------------------------------------------------------------------------------

/**
 * Estimated bits of the dictionary scheme on the sample, or Infinity when the sample has more than
 * one distinct value in four: the index sequence (delta or plain, whichever looks smaller) plus
 * about 16 bits per dictionary entry.
 */
function dictionaryBits(values: Float64Array, starts: number[], windowLength: number): number {
  const sampled = starts.length * windowLength;
  if (sampled < 16) return Infinity;
  const seen = new Set<number>();
  for (const s of starts) {
    for (let i = s; i < s + windowLength; i++) {
      seen.add(values[i]);
      if (seen.size * 4 > sampled) return Infinity;
    }
  }
  const sorted = Float64Array.from(seen).sort();
  const rank = new Map<number, number>();
  for (let k = 0; k < sorted.length; k++) rank.set(sorted[k], k);
  ensure(windowLength);
  let deltaBits = 0;
  for (const s of starts) {
    for (let i = 0; i < windowLength; i++) scaled[i] = rank.get(values[s + i]) as number;
    deltaBits += estimateDeltaBits(scaled, windowLength);
  }
  const plainBits = sampled * (33 - Math.clz32(sorted.length - 1));
  return Math.min(deltaBits, plainBits) + 16 * sorted.length;
}

/**
 * The distinct values in ascending order, or null when a dictionary cannot pay (more than one
 * distinct value in four) or cannot be exact (a NaN, whose payload a Map would not tell apart, or
 * -0, which a Map would merge with +0).
 */
function distinctSorted(values: Float64Array): Float64Array | null {
  const limit = values.length / 4;
  const seen = new Set<number>();
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (v !== v || (v === 0 && 1 / v < 0)) return null;
    seen.add(v);
    if (seen.size > limit) return null;
  }
  return Float64Array.from(seen).sort();
}

function writeDictionary(w: BitWriter, values: Float64Array, dictionary: Float64Array): void {
  const count = values.length;
  const indexOf = new Map<number, number>();
  for (let k = 0; k < dictionary.length; k++) indexOf.set(dictionary[k], k);
  if (dictionaryIndices.length < count) dictionaryIndices = new Float64Array(Math.max(count, dictionaryIndices.length * 2));
  for (let i = 0; i < count; i++) dictionaryIndices[i] = indexOf.get(values[i]) as number;
  w.write(DICTIONARY, SCHEME_BITS);
  w.writeVarBits(dictionary.length - 1);
  writeFloats(w, dictionary, false);
  writeIntSeq(w, dictionaryIndices, count);
}

function readDictionary(r: BitReader, out: Float64Array): void {
  const count = out.length;
  const size = r.readVarBits() + 1;
  if (size > count) throw new CodecError(`corrupt chunk: float dictionary of ${size} for ${count} values`);
  const dictionary = readFloats(r, size, false);
  if (dictionaryIndices.length < count) dictionaryIndices = new Float64Array(Math.max(count, dictionaryIndices.length * 2));
  readIntSeq(r, count, dictionaryIndices);
  for (let i = 0; i < count; i++) {
    const k = dictionaryIndices[i];
    if (!(k >= 0 && k < size && Number.isInteger(k))) throw new CodecError('corrupt chunk: float dictionary index out of range');
    out[i] = dictionary[k];
  }
}

// --- PATTERN32 -----------------------------------------------------------------------------------

/** The float32 bit pattern as an int32 that increases with the value (negatives mirrored). */
function ordered32(v: number): number {
  f32[0] = v;
  const b = f32Bits[0] | 0;
  return b < 0 ? b ^ 0x7fffffff : b;
}

function pattern32Bits(values: Float64Array, start: number, length: number): number {
  ensure(length);
  for (let i = 0; i < length; i++) scaled[i] = ordered32(values[start + i]);
  return estimateDeltaBits(scaled, length);
}

function writePattern32(w: BitWriter, values: Float64Array): void {
  const count = values.length;
  ensure(count);
  for (let i = 0; i < count; i++) scaled[i] = ordered32(values[i]);
  writeIntSeq(w, scaled, count);
}

function readPattern32(r: BitReader, out: Float64Array): void {
  const count = out.length;
  ensure(count);
  readIntSeq(r, count, scaled);
  for (let i = 0; i < count; i++) {
    const o = scaled[i] | 0;
    f32Bits[0] = o < 0 ? o ^ 0x7fffffff : o;
    out[i] = f32[0];
  }
}

// --- PATTERN64 -----------------------------------------------------------------------------------

function pattern64Bits(bits: Uint32Array, start: number, length: number): number {
  let total = 64;
  let prevLo = 0;
  let prevHi = 0;
  for (let i = start; i < start + length; i++) {
    let lo = bits[2 * i];
    let hi = bits[2 * i + 1];
    if (hi & 0x80000000) {
      lo = ~lo >>> 0;
      hi = (hi ^ 0x7fffffff) >>> 0;
    }
    if (i > start) {
      zigzag64((lo - prevLo) >>> 0, (hi - prevHi - (lo < prevLo ? 1 : 0)) >>> 0);
      total += (wide.hi === 0 ? 32 - Math.clz32(wide.lo) : 64 - Math.clz32(wide.hi)) + 1;
    }
    prevLo = lo;
    prevHi = hi;
  }
  return total;
}

function writePattern64(w: BitWriter, bits: Uint32Array, count: number): void {
  ensure(count);
  let prevLo = 0;
  let prevHi = 0;
  for (let i = 0; i < count; i++) {
    let lo = bits[2 * i];
    let hi = bits[2 * i + 1];
    // Mirror negatives so the integer order follows the float order (sign-magnitude → two's complement).
    if (hi & 0x80000000) {
      lo = ~lo >>> 0;
      hi = (hi ^ 0x7fffffff) >>> 0;
    }
    zigzag64((lo - prevLo) >>> 0, (hi - prevHi - (lo < prevLo ? 1 : 0)) >>> 0);
    residualLo[i] = wide.lo;
    residualHi[i] = wide.hi;
    prevLo = lo;
    prevHi = hi;
  }
  writeStream(w, residualLo, residualHi, count);
}

function readPattern64(r: BitReader, outBits: Uint32Array, count: number): void {
  ensure(count);
  readStream(r, count, residualLo, residualHi);
  let prevLo = 0;
  let prevHi = 0;
  for (let i = 0; i < count; i++) {
    unzigzag64(residualLo[i], residualHi[i]);
    const sumLo = prevLo + wide.lo;
    const lo = sumLo >>> 0;
    const hi = (prevHi + wide.hi + (sumLo > 0xffffffff ? 1 : 0)) >>> 0;
    prevLo = lo;
    prevHi = hi;
    if (hi & 0x80000000) {
      outBits[2 * i] = ~lo >>> 0;
      outBits[2 * i + 1] = (hi ^ 0x7fffffff) >>> 0;
    } else {
      outBits[2 * i] = lo;
      outBits[2 * i + 1] = hi;
    }
  }
}

// --- GORILLA -------------------------------------------------------------------------------------
// Control bits per value after the first (written LSB-first, so 0b01 means "1 then 0"):
//   0   same as the previous value
//   10  XOR fits the previous window: its meaningful bits in the previous width
//   11  new window: 5 bits leading zeros (capped at 31), 6 bits width - 1, then the meaningful bits

function gorillaBits(bits: Uint32Array, start: number, length: number): number {
  let total = 64;
  let prevLead = -1;
  let prevTrail = 0;
  for (let i = start + 1; i < start + length; i++) {
    const xLo = (bits[2 * i] ^ bits[2 * i - 2]) >>> 0;
    const xHi = (bits[2 * i + 1] ^ bits[2 * i - 1]) >>> 0;
    if (xLo === 0 && xHi === 0) {
      total += 1;
      continue;
    }
    let lead = xHi !== 0 ? Math.clz32(xHi) : 32 + Math.clz32(xLo);
    const trail = xLo !== 0 ? ctz32(xLo) : 32 + ctz32(xHi);
    if (prevLead >= 0 && lead >= prevLead && trail >= prevTrail) {
      total += 2 + 64 - prevLead - prevTrail;
    } else {
      if (lead > 31) lead = 31;
      total += 13 + 64 - lead - trail;
      prevLead = lead;
      prevTrail = trail;
    }
  }
  return total;
}

function writeGorilla(w: BitWriter, bits: Uint32Array, count: number): void {
  w.write(bits[0], 32);
  w.write(bits[1], 32);
  let prevLead = -1;
  let prevTrail = 0;
  for (let i = 1; i < count; i++) {
    const xLo = (bits[2 * i] ^ bits[2 * i - 2]) >>> 0;
    const xHi = (bits[2 * i + 1] ^ bits[2 * i - 1]) >>> 0;
    if (xLo === 0 && xHi === 0) {
      w.write(0, 1);
      continue;
    }
    let lead = xHi !== 0 ? Math.clz32(xHi) : 32 + Math.clz32(xLo);
    const trail = xLo !== 0 ? ctz32(xLo) : 32 + ctz32(xHi);
    if (prevLead >= 0 && lead >= prevLead && trail >= prevTrail) {
      w.write(0b01, 2);
      shiftRight64(xLo, xHi, prevTrail);
      w.writeWide(wide.lo, wide.hi, 64 - prevLead - prevTrail);
    } else {
      if (lead > 31) lead = 31;
      const width = 64 - lead - trail;
      w.write(0b11, 2);
      w.write(lead, 5);
      w.write(width - 1, 6);
      shiftRight64(xLo, xHi, trail);
      w.writeWide(wide.lo, wide.hi, width);
      prevLead = lead;
      prevTrail = trail;
    }
  }
}

function readGorilla(r: BitReader, outBits: Uint32Array, count: number): void {
  let lo = r.read(32);
  let hi = r.read(32);
  outBits[0] = lo;
  outBits[1] = hi;
  let lead = -1;
  let trail = 0;
  for (let i = 1; i < count; i++) {
    if (r.read(1) === 1) {
      if (r.read(1) === 1) {
        lead = r.read(5);
        const width = r.read(6) + 1;
        trail = 64 - lead - width;
        if (trail < 0) throw new CodecError('corrupt chunk: XOR window wider than 64 bits');
      } else if (lead < 0) {
        throw new CodecError('corrupt chunk: XOR window reused before it was set');
      }
      const width = 64 - lead - trail;
      const mLo = r.read(Math.min(width, 32));
      const mHi = width > 32 ? r.read(width - 32) : 0;
      shiftLeft64(mLo, mHi, trail);
      lo = (lo ^ wide.lo) >>> 0;
      hi = (hi ^ wide.hi) >>> 0;
    }
    outBits[2 * i] = lo;
    outBits[2 * i + 1] = hi;
  }
}
