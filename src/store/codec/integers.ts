// Signed (BigInt64Array) and unsigned (BigUint64Array) integer columns. Both are read through a
// uint32 [lo, hi] view of their buffer, so no BigInt is created on either side. When every value
// lies within ±2^50 (practically always: counters, registers, enums) the values become doubles and
// take the integer sequence coder (FOR/delta/delta-of-delta, GCD). Otherwise the 64-bit path codes
// wrapping deltas (mod 2^64, hence exact for INT64_MIN..INT64_MAX and 0..2^64-1 alike) by zigzag
// and the 64-bit block stream.
import { type BitReader, type BitWriter, TWO_POW_32, unzigzag64, wide, zigzag64 } from './bits.js';
import { readStream, writeStream } from './blocks.js';
import { readIntSeq, writeIntSeq } from './intseq.js';

/** |x| < 2^50 ⇔ the high word, as int32, lies in [-2^18, 2^18). */
const SAFE_HI = 2 ** 18;

let numbers = new Float64Array(1024);
let deltaLo = new Uint32Array(1024);
let deltaHi = new Uint32Array(1024);

function ensure(count: number): void {
  if (numbers.length >= count) return;
  let size = numbers.length;
  while (size < count) size *= 2;
  numbers = new Float64Array(size);
  deltaLo = new Uint32Array(size);
  deltaHi = new Uint32Array(size);
}

export function writeIntegers(w: BitWriter, values: BigInt64Array | BigUint64Array): void {
  const count = values.length;
  if (count === 0) return;
  const signed = values instanceof BigInt64Array;
  const bits = new Uint32Array(values.buffer, values.byteOffset, count * 2);
  ensure(count);
  let small = true;
  for (let i = 0; i < count; i++) {
    const hi = signed ? bits[2 * i + 1] | 0 : bits[2 * i + 1];
    if (hi >= SAFE_HI || hi < -SAFE_HI) {
      small = false;
      break;
    }
    numbers[i] = hi * TWO_POW_32 + bits[2 * i];
  }
  if (small) {
    w.write(0, 1);
    writeIntSeq(w, numbers, count);
    return;
  }
  w.write(1, 1);
  let prevLo = 0;
  let prevHi = 0;
  for (let i = 0; i < count; i++) {
    const lo = bits[2 * i];
    const hi = bits[2 * i + 1];
    zigzag64((lo - prevLo) >>> 0, (hi - prevHi - (lo < prevLo ? 1 : 0)) >>> 0);
    deltaLo[i] = wide.lo;
    deltaHi[i] = wide.hi;
    prevLo = lo;
    prevHi = hi;
  }
  writeStream(w, deltaLo, deltaHi, count);
}

export function readIntegers(r: BitReader, count: number, signed: boolean): BigInt64Array | BigUint64Array {
  const out = signed ? new BigInt64Array(count) : new BigUint64Array(count);
  if (count === 0) return out;
  const bits = new Uint32Array(out.buffer);
  ensure(count);
  if (r.read(1) === 0) {
    readIntSeq(r, count, numbers);
    for (let i = 0; i < count; i++) {
      const x = numbers[i];
      // ToUint32 is exact modulo 2^32 for integers below 2^53; corrupt input just yields other bits.
      const lo = x >>> 0;
      bits[2 * i] = lo;
      bits[2 * i + 1] = (x - lo) / TWO_POW_32;
    }
    return out;
  }
  readStream(r, count, deltaLo, deltaHi);
  let prevLo = 0;
  let prevHi = 0;
  for (let i = 0; i < count; i++) {
    unzigzag64(deltaLo[i], deltaHi[i]);
    const sumLo = prevLo + wide.lo;
    prevLo = sumLo >>> 0;
    prevHi = (prevHi + wide.hi + (sumLo > 0xffffffff ? 1 : 0)) >>> 0;
    bits[2 * i] = prevLo;
    bits[2 * i + 1] = prevHi;
  }
  return out;
}
