// Answers `sluice query`: raw rows, or windows aggregated on the fly from raw data.
import { parseSeriesKey } from '../core/line-protocol.js';
import { addValue, emptyState, readFunction, windowStartUs, type AggregateFunction, type WindowState } from '../core/aggregate.js';
import type { FieldValue, Tags } from '../core/point.js';
import { groupRows } from '../cli/rows.js';
import type { SqliteRing } from '../store/ring.js';

export interface QueryOptions {
  measurement: string;
  field?: string;
  fromUs?: number;
  toUs?: number;
  /** Window length; absent with functions = one window over everything. */
  everyUs?: number;
  functions?: AggregateFunction[];
}

export interface RawRow {
  timeUs: number;
  tags: Tags;
  field: string;
  value: FieldValue;
}

export interface AggregateRow {
  timeUs: number;
  tags: Tags;
  field: string;
  values: Partial<Record<AggregateFunction, FieldValue | null>>;
}

export function* queryRaw(ring: SqliteRing, opts: QueryOptions): Generator<RawRow> {
  const fields = opts.field === undefined ? undefined : new Set([opts.field]);
  for (const s of ring.scan({ measurement: opts.measurement, fromUs: opts.fromUs, toUs: opts.toUs, fields })) {
    const { tags } = parseSeriesKey(s.key);
    for (const row of groupRows(s.group)) {
      for (const [field, value] of row.fields) {
        if (opts.field === undefined || field === opts.field) yield { timeUs: row.timeUs, tags, field, value };
      }
    }
  }
}

/** Aggregated rows ordered by series, then field, then window. */
export function* queryAggregate(ring: SqliteRing, opts: QueryOptions & { functions: AggregateFunction[] }): Generator<AggregateRow> {
  const fields = opts.field === undefined ? undefined : new Set([opts.field]);
  let currentSeries = -1;
  let tags: Tags = {};
  // field → window start → state; windows of one series arrive in time order, so maps stay small
  // relative to the answer itself.
  let perField = new Map<string, Map<number, WindowState>>();
  const flush = function* (): Generator<AggregateRow> {
    for (const [field, windows] of perField) {
      for (const [start, state] of [...windows].sort((a, b) => a[0] - b[0])) {
        const values: AggregateRow['values'] = {};
        for (const fn of opts.functions) values[fn] = readFunction(state, fn);
        yield { timeUs: opts.everyUs ? start : (opts.fromUs ?? state.firstUs), tags, field, values };
      }
    }
    perField = new Map();
  };
  for (const s of ring.scan({ measurement: opts.measurement, fromUs: opts.fromUs, toUs: opts.toUs, fields })) {
    if (s.seriesId !== currentSeries) {
      yield* flush();
      currentSeries = s.seriesId;
      tags = parseSeriesKey(s.key).tags;
    }
    for (const row of groupRows(s.group)) {
      const start = opts.everyUs ? windowStartUs(row.timeUs, opts.everyUs) : 0;
      for (const [field, value] of row.fields) {
        if (opts.field !== undefined && field !== opts.field) continue;
        let windows = perField.get(field);
        if (!windows) perField.set(field, (windows = new Map<number, WindowState>()));
        let state = windows.get(start);
        if (!state) windows.set(start, (state = emptyState()));
        addValue(state, row.timeUs, value);
      }
    }
  }
  yield* flush();
}
