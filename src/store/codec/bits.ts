// Bit-level writer and reader. Bits are packed LSB-first into little-endian bytes, through a 32-bit
// accumulator, so every hot operation stays in int32 arithmetic (no BigInt, no per-value allocation).
// Fields wider than 32 bits are written as a low 32-bit word followed by the high part.
import { CodecError } from './errors.js';

export const TWO_POW_32 = 4294967296;

if (new Uint8Array(new Uint32Array([1]).buffer)[0] !== 1) {
  // The codec reinterprets Float64Array/BigInt64Array buffers as [lo, hi] uint32 pairs.
  throw new Error('sluice codec: big-endian hosts are not supported');
}

/** Number of significant bits of a uint32 (0 for 0). */
export function bitLength32(x: number): number {
  return 32 - Math.clz32(x);
}

/** Number of significant bits of a non-negative integer below 2^53. */
export function bitLengthNum(x: number): number {
  return x < TWO_POW_32 ? 32 - Math.clz32(x) : 64 - Math.clz32(Math.floor(x / TWO_POW_32));
}

/** Count of trailing zero bits of a non-zero uint32. */
export function ctz32(x: number): number {
  return 31 - Math.clz32(x & -x);
}

export class BitWriter {
  private buf: Uint8Array;
  private bytePos = 0;
  /** Pending bits, low bits first; bits above `accBits` are always zero. */
  private acc = 0;
  private accBits = 0;

  constructor(initialBytes = 4096) {
    this.buf = new Uint8Array(initialBytes);
  }

  reset(): void {
    this.bytePos = 0;
    this.acc = 0;
    this.accBits = 0;
  }

  /** Bits written so far. */
  get bitCount(): number {
    return this.bytePos * 8 + this.accBits;
  }

  /** Writes the low `nBits` (0..32) bits of `value`; higher bits of `value` must be zero. */
  write(value: number, nBits: number): void {
    if (nBits === 0) return;
    this.acc |= value << this.accBits;
    const total = this.accBits + nBits;
    if (total >= 32) {
      this.flushWord(this.acc);
      // The bits of `value` that did not fit; a shift by 32 would be a shift by 0 in JS.
      this.acc = this.accBits === 0 ? 0 : value >>> (32 - this.accBits);
      this.accBits = total - 32;
    } else {
      this.accBits = total;
    }
  }

  /** Writes a non-negative integer below 2^53 in `nBits` (0..53) bits. */
  writeNum(value: number, nBits: number): void {
    if (nBits <= 32) {
      this.write(value >>> 0, nBits);
    } else {
      const lo = value >>> 0;
      this.write(lo, 32);
      this.write((value - lo) / TWO_POW_32, nBits - 32);
    }
  }

  /** Writes a 64-bit value given as uint32 halves, in `nBits` (0..64) bits. */
  writeWide(lo: number, hi: number, nBits: number): void {
    if (nBits <= 32) {
      this.write(lo, nBits);
    } else {
      this.write(lo, 32);
      this.write(hi, nBits - 32);
    }
  }

  /**
   * Writes values[start..start+n) in `width` (1..32) bits each: the PFor inner loop, with the
   * writer state in locals.
   */
  writePacked(values: Uint32Array, start: number, n: number, width: number): void {
    this.ensure(Math.ceil((n * width) / 8) + 8);
    const buf = this.buf;
    const mask = width === 32 ? -1 : (1 << width) - 1;
    let pos = this.bytePos;
    let acc = this.acc;
    let accBits = this.accBits;
    for (let i = start; i < start + n; i++) {
      const v = values[i] & mask;
      acc |= v << accBits;
      const total = accBits + width;
      if (total >= 32) {
        buf[pos] = acc;
        buf[pos + 1] = acc >>> 8;
        buf[pos + 2] = acc >>> 16;
        buf[pos + 3] = acc >>> 24;
        pos += 4;
        acc = accBits === 0 ? 0 : v >>> (32 - accBits);
        accBits = total - 32;
      } else {
        accBits = total;
      }
    }
    this.bytePos = pos;
    this.acc = acc;
    this.accBits = accBits;
  }

  /** Writes Rice(k) codes (k <= 31) of values[start..start+n): unary quotient, then k low bits. */
  writeRice(values: Uint32Array, start: number, n: number, k: number): void {
    let totalBits = 0;
    for (let i = start; i < start + n; i++) totalBits += (values[i] >>> k) + 1 + k;
    this.ensure(Math.ceil(totalBits / 8) + 8);
    const buf = this.buf;
    const mask = (1 << k) - 1;
    let pos = this.bytePos;
    let acc = this.acc;
    let accBits = this.accBits;
    for (let i = start; i < start + n; i++) {
      const v = values[i];
      // The quotient's zeros need no writing: bits above accBits are already zero.
      accBits += v >>> k;
      while (accBits >= 32) {
        buf[pos] = acc;
        buf[pos + 1] = acc >>> 8;
        buf[pos + 2] = acc >>> 16;
        buf[pos + 3] = acc >>> 24;
        pos += 4;
        acc = 0;
        accBits -= 32;
      }
      // The terminating one bit, then the remainder: k + 1 <= 32 bits.
      const code = ((v & mask) << 1) | 1;
      const width = k + 1;
      acc |= code << accBits;
      const total = accBits + width;
      if (total >= 32) {
        buf[pos] = acc;
        buf[pos + 1] = acc >>> 8;
        buf[pos + 2] = acc >>> 16;
        buf[pos + 3] = acc >>> 24;
        pos += 4;
        acc = accBits === 0 ? 0 : code >>> (32 - accBits);
        accBits = total - 32;
      } else {
        accBits = total;
      }
    }
    this.bytePos = pos;
    this.acc = acc;
    this.accBits = accBits;
  }

  /** `q` zero bits then a one bit. */
  writeUnary(q: number): void {
    while (q >= 31) {
      this.write(0, 31);
      q -= 31;
    }
    this.write(1 << q, q + 1);
  }

  /** A non-negative integer below 2^53 as a 6-bit length followed by that many bits. */
  writeVarBits(value: number): void {
    const len = bitLengthNum(value);
    this.write(len, 6);
    this.writeNum(value, len);
  }

  /** An integer with magnitude below 2^53: sign bit, then the magnitude as var-bits. */
  writeSignedVarBits(value: number): void {
    if (value < 0) {
      this.write(1, 1);
      this.writeVarBits(-value);
    } else {
      this.write(0, 1);
      this.writeVarBits(value);
    }
  }

  /** Pads with zero bits to the next byte boundary. */
  align(): void {
    const pad = (8 - (this.accBits & 7)) & 7;
    this.write(0, pad);
    while (this.accBits > 0) {
      this.ensure(1);
      this.buf[this.bytePos++] = this.acc & 0xff;
      this.acc >>>= 8;
      this.accBits -= 8;
    }
  }

  /** Aligns, then appends raw bytes. */
  writeBytes(bytes: Uint8Array): void {
    this.align();
    this.ensure(bytes.length);
    this.buf.set(bytes, this.bytePos);
    this.bytePos += bytes.length;
  }

  /** Appends every bit written to `src` (which is left unchanged). */
  appendBits(src: BitWriter): void {
    const b = src.buf;
    const fullWords = src.bytePos >>> 2;
    for (let k = 0, p = 0; k < fullWords; k++, p += 4) this.write((b[p] | (b[p + 1] << 8) | (b[p + 2] << 16) | (b[p + 3] << 24)) >>> 0, 32);
    for (let p = fullWords * 4; p < src.bytePos; p++) this.write(b[p], 8);
    this.write(src.acc >>> 0, src.accBits);
  }

  /** Aligns and returns the bytes written; the view is valid until the next reset or write. */
  finish(): Uint8Array {
    this.align();
    return this.buf.subarray(0, this.bytePos);
  }

  private flushWord(word: number): void {
    this.ensure(4);
    const b = this.buf;
    const p = this.bytePos;
    b[p] = word;
    b[p + 1] = word >>> 8;
    b[p + 2] = word >>> 16;
    b[p + 3] = word >>> 24;
    this.bytePos = p + 4;
  }

  private ensure(extraBytes: number): void {
    if (this.bytePos + extraBytes <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.bytePos + extraBytes) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.buf.subarray(0, this.bytePos));
    this.buf = next;
  }
}

export class BitReader {
  private bytePos: number;
  private acc = 0;
  private accBits = 0;

  constructor(
    private readonly bytes: Uint8Array,
    start: number,
    private readonly end: number,
  ) {
    this.bytePos = start;
  }

  /** Reads `nBits` (0..32) bits as a uint32; throws CodecError past the end. */
  read(nBits: number): number {
    if (nBits <= this.accBits) {
      const acc = this.acc;
      if (nBits === 32) {
        this.acc = 0;
        this.accBits = 0;
        return acc >>> 0;
      }
      this.acc = acc >>> nBits;
      this.accBits -= nBits;
      return (acc & ((1 << nBits) - 1)) >>> 0;
    }
    return this.readSlow(nBits);
  }

  /** Reads a non-negative integer of `nBits` (0..53) bits. */
  readNum(nBits: number): number {
    if (nBits <= 32) return this.read(nBits);
    const lo = this.read(32);
    return this.read(nBits - 32) * TWO_POW_32 + lo;
  }

  readVarBits(): number {
    const len = this.read(6);
    if (len > 53) throw new CodecError(`corrupt chunk: var-bits length ${len} exceeds 53`);
    return this.readNum(len);
  }

  readSignedVarBits(): number {
    const negative = this.read(1) === 1;
    const magnitude = this.readVarBits();
    return negative ? -magnitude : magnitude;
  }

  /** Counts zero bits up to and including the next one bit; more than `maxZeros` zeros is corruption. */
  readUnary(maxZeros: number): number {
    let q = 0;
    for (;;) {
      const acc = this.acc;
      if (acc !== 0) {
        const tz = ctz32(acc);
        q += tz;
        if (q > maxZeros) break;
        const used = tz + 1;
        this.acc = used === 32 ? 0 : acc >>> used;
        this.accBits -= used;
        return q;
      }
      q += this.accBits;
      if (q > maxZeros) break;
      this.acc = 0;
      this.accBits = 0;
      this.refill();
    }
    throw new CodecError('corrupt chunk: unary run too long');
  }

  /**
   * Reads `n` fields of `width` (1..32) bits into out[start..start+n): the PFor inner loop, with the
   * reader state in locals. The last few bytes of the buffer go through read() and its checks.
   */
  readPacked(out: Uint32Array, start: number, n: number, width: number): void {
    const bytes = this.bytes;
    const safeEnd = this.end - 4;
    const mask = width === 32 ? -1 : (1 << width) - 1;
    let acc = this.acc;
    let accBits = this.accBits;
    let pos = this.bytePos;
    let i = start;
    const end = start + n;
    for (; i < end; i++) {
      if (accBits >= width) {
        out[i] = acc & mask;
        acc = width === 32 ? 0 : acc >>> width;
        accBits -= width;
      } else {
        if (pos > safeEnd) break;
        const w = (bytes[pos] | (bytes[pos + 1] << 8) | (bytes[pos + 2] << 16) | (bytes[pos + 3] << 24)) >>> 0;
        pos += 4;
        const need = width - accBits;
        out[i] = (acc | (w << accBits)) & mask;
        acc = need === 32 ? 0 : w >>> need;
        accBits = 32 - need;
      }
    }
    this.acc = acc;
    this.accBits = accBits;
    this.bytePos = pos;
    for (; i < end; i++) out[i] = this.read(width);
  }

  /**
   * Reads `n` Rice(k) codes (unary quotient, then k low bits) into out[start..), each below 2^32:
   * a quotient above `maxQuotient` is corruption. Same local-state scheme as readPacked.
   */
  readRice(out: Uint32Array, start: number, n: number, k: number, maxQuotient: number): void {
    const bytes = this.bytes;
    const safeEnd = this.end - 4;
    const mask = (1 << k) - 1;
    const scale = 2 ** k;
    let acc = this.acc;
    let accBits = this.accBits;
    let pos = this.bytePos;
    let i = start;
    const end = start + n;
    outer: for (; i < end; i++) {
      // Only consume the value once it is known to lie entirely before safeEnd.
      let q = 0;
      let a = acc;
      let ab = accBits;
      let p = pos;
      while (a === 0) {
        q += ab;
        if (q > maxQuotient || p > safeEnd) break outer;
        a = (bytes[p] | (bytes[p + 1] << 8) | (bytes[p + 2] << 16) | (bytes[p + 3] << 24)) >>> 0;
        p += 4;
        ab = 32;
      }
      const tz = 31 - Math.clz32(a & -a);
      q += tz;
      if (q > maxQuotient) break;
      const used = tz + 1;
      a = used === 32 ? 0 : a >>> used;
      ab -= used;
      let low: number;
      if (ab >= k) {
        low = a & mask;
        a = k === 32 ? 0 : a >>> k;
        ab -= k;
      } else {
        if (p > safeEnd) break;
        const w = (bytes[p] | (bytes[p + 1] << 8) | (bytes[p + 2] << 16) | (bytes[p + 3] << 24)) >>> 0;
        p += 4;
        const need = k - ab;
        low = (a | (w << ab)) & mask;
        a = need === 32 ? 0 : w >>> need;
        ab = 32 - need;
      }
      out[i] = q * scale + (low >>> 0);
      acc = a;
      accBits = ab;
      pos = p;
    }
    this.acc = acc;
    this.accBits = accBits;
    this.bytePos = pos;
    for (; i < end; i++) {
      const q = this.readUnary(maxQuotient);
      out[i] = q * scale + this.read(k);
    }
  }

  /** Skips to the next byte boundary. */
  align(): void {
    const drop = this.accBits & 7;
    this.acc >>>= drop;
    this.accBits -= drop;
  }

  /** Aligns, then returns a view of the next `n` raw bytes. */
  readBytes(n: number): Uint8Array {
    this.align();
    // Whole bytes still buffered in the accumulator come first.
    const buffered = this.accBits >>> 3;
    if (n > buffered + (this.end - this.bytePos)) throw new CodecError('truncated chunk: byte field past the end');
    const start = this.bytePos - buffered;
    this.acc = 0;
    this.accBits = 0;
    this.bytePos = start + n;
    return this.bytes.subarray(start, start + n);
  }

  private refill(): void {
    const avail = this.end - this.bytePos;
    if (avail <= 0) throw new CodecError('truncated chunk: bit stream ends early');
    const b = this.bytes;
    const p = this.bytePos;
    if (avail >= 4) {
      this.acc = (b[p] | (b[p + 1] << 8) | (b[p + 2] << 16) | (b[p + 3] << 24)) >>> 0;
      this.accBits = 32;
      this.bytePos = p + 4;
    } else {
      let w = 0;
      for (let i = 0; i < avail; i++) w |= b[p + i] << (8 * i);
      this.acc = w >>> 0;
      this.accBits = avail * 8;
      this.bytePos = p + avail;
    }
  }

  private readSlow(nBits: number): number {
    const low = this.acc;
    const lowBits = this.accBits;
    this.refill();
    const need = nBits - lowBits;
    if (need > this.accBits) throw new CodecError('truncated chunk: bit stream ends early');
    const w = this.acc;
    // lowBits > 0 implies need < 32, so the shifts below never reach 32.
    const high = need === 32 ? w : w & ((1 << need) - 1);
    this.acc = need === 32 ? 0 : w >>> need;
    this.accBits -= need;
    return (low | (high << lowBits)) >>> 0;
  }
}

/** Result slot of the 64-bit helpers below, so they return two words without allocating. */
export const wide = { lo: 0, hi: 0 };

/** (hi:lo) >>> shift, 0 <= shift < 64, into `wide`. */
export function shiftRight64(lo: number, hi: number, shift: number): void {
  if (shift === 0) {
    wide.lo = lo >>> 0;
    wide.hi = hi >>> 0;
  } else if (shift < 32) {
    wide.lo = ((lo >>> shift) | (hi << (32 - shift))) >>> 0;
    wide.hi = hi >>> shift;
  } else {
    wide.lo = hi >>> (shift - 32);
    wide.hi = 0;
  }
}

/** (hi:lo) << shift, 0 <= shift < 64, into `wide`. */
export function shiftLeft64(lo: number, hi: number, shift: number): void {
  if (shift === 0) {
    wide.lo = lo >>> 0;
    wide.hi = hi >>> 0;
  } else if (shift < 32) {
    wide.lo = (lo << shift) >>> 0;
    wide.hi = ((hi << shift) | (lo >>> (32 - shift))) >>> 0;
  } else {
    wide.lo = 0;
    wide.hi = (lo << (shift - 32)) >>> 0;
  }
}

/** Zigzag of the signed 64-bit (hi:lo), into `wide`. */
export function zigzag64(lo: number, hi: number): void {
  const sign = hi >> 31;
  wide.lo = ((lo << 1) ^ sign) >>> 0;
  wide.hi = (((hi << 1) | (lo >>> 31)) ^ sign) >>> 0;
}

/** Inverse of zigzag64, into `wide`. */
export function unzigzag64(lo: number, hi: number): void {
  const sign = -(lo & 1);
  wide.lo = (((lo >>> 1) | (hi << 31)) ^ sign) >>> 0;
  wide.hi = ((hi >>> 1) ^ sign) >>> 0;
}
