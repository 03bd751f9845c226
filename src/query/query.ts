// Answers `sluice query`: raw rows, or windows aggregated on the fly from raw data.
import { parseSeriesKey } from '../core/line-protocol.js';
import { addValue, emptyState, readFunction, windowStartUs, type AggregateFunction, type WindowState } from '../core/aggregate.js';
import type { FieldValue, Tags } from '../core/point.js';
import { groupRows } from './rows.js';
import type { StoreReader } from '../store/roles.js';
import { ROLLUP_STATS, STATE_SEPARATOR, aggregateRaw, groupToStates, type WindowStates } from '../store/rollup.js';

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

export function* queryRaw(ring: StoreReader, opts: QueryOptions): Generator<RawRow> {
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

/**
 * Aggregated rows ordered by series, then field, then window. When `everyUs` is a stored rollup
 * window, whole windows inside the range come from the rollups (also where raw data has already been
 * replaced by them) and only partial edge windows and windows still waiting for their rollup are
 * computed from raw data; the answer is the same either way.
 */
export function* queryAggregate(ring: StoreReader, opts: QueryOptions & { functions: AggregateFunction[] }): Generator<AggregateRow> {
  const tierMs = opts.everyUs !== undefined && opts.everyUs % 1000 === 0 ? opts.everyUs / 1000 : undefined;
  if (tierMs !== undefined && ring.storedTiers().includes(tierMs)) {
    yield* queryRollups(ring, opts, tierMs);
    return;
  }
  yield* queryAggregateRaw(ring, opts);
}

function* queryRollups(ring: StoreReader, opts: QueryOptions & { functions: AggregateFunction[] }, tierMs: number): Generator<AggregateRow> {
  const windowUs = tierMs * 1000;
  const from = opts.fromUs ?? -Number.MAX_SAFE_INTEGER;
  const to = opts.toUs ?? Number.MAX_SAFE_INTEGER;
  const alignedFrom = opts.fromUs === undefined ? from : Math.ceil(from / windowUs) * windowUs;
  const alignedTo = opts.toUs === undefined ? to : Math.floor(to / windowUs) * windowUs;
  const statFields = opts.field === undefined ? undefined : new Set(ROLLUP_STATS.map((st) => opts.field + STATE_SEPARATOR + st));
  const rawFields = opts.field === undefined ? undefined : new Set([opts.field]);
  for (const series of ring.listSeries(opts.measurement)) {
    const windows: WindowStates = new Map();
    if (alignedFrom < alignedTo) {
      // Windows written since the last rollup pass are computed from raw data instead.
      const dirty = ring.dirtyRanges(series.id, tierMs, alignedFrom, alignedTo);
      const isDirty = (start: number) => dirty.some(([lo, hi]) => start >= lo && start <= hi);
      for (const g of ring.seriesGroups(series.id, tierMs, alignedFrom, alignedTo, statFields)) {
        for (const [start, fields] of groupToStates(g)) if (!isDirty(start)) windows.set(start, fields);
      }
      for (const [lo, hi] of dirty) {
        for (const g of ring.seriesGroups(series.id, 0, lo, Math.min(hi + windowUs, alignedTo), rawFields)) aggregateRaw(g, windowUs, windows);
      }
    }
    // Partial windows at the edges of the range come from raw data.
    const edges: [number, number][] = alignedFrom < alignedTo ? [[from, alignedFrom], [alignedTo, to]] : [[from, to]];
    for (const [lo, hi] of edges) {
      if (lo >= hi) continue;
      for (const g of ring.seriesGroups(series.id, 0, lo, hi, rawFields)) aggregateRaw(g, windowUs, windows);
    }
    if (windows.size === 0) continue;
    const { tags } = parseSeriesKey(series.key);
    const byField = new Map<string, [number, WindowState][]>();
    for (const [start, fields] of windows) {
      for (const [field, state] of fields) {
        if (opts.field !== undefined && field !== opts.field) continue;
        let list = byField.get(field);
        if (!list) byField.set(field, (list = []));
        list.push([start, state]);
      }
    }
    for (const [field, list] of [...byField].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))) {
      for (const [start, state] of list.sort((a, b) => a[0] - b[0])) {
        const values: AggregateRow['values'] = {};
        for (const fn of opts.functions) values[fn] = readFunction(state, fn);
        yield { timeUs: start, tags, field, values };
      }
    }
  }
}

export function* queryAggregateRaw(ring: StoreReader, opts: QueryOptions & { functions: AggregateFunction[] }): Generator<AggregateRow> {
  const fields = opts.field === undefined ? undefined : new Set([opts.field]);
  let currentSeries = -1;
  let tags: Tags = {};
  // field → window start → state; windows of one series arrive in time order, so maps stay small
  // relative to the answer itself.
  let perField = new Map<string, Map<number, WindowState>>();
  const flush = function* (): Generator<AggregateRow> {
    for (const [field, windows] of [...perField].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))) {
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
