// Register values → field values. Pure.
//
// Field types (the same rule as Telegraf's modbus input: the native type unless scaled):
//   bool                          → boolean (a register is true when nonzero)
//   int16 int32 int64 uint16 uint32 → integer (bigint; every one of them fits a signed 64-bit field)
//   uint64                        → unsigned (Unsigned; values above 2^63-1 do not fit an integer)
//   float32 float64               → float
//   any numeric type with scale ≠ 1 or offset ≠ 0 → float
// A field keeps its type for the life of the config, so a series never changes type with its value.
//
// Decimal exactness. `raw * scale + offset` in binary floating point gives 1234 * 0.1 =
// 123.40000000000001. Here the arithmetic is done on decimals: the raw value, the scale and the offset
// are each taken as the shortest decimal that denotes them (an integer register is exact; a float32
// register is the shortest decimal that reads back as the same float32, so 21.3f is 21.3, not
// 21.299999237060547), multiplied and added exactly with bigint mantissas, and converted to the
// nearest double once at the end. So 1234 × 0.1 is 123.4, and 215 × 0.1 + -273.15 is -251.65.
// The same float32 rule applies without scale: a float32 register holding 21.3f is stored as 21.3.
import { Unsigned, type FieldValue } from '../../src/core/point.js';
import { REGISTER_WORDS, type RegisterType } from './schema.js';

/** A decimal number: mantissa × 10^exponent. */
export interface Decimal {
  m: bigint;
  e: number;
}

/** The shortest decimal of a finite double (its JS string form, which round-trips). */
export function decimalOf(x: number): Decimal {
  return parseDecimal(String(x));
}

/** Parses "-12.5", "1e-7", "1.25e+21" (what Number#toString and toPrecision produce). */
export function parseDecimal(text: string): Decimal {
  const ePos = text.search(/e/i);
  const mantissa = ePos < 0 ? text : text.slice(0, ePos);
  const exp = ePos < 0 ? 0 : Number(text.slice(ePos + 1));
  const dot = mantissa.indexOf('.');
  const digits = dot < 0 ? mantissa : mantissa.slice(0, dot) + mantissa.slice(dot + 1);
  const frac = dot < 0 ? 0 : mantissa.length - dot - 1;
  return { m: BigInt(digits), e: exp - frac };
}

function pow10(n: number): bigint {
  return 10n ** BigInt(n);
}

export function decimalMul(a: Decimal, b: Decimal): Decimal {
  return { m: a.m * b.m, e: a.e + b.e };
}

export function decimalAdd(a: Decimal, b: Decimal): Decimal {
  if (a.e === b.e) return { m: a.m + b.m, e: a.e };
  if (a.e < b.e) return { m: a.m + b.m * pow10(b.e - a.e), e: a.e };
  return { m: a.m * pow10(a.e - b.e) + b.m, e: b.e };
}

/** The double nearest to the decimal (Number parsing rounds correctly). */
export function decimalToNumber(d: Decimal): number {
  return Number(`${d.m}e${d.e}`);
}

/** The shortest decimal string that reads back as the same float32. */
export function float32Shortest(f: number): string {
  if (!Number.isFinite(f) || f === 0) return String(f);
  for (let p = 1; p < 9; p++) {
    const s = f.toPrecision(p);
    if (Math.fround(Number(s)) === f) return s;
  }
  return f.toPrecision(9);
}

/** How one register config turns words into a field value. */
export interface ValueSpec {
  type: RegisterType;
  word_order: 'big' | 'little';
  byte_order: 'big' | 'little';
  scale: number;
  offset: number;
}

/** A compiled decoder: reads its value from response data at a word (or bit) offset. */
export interface ValueDecoder {
  /** Registers it spans (1 for a bool). */
  readonly words: number;
  /** Decodes the value starting `wordOffset` registers into `data` (2 bytes per register, as received). */
  fromRegisters(data: Buffer, wordOffset: number): FieldValue;
}

const scratch = Buffer.alloc(8);

/** Puts `words` registers from `data` into `scratch` in big-endian order, applying word and byte order. */
function gather(data: Buffer, wordOffset: number, words: number, wordLittle: boolean, byteLittle: boolean): Buffer {
  for (let w = 0; w < words; w++) {
    const src = (wordOffset + (wordLittle ? words - 1 - w : w)) * 2;
    scratch[w * 2] = data[byteLittle ? src + 1 : src];
    scratch[w * 2 + 1] = data[byteLittle ? src : src + 1];
  }
  return scratch;
}

type Raw = { int: bigint } | { float: number; float32: boolean } | { bool: boolean };

function readRaw(type: RegisterType, b: Buffer): Raw {
  switch (type) {
    case 'bool':
      return { bool: b[0] !== 0 || b[1] !== 0 };
    case 'int16':
      return { int: BigInt(b.readInt16BE(0)) };
    case 'uint16':
      return { int: BigInt(b.readUInt16BE(0)) };
    case 'int32':
      return { int: BigInt(b.readInt32BE(0)) };
    case 'uint32':
      return { int: BigInt(b.readUInt32BE(0)) };
    case 'int64':
      return { int: b.readBigInt64BE(0) };
    case 'uint64':
      return { int: b.readBigUInt64BE(0) };
    case 'float32':
      return { float: b.readFloatBE(0), float32: true };
    case 'float64':
      return { float: b.readDoubleBE(0), float32: false };
  }
}

/** Builds the decoder of one register config; scale and offset are parsed once here. */
export function compileDecoder(spec: ValueSpec): ValueDecoder {
  const words = REGISTER_WORDS[spec.type];
  const wordLittle = spec.word_order === 'little';
  const byteLittle = spec.byte_order === 'little';
  const scaled = spec.type !== 'bool' && (spec.scale !== 1 || spec.offset !== 0);
  const scale = decimalOf(spec.scale);
  const offset = decimalOf(spec.offset);
  const type = spec.type;

  return {
    words,
    fromRegisters(data: Buffer, wordOffset: number): FieldValue {
      const raw = readRaw(type, gather(data, wordOffset, words, wordLittle, byteLittle));
      if ('bool' in raw) return raw.bool;
      if ('int' in raw) {
        if (!scaled) return type === 'uint64' ? new Unsigned(raw.int) : raw.int;
        return decimalToNumber(decimalAdd(decimalMul({ m: raw.int, e: 0 }, scale), offset));
      }
      const x = raw.float;
      if (!Number.isFinite(x)) return scaled ? x * spec.scale + spec.offset : x;
      const d = raw.float32 ? parseDecimal(float32Shortest(x)) : decimalOf(x);
      if (!scaled) return raw.float32 ? decimalToNumber(d) : x;
      return decimalToNumber(decimalAdd(decimalMul(d, scale), offset));
    },
  };
}

/** Bit `bitOffset` of a coil/discrete response (LSB of the first byte is the first bit). */
export function bitAt(data: Buffer, bitOffset: number): boolean {
  return (data[bitOffset >> 3] & (1 << (bitOffset & 7))) !== 0;
}
