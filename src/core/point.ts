// The point model: what every input produces and every output consumes. No I/O here.

/** An unsigned 64-bit integer field (line protocol `123u`); wrapped so it stays distinct from a signed one. */
export class Unsigned {
  constructor(readonly value: bigint) {
    if (value < 0n || value > 0xffff_ffff_ffff_ffffn) throw new RangeError(`unsigned out of range: ${value}`);
  }
  toString(): string {
    return this.value.toString();
  }
}

/**
 * A field value. float = number, integer (signed 64-bit) = bigint, unsigned = Unsigned,
 * boolean, string. The JS type alone decides the stored type, so 1 (float) and 1n (integer) never mix.
 */
export type FieldValue = number | bigint | Unsigned | boolean | string;
export type FieldType = 'float' | 'integer' | 'unsigned' | 'boolean' | 'string';

export type Tags = Record<string, string>;
export type Fields = Record<string, FieldValue>;

/**
 * One reading at one instant. Time is held in integer microseconds since the Unix epoch (UTC):
 * exact in a double until the year 2255, fine enough for kHz vibration sensors, and cheap
 * (no BigInt on the hot path). Nanosecond input is truncated to microseconds.
 */
export interface Point {
  measurement: string;
  tags: Tags;
  fields: Fields;
  timeUs: number;
}

export function fieldType(value: FieldValue): FieldType {
  switch (typeof value) {
    case 'number':
      return 'float';
    case 'bigint':
      return 'integer';
    case 'boolean':
      return 'boolean';
    case 'string':
      return 'string';
    default:
      return 'unsigned';
  }
}

export const INT64_MIN = -(2n ** 63n);
export const INT64_MAX = 2n ** 63n - 1n;
