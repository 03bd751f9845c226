// OPC UA values → point fields. Pure: it sees a variant as its data type id, its array kind and the
// JS value node-opcua decoded, so it needs no library and is tested on its own.
//
//   Boolean                                   → boolean
//   SByte Byte Int16 UInt16 Int32 UInt32 Int64 → integer (bigint; each fits a signed 64-bit field)
//   UInt64                                    → unsigned (Unsigned: values above 2^63-1 do not fit an integer)
//   Float                                     → float, the shortest decimal that reads back as the same
//                                               float32 (21.3f is 21.3, not 21.299999237060547)
//   Double                                    → float
//   String, LocalizedText (its text), QualifiedName, NodeId, ExpandedNodeId, Guid → string
//   DateTime                                  → integer: microseconds since the Unix epoch (the store's
//                                               time resolution; OPC UA's 100 ns ticks below 1 µs dropped)
//   one-dimensional arrays of those           → one field per element: name_0, name_1, …
//   anything else (structures = ExtensionObject, ByteString, XmlElement, matrices, Variant, DataValue,
//   DiagnosticInfo, StatusCode)               → not stored: `unsupported`, with the type's name
import { Unsigned, type FieldValue } from '../../src/core/point.js';

/** OPC UA built-in data type ids (Part 6, 5.1.2). */
export const DATA_TYPE_NAMES: Readonly<Record<number, string>> = {
  0: 'Null',
  1: 'Boolean',
  2: 'SByte',
  3: 'Byte',
  4: 'Int16',
  5: 'UInt16',
  6: 'Int32',
  7: 'UInt32',
  8: 'Int64',
  9: 'UInt64',
  10: 'Float',
  11: 'Double',
  12: 'String',
  13: 'DateTime',
  14: 'Guid',
  15: 'ByteString',
  16: 'XmlElement',
  17: 'NodeId',
  18: 'ExpandedNodeId',
  19: 'StatusCode',
  20: 'QualifiedName',
  21: 'LocalizedText',
  22: 'ExtensionObject',
  23: 'DataValue',
  24: 'Variant',
  25: 'DiagnosticInfo',
};

/** Variant array kinds (node-opcua's VariantArrayType). */
export const ARRAY_SCALAR = 0;
export const ARRAY_ARRAY = 1;

export interface VariantLike {
  dataType: number;
  arrayType: number;
  value: unknown;
}

export type Converted = { ok: true; fields: Record<string, FieldValue> } | { ok: false; unsupported: string };

/** The shortest decimal that reads back as the same float32 (a float32 has at most 9 significant digits). */
export function float32Shortest(f: number): number {
  if (!Number.isFinite(f) || f === 0) return f;
  for (let digits = 1; digits <= 9; digits++) {
    const candidate = Number(f.toPrecision(digits));
    if (Math.fround(candidate) === f) return candidate;
  }
  return f;
}

/** A 64-bit integer as node-opcua hands it: [high, low] 32-bit words (or, defensively, a number or bigint). */
function uint64Bits(value: unknown): bigint | undefined {
  if (typeof value === 'bigint') return BigInt.asUintN(64, value);
  if (typeof value === 'number' && Number.isSafeInteger(value)) return BigInt.asUintN(64, BigInt(value));
  if (Array.isArray(value) && value.length === 2 && typeof value[0] === 'number' && typeof value[1] === 'number') {
    return (BigInt(value[0] >>> 0) << 32n) | BigInt(value[1] >>> 0);
  }
  return undefined;
}

/** Microseconds since the epoch of an OPC UA DateTime (node-opcua: a Date, with `picoseconds` beyond the ms). */
export function dateMicros(date: Date): number {
  const pico = (date as Date & { picoseconds?: number }).picoseconds ?? 0;
  return date.getTime() * 1000 + Math.floor(pico / 1_000_000);
}

type Scalar = FieldValue | undefined;

function scalar(dataType: number, value: unknown): Scalar {
  switch (dataType) {
    case 1:
      return typeof value === 'boolean' ? value : undefined;
    case 2:
    case 3:
    case 4:
    case 5:
    case 6:
    case 7:
      return typeof value === 'number' && Number.isInteger(value) ? BigInt(value) : undefined;
    case 8: {
      const bits = uint64Bits(value);
      return bits === undefined ? undefined : BigInt.asIntN(64, bits);
    }
    case 9: {
      const bits = uint64Bits(value);
      return bits === undefined ? undefined : new Unsigned(bits);
    }
    case 10:
      return typeof value === 'number' ? float32Shortest(value) : undefined;
    case 11:
      return typeof value === 'number' ? value : undefined;
    case 12:
      return typeof value === 'string' ? value : undefined;
    case 13:
      return value instanceof Date && Number.isFinite(value.getTime()) ? BigInt(dateMicros(value)) : undefined;
    case 21: {
      const text = (value as { text?: unknown } | null)?.text;
      return typeof text === 'string' ? text : undefined;
    }
    case 20: {
      const name = (value as { name?: unknown } | null)?.name;
      return typeof name === 'string' ? name : undefined;
    }
    case 14:
      return typeof value === 'string' ? value : undefined;
    case 17:
    case 18:
      // node-opcua's NodeId and ExpandedNodeId print as "ns=2;s=…".
      return value !== null && typeof value === 'object' ? (value as { toString(): string }).toString() : undefined;
    default:
      return undefined;
  }
}

const SUPPORTED = new Set([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 17, 18, 20, 21]);

/**
 * The fields of one node's value. A scalar gives `name`; an array one field per element (`name_0`…);
 * a null value (an empty String, a Null variant) gives no field at all, which is not an error.
 */
export function toFields(name: string, variant: VariantLike): Converted {
  const typeName = DATA_TYPE_NAMES[variant.dataType] ?? `DataType ${variant.dataType}`;
  if (variant.dataType === 0 || variant.value === null || variant.value === undefined) return { ok: true, fields: {} };
  if (!SUPPORTED.has(variant.dataType)) return { ok: false, unsupported: typeName === 'ExtensionObject' ? 'a structure (ExtensionObject)' : typeName };
  if (variant.arrayType === ARRAY_SCALAR) {
    const v = scalar(variant.dataType, variant.value);
    return v === undefined ? { ok: false, unsupported: `${typeName} of an unexpected shape` } : { ok: true, fields: { [name]: v } };
  }
  if (variant.arrayType !== ARRAY_ARRAY) return { ok: false, unsupported: `a matrix of ${typeName}` };
  const fields: Record<string, FieldValue> = {};
  // Typed arrays (Float32Array, Int32Array, …) as well as plain ones.
  const items = Array.from(variant.value as ArrayLike<unknown>);
  for (let i = 0; i < items.length; i++) {
    if (items[i] === null || items[i] === undefined) continue;
    const v = scalar(variant.dataType, items[i]);
    if (v === undefined) return { ok: false, unsupported: `an array of ${typeName} with an element of an unexpected shape` };
    fields[`${name}_${i}`] = v;
  }
  return { ok: true, fields };
}

/** How a value's time is chosen (`timestamp`): the named source, then the next in source → server → agent. */
export function pointTimeUs(mode: 'source' | 'server' | 'agent', source: Date | null | undefined, server: Date | null | undefined, agentUs: number): number {
  const usable = (d: Date | null | undefined): d is Date => d instanceof Date && Number.isFinite(d.getTime()) && d.getTime() > 0;
  if (mode === 'source' && usable(source)) return dateMicros(source);
  if (mode !== 'agent' && usable(server)) return dateMicros(server);
  return agentUs;
}
