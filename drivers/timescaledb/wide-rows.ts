// A batch in the wide layout: its points grouped by table, checked against the tables' columns, and
// turned into the array parameters of one INSERT ... SELECT FROM unnest(...) per table. One row per
// point: `time`, a text column per tag ('' where the point has no such tag), a typed column per field.
import type { Column } from '../../src/core/chunk.js';
import type { OutputBatch } from '../../src/core/component.js';
import { parseSeriesKey } from '../../src/core/line-protocol.js';
import { INT64_MAX, type FieldType } from '../../src/core/point.js';
import { quoteElement } from './rows.js';

/** The column type a new field gets (information_schema's spelling). */
export const COLUMN_TYPE: Readonly<Record<FieldType, string>> = {
  float: 'double precision',
  integer: 'bigint',
  // numeric holds every unsigned 64-bit value exactly; bigint stops at 2^63 - 1.
  unsigned: 'numeric',
  boolean: 'boolean',
  string: 'text',
};

const ARRAY_TYPE: Readonly<Record<string, string>> = {
  'double precision': 'float8[]',
  bigint: 'int8[]',
  numeric: 'numeric[]',
  boolean: 'bool[]',
  text: 'text[]',
};

/** PostgreSQL cuts identifiers at 63 bytes; a longer name would silently become another one. */
export const MAX_IDENTIFIER_BYTES = 63;

export interface TablePart {
  tags: Record<string, string>;
  columns: readonly Column[];
  timesUs: ArrayLike<number>;
  /** Index in the batch of the part's first point. */
  firstIndex: number;
}

export interface TablePlan {
  measurement: string;
  table: string;
  parts: TablePart[];
}

export function planBatch(batch: OutputBatch, tableOf: (measurement: string) => string): Map<string, TablePlan> {
  const plans = new Map<string, TablePlan>();
  let index = 0;
  for (const part of batch.parts) {
    const series = parseSeriesKey(part.seriesKey);
    const table = tableOf(series.measurement);
    let plan = plans.get(table);
    if (!plan) plans.set(table, (plan = { measurement: series.measurement, table, parts: [] }));
    plan.parts.push({ tags: series.tags, columns: part.group.columns, timesUs: part.group.timesUs, firstIndex: index });
    index += part.group.timesUs.length;
  }
  return plans;
}

/** What a table has: column name → information_schema data_type, and which columns are tags. */
export interface TableColumns {
  columns: Map<string, string>;
  tags: Set<string>;
}

export interface PlanCheck {
  /** Rejected point → why. */
  rejected: Map<number, string>;
  /** Columns to add (tags as text, fields by type), in first-seen order. */
  newTags: string[];
  newFields: Map<string, string>;
}

function tooLong(name: string): boolean {
  return Buffer.byteLength(name) > MAX_IDENTIFIER_BYTES;
}

/** Whether a value of `type` fits a column of `columnType` (an unsigned in bigint: checked per value). */
function fits(type: FieldType, columnType: string): boolean {
  if (COLUMN_TYPE[type] === columnType) return true;
  return (type === 'integer' && columnType === 'numeric') || (type === 'unsigned' && columnType === 'bigint');
}

function rejectRows(part: TablePart, col: Column | null, why: string, out: Map<number, string>): void {
  for (let r = 0; r < part.timesUs.length; r++) {
    if (col && col.present !== null && col.present[r] !== 1) continue;
    if (!out.has(part.firstIndex + r)) out.set(part.firstIndex + r, why);
  }
}

/**
 * Checks a table's points against its columns (`have`, empty for a table not created yet): the points
 * that cannot be stored, and the columns to add for the rest (none when `addColumns` is false: points
 * that need one are rejected).
 */
export function checkPlan(plan: TablePlan, have: TableColumns, addColumns: boolean): PlanCheck {
  const rejected = new Map<number, string>();
  const newTags: string[] = [];
  const newFields = new Map<string, string>();
  const t = plan.table;
  for (const part of plan.parts) {
    if (tooLong(t)) {
      rejectRows(part, null, `table name ${JSON.stringify(t)} is longer than ${MAX_IDENTIFIER_BYTES} bytes`, rejected);
      continue;
    }
    for (const tag of Object.keys(part.tags)) {
      let why: string | null = null;
      if (tag === 'time') why = 'a tag named "time" collides with the time column';
      else if (tooLong(tag)) why = `tag ${JSON.stringify(tag)} is longer than ${MAX_IDENTIFIER_BYTES} bytes`;
      else if (have.columns.has(tag) && !have.tags.has(tag)) why = `tag ${JSON.stringify(tag)} is a field column (${have.columns.get(tag)}) of table ${t}`;
      else if (newFields.has(tag)) why = `${JSON.stringify(tag)} is both a tag and a field in table ${t}`;
      else if (!have.tags.has(tag) && !addColumns) why = `table ${t} has no column for tag ${JSON.stringify(tag)} (new_columns: reject)`;
      if (why) rejectRows(part, null, why, rejected);
      else if (!have.tags.has(tag) && !newTags.includes(tag)) newTags.push(tag);
    }
    for (const col of part.columns) {
      const name = col.name;
      const wanted = COLUMN_TYPE[col.type];
      const existing = have.columns.get(name) ?? newFields.get(name);
      let why: string | null = null;
      if (name === 'time') why = 'a field named "time" collides with the time column';
      else if (tooLong(name)) why = `field ${JSON.stringify(name)} is longer than ${MAX_IDENTIFIER_BYTES} bytes`;
      else if (have.tags.has(name) || newTags.includes(name)) why = `field ${JSON.stringify(name)} is a tag column of table ${t}`;
      else if (existing !== undefined && !fits(col.type, existing)) {
        why = `field ${JSON.stringify(name)} is ${col.type} (${wanted}) but column ${name} of table ${t} is ${existing}`;
      } else if (existing === undefined && !addColumns) why = `table ${t} has no column for field ${JSON.stringify(name)} (new_columns: reject)`;
      if (why) {
        rejectRows(part, col, why, rejected);
        continue;
      }
      if (existing === undefined) newFields.set(name, wanted);
      if (col.type === 'unsigned' && existing === 'bigint') {
        let i = 0;
        for (let r = 0; r < part.timesUs.length; r++) {
          if (col.present !== null && col.present[r] !== 1) continue;
          if (col.values[i++] > INT64_MAX && !rejected.has(part.firstIndex + r)) {
            rejected.set(part.firstIndex + r, `field ${JSON.stringify(name)} has an unsigned value beyond 2^63 - 1 but column ${name} of table ${t} is bigint`);
          }
        }
      }
    }
  }
  return { rejected, newTags, newFields };
}

export interface WideRows {
  /** Quoted column names, in the order of params: "time", the tag columns, the field columns. */
  columns: string[];
  /** The unnest casts of params (int8[] for time). */
  types: string[];
  /** How many leading columns after "time" are tags (the key). */
  tagCount: number;
  params: string[];
  rows: number;
  bytes: number;
  minTimeUs: number;
  maxTimeUs: number;
}

export function quoteIdent(name: string): string {
  return '"' + name.replace(/"/g, '""') + '"';
}

function float(v: number): string {
  if (v !== v) return 'NaN';
  if (v === Infinity) return 'Infinity';
  if (v === -Infinity) return '-Infinity';
  return Object.is(v, -0) ? '-0' : String(v);
}

function element(col: Column, i: number): string {
  switch (col.type) {
    case 'float':
      return float(col.values[i]);
    case 'integer':
    case 'unsigned':
      return col.values[i].toString();
    case 'boolean':
      return col.values[i] ? 't' : 'f';
    case 'string':
      return quoteElement(col.values[i]);
  }
}

/**
 * The rows of a checked plan, skipping rejected points. `have` is the table as it is now (after any
 * columns were added): every tag column is written (so the row-exact guard can compare the whole key).
 */
export function wideRows(plan: TablePlan, have: TableColumns, rejected: ReadonlyMap<number, string>): WideRows {
  const tagNames = [...have.tags].sort();
  const fieldNames: string[] = [];
  const fieldSlot = new Map<string, number>();
  for (const part of plan.parts) {
    for (const col of part.columns) {
      if (!fieldSlot.has(col.name) && have.columns.has(col.name) && !have.tags.has(col.name)) {
        fieldSlot.set(col.name, fieldNames.length);
        fieldNames.push(col.name);
      }
    }
  }
  const time: string[] = [];
  const tagArrays = tagNames.map(() => [] as string[]);
  const fieldArrays = fieldNames.map(() => [] as string[]);
  let minTimeUs = Infinity;
  let maxTimeUs = -Infinity;
  for (const part of plan.parts) {
    const n = part.timesUs.length;
    const keep: number[] = [];
    for (let r = 0; r < n; r++) if (!rejected.has(part.firstIndex + r)) keep.push(r);
    if (keep.length === 0) continue;
    const tagValues = tagNames.map((k) => quoteElement(part.tags[k] ?? ''));
    const rowValues = fieldNames.map(() => new Array<string>(n).fill('NULL'));
    for (const col of part.columns) {
      const slot = fieldSlot.get(col.name);
      if (slot === undefined) continue;
      let i = 0;
      for (let r = 0; r < n; r++) {
        if (col.present !== null && col.present[r] !== 1) continue;
        rowValues[slot][r] = element(col, i++);
      }
    }
    for (const r of keep) {
      const t = part.timesUs[r];
      if (t < minTimeUs) minTimeUs = t;
      if (t > maxTimeUs) maxTimeUs = t;
      time.push(String(t));
      for (let k = 0; k < tagNames.length; k++) tagArrays[k].push(tagValues[k]);
      for (let f = 0; f < fieldNames.length; f++) fieldArrays[f].push(rowValues[f][r]);
    }
  }
  const params = [time, ...tagArrays, ...fieldArrays].map((a) => '{' + a.join(',') + '}');
  let bytes = 0;
  for (const p of params) bytes += p.length;
  return {
    columns: ['time', ...tagNames, ...fieldNames].map(quoteIdent),
    types: ['int8[]', ...tagNames.map(() => 'text[]'), ...fieldNames.map((f) => ARRAY_TYPE[have.columns.get(f)!] ?? 'text[]')],
    tagCount: tagNames.length,
    params,
    rows: time.length,
    bytes,
    minTimeUs,
    maxTimeUs,
  };
}

const TIME = `timestamptz 'epoch' + u.c0 * interval '1 microsecond'`;

/** The INSERT of some rows; `rowExact` adds the anti-join on the key (target.ts), with two more parameters bounding the times. */
export function wideInsertSql(quotedTable: string, rows: WideRows, rowExact: boolean): string {
  const u = rows.columns.map((_, i) => `c${i}`);
  const select = [TIME, ...u.slice(1).map((c) => `u.${c}`)].join(', ');
  const from = `FROM unnest(${rows.types.map((t, i) => `$${i + 1}::${t}`).join(', ')}) AS u(${u.join(', ')})`;
  let where = '';
  if (rowExact) {
    const n = rows.params.length;
    const key = rows.columns.slice(1, 1 + rows.tagCount).map((c, i) => `x.${c} = u.c${i + 1}`);
    where = `\nWHERE NOT EXISTS (SELECT 1 FROM ${quotedTable} AS x WHERE ${[...key, `x."time" = ${TIME}`].join(' AND ')} AND x."time" BETWEEN $${n + 1}::timestamptz AND $${n + 2}::timestamptz)`;
  }
  return `INSERT INTO ${quotedTable} (${rows.columns.join(', ')})\nSELECT ${select}\n${from}${where}\nON CONFLICT DO NOTHING`;
}
