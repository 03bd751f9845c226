// Accumulates points of one series into a RowGroup (the codec's input). Also merges already
// encoded groups, which is how overlapping chunks are de-duplicated on read and in compaction:
// rows with the same timestamp merge field by field, the later write winning (InfluxDB semantics).
import type { Column, RowGroup } from '../core/chunk.js';
import { Unsigned, fieldType, type FieldType, type FieldValue, type Fields } from '../core/point.js';

interface ColumnBuilder {
  name: string;
  type: FieldType;
  /** Arrival row index of each value, increasing. */
  rows: number[];
  values: FieldValue[];
}

export class SeriesBuilder {
  private times: number[] = [];
  private ordered = true;
  private readonly columns = new Map<string, ColumnBuilder>();
  /**
   * Columns in field order. A field first seen after others is placed right after the field that
   * preceded it in its point, so export reproduces the writer's field order even when early rows lack it.
   */
  private order: ColumnBuilder[] = [];
  private valueCount = 0;

  get rows(): number {
    return this.times.length;
  }

  get values(): number {
    return this.valueCount;
  }

  get firstUs(): number {
    return this.times[0] ?? NaN;
  }

  add(timeUs: number, fields: Fields): void {
    const row = this.times.length;
    if (row > 0 && timeUs <= this.times[row - 1]) this.ordered = false;
    this.times.push(timeUs);
    let previous: ColumnBuilder | undefined;
    for (const name in fields) {
      const value = fields[name];
      const col = this.column(name, fieldType(value), previous);
      previous = col;
      col.rows.push(row);
      col.values.push(value);
      this.valueCount++;
    }
  }

  /** Appends every row of an encoded group (after everything added so far: it wins on equal times). */
  addGroup(group: RowGroup): void {
    const base = this.times.length;
    const times = group.timesUs;
    for (let i = 0; i < times.length; i++) {
      if (base + i > 0 && times[i] <= (i === 0 ? this.times[base - 1] : times[i - 1])) this.ordered = false;
      this.times.push(times[i]);
    }
    let previous: ColumnBuilder | undefined;
    for (const col of group.columns) {
      const target = this.column(col.name, col.type, previous);
      previous = target;
      const values = columnValues(col);
      let v = 0;
      for (let r = 0; r < times.length; r++) {
        if (col.present && col.present[r] === 0) continue;
        target.rows.push(base + r);
        target.values.push(values[v++]);
      }
      this.valueCount += values.length;
    }
  }

  /** Builds the sorted, de-duplicated group and resets the builder. */
  build(): RowGroup {
    const group = this.ordered ? this.buildOrdered() : this.buildSorted();
    this.times = [];
    this.ordered = true;
    this.columns.clear();
    this.order = [];
    this.valueCount = 0;
    return group;
  }

  private column(name: string, type: FieldType, after: ColumnBuilder | undefined): ColumnBuilder {
    const key = type + '\u0000' + name;
    let col = this.columns.get(key);
    if (!col) {
      col = { name, type, rows: [], values: [] };
      this.columns.set(key, col);
      this.order.splice(after ? this.order.indexOf(after) + 1 : 0, 0, col);
    }
    return col;
  }

  private buildOrdered(): RowGroup {
    const rowCount = this.times.length;
    const columns: Column[] = [];
    for (const col of this.order) {
      let present: Uint8Array | null = null;
      if (col.rows.length !== rowCount) {
        present = new Uint8Array(rowCount);
        for (const r of col.rows) present[r] = 1;
      }
      columns.push(makeColumn(col.name, col.type, col.values, present));
    }
    return { timesUs: Float64Array.from(this.times), columns };
  }

  private buildSorted(): RowGroup {
    const arrival = this.times;
    const order = Array.from(arrival.keys()).sort((a, b) => arrival[a] - arrival[b] || a - b);
    const newRowOf = new Int32Array(arrival.length);
    const times: number[] = [];
    for (const r of order) {
      const t = arrival[r];
      if (times.length === 0 || times[times.length - 1] !== t) times.push(t);
      newRowOf[r] = times.length - 1;
    }
    const rowCount = times.length;
    const columns: Column[] = [];
    for (const col of this.order) {
      // Later arrivals overwrite earlier ones at the same new row: last write wins.
      const slot = new Array<FieldValue | undefined>(rowCount);
      let filled = 0;
      for (let i = 0; i < col.rows.length; i++) {
        const nr = newRowOf[col.rows[i]];
        if (slot[nr] === undefined) filled++;
        slot[nr] = col.values[i];
      }
      const present = filled === rowCount ? null : new Uint8Array(rowCount);
      const values: FieldValue[] = [];
      for (let r = 0; r < rowCount; r++) {
        const v = slot[r];
        if (v === undefined) continue;
        if (present) present[r] = 1;
        values.push(v);
      }
      columns.push(makeColumn(col.name, col.type, values, present));
    }
    return { timesUs: Float64Array.from(times), columns };
  }
}

function makeColumn(name: string, type: FieldType, values: FieldValue[], present: Uint8Array | null): Column {
  switch (type) {
    case 'float':
      return { name, type, present, values: Float64Array.from(values as number[]) };
    case 'integer':
      return { name, type, present, values: BigInt64Array.from(values as bigint[]) };
    case 'unsigned':
      return { name, type, present, values: BigUint64Array.from((values as Unsigned[]).map((u) => u.value)) };
    case 'boolean':
      return { name, type, present, values: Uint8Array.from((values as boolean[]).map((b) => (b ? 1 : 0))) };
    case 'string':
      return { name, type, present, values: values as string[] };
  }
}

/** The values of a column as point field values (unsigned wrapped, booleans as booleans). */
export function columnValues(col: Column): FieldValue[] {
  switch (col.type) {
    case 'float':
      return Array.from(col.values);
    case 'integer':
      return Array.from(col.values);
    case 'unsigned':
      return Array.from(col.values, (v) => new Unsigned(v));
    case 'boolean':
      return Array.from(col.values, (v) => v === 1);
    case 'string':
      return col.values;
  }
}

/** Rows [start, end) of a group, for splitting a large group into chunks. */
export function sliceGroup(group: RowGroup, start: number, endRow: number): RowGroup {
  const end = Math.min(endRow, group.timesUs.length);
  if (start === 0 && end === group.timesUs.length) return group;
  const columns: Column[] = [];
  for (const col of group.columns) {
    let from = start;
    let to = end;
    let present: Uint8Array | null = null;
    if (col.present) {
      from = 0;
      for (let r = 0; r < start; r++) from += col.present[r];
      to = from;
      for (let r = start; r < end; r++) to += col.present[r];
      if (to === from) continue;
      present = to - from === end - start ? null : col.present.slice(start, end);
    }
    columns.push({ ...col, present, values: col.values.slice(from, to) } as Column);
  }
  return { timesUs: group.timesUs.slice(start, end), columns };
}

export function groupValueCount(group: RowGroup): number {
  let n = 0;
  for (const col of group.columns) n += col.values.length;
  return n;
}
