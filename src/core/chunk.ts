// The columnar shape the codec encodes: one series (measurement + tag set), many rows, one column per
// field. A row is one timestamp; a column holds the values of one field name and type for the rows
// where it is present. Pure data, no I/O.
import type { FieldType } from './point.js';

export type ColumnValues =
  | { type: 'float'; values: Float64Array }
  | { type: 'integer'; values: BigInt64Array }
  | { type: 'unsigned'; values: BigUint64Array }
  | { type: 'boolean'; values: Uint8Array }
  | { type: 'string'; values: string[] };

export type Column = ColumnValues & {
  name: string;
  /**
   * Which rows hold a value: one byte per row (1 = present), or null when every row has one.
   * `values` holds only the present values, in row order.
   */
  present: Uint8Array | null;
};

export interface RowGroup {
  /** Strictly increasing integer microseconds since the epoch. */
  timesUs: Float64Array;
  columns: Column[];
}

export function columnLength(column: Column): number {
  return column.values.length;
}

export type { FieldType };
