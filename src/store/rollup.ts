// Rollups as row groups: a rollup chunk is an ordinary chunk whose rows are windows (time = window
// start, aligned to the epoch in UTC) and whose columns hold each field's aggregation state
// (`<field>\u0000count`, `…\u0000sum`, …, and the times of the first and last value, so late points
// merge exactly). The codec compresses them like any other series, the ring
// stores them in the same table under the window length as `tier`, and the same compaction, cursors
// and eviction apply. The full state is stored (not just the configured functions) so windows merge
// exactly into coarser tiers and any function can be answered later.
import type { Column, RowGroup } from '../core/chunk.js';
import { addValue, emptyState, mergeState, readFunction, windowStartUs, type AggregateFunction, type WindowState } from '../core/aggregate.js';
import type { FieldValue } from '../core/point.js';
import { SeriesBuilder, columnValues } from './builder.js';

export const STATE_SEPARATOR = '\u0000';
export const ROLLUP_STATS = ['count', 'n', 'sum', 'min', 'max', 'm2', 'first', 'last', 'first_us', 'last_us'] as const;
type Stat = (typeof ROLLUP_STATS)[number];

/** window start (µs) → field → state */
export type WindowStates = Map<number, Map<string, WindowState>>;

/** Adds every row of a raw group to the states of the windows it falls in (only `onlyStarts` if given). */
export function aggregateRaw(group: RowGroup, windowUs: number, into: WindowStates, onlyStarts?: ReadonlySet<number>): void {
  const times = group.timesUs;
  for (const col of group.columns) {
    const values: ArrayLike<FieldValue> = col.type === 'float' ? col.values : columnValues(col);
    let v = 0;
    let lastStart = NaN;
    let fields: Map<string, WindowState> | undefined;
    for (let r = 0; r < times.length; r++) {
      if (col.present && col.present[r] === 0) continue;
      const value = values[v++];
      const start = windowStartUs(times[r], windowUs);
      if (start !== lastStart) {
        lastStart = start;
        if (onlyStarts && !onlyStarts.has(start)) {
          fields = undefined;
          continue;
        }
        fields = into.get(start);
        if (!fields) into.set(start, (fields = new Map<string, WindowState>()));
      }
      if (!fields) continue;
      let state = fields.get(col.name);
      if (!state) fields.set(col.name, (state = emptyState()));
      addValue(state, times[r], value);
    }
  }
}

/** Merges the windows of a finer rollup group into coarser windows. */
export function aggregateRollup(group: RowGroup, windowUs: number, into: WindowStates, onlyStarts?: ReadonlySet<number>): void {
  for (const [start, fields] of groupToStates(group)) {
    const coarse = windowStartUs(start, windowUs);
    if (onlyStarts && !onlyStarts.has(coarse)) continue;
    let target = into.get(coarse);
    if (!target) into.set(coarse, (target = new Map<string, WindowState>()));
    for (const [field, state] of fields) {
      let t = target.get(field);
      if (!t) target.set(field, (t = emptyState()));
      mergeState(t, state);
    }
  }
}

/**
 * Encodes window states as a row group (rows in window order). Built column by column: this runs for
 * every window of every import and live pass, so it avoids per-row objects.
 */
export function statesToGroup(windows: WindowStates): RowGroup {
  const starts = [...windows.keys()].sort((a, b) => a - b);
  const rows = starts.length;
  const fieldOrder: string[] = [];
  const seen = new Set<string>();
  for (const start of starts) {
    for (const field of windows.get(start)!.keys()) {
      if (!seen.has(field)) {
        seen.add(field);
        fieldOrder.push(field);
      }
    }
  }
  const columns: Column[] = [];
  for (const field of fieldOrder) {
    const states: (WindowState | undefined)[] = starts.map((t) => {
      const s = windows.get(t)!.get(field);
      return s && s.count > 0 ? s : undefined;
    });
    const p = field + STATE_SEPARATOR;
    const all = (pick: (s: WindowState) => boolean) => states.map((s) => (s !== undefined && pick(s) ? 1 : 0));
    const withValue = all(() => true);
    const numeric = all((s) => s.numeric > 0);
    // Stored only where it differs from count (NaN values, or booleans and strings mixed in).
    const partlyNumeric = all((s) => s.numeric > 0 && s.numeric !== s.count);
    const presence = (mask: number[]): Uint8Array | null => (mask.every((m) => m === 1) ? null : Uint8Array.from(mask));
    const pick = <T>(mask: number[], f: (s: WindowState, row: number) => T): T[] => {
      const out: T[] = [];
      for (let r = 0; r < rows; r++) if (mask[r] === 1) out.push(f(states[r]!, r));
      return out;
    };
    const intCol = (name: string, mask: number[], f: (s: WindowState, row: number) => number): Column => ({
      name,
      type: 'integer',
      present: presence(mask),
      values: BigInt64Array.from(pick(mask, f), (v) => BigInt(v)),
    });
    const floatCol = (name: string, mask: number[], f: (s: WindowState) => number): Column => ({
      name,
      type: 'float',
      present: presence(mask),
      values: Float64Array.from(pick(mask, f)),
    });
    if (!withValue.includes(1)) continue;
    columns.push(intCol(p + 'count', withValue, (s) => s.count));
    columns.push(...valueColumns(p + 'first', withValue, pick(withValue, (s) => s.first!)));
    // Offsets from the window start: small, and constant for regular data, so they cost next to nothing.
    columns.push(intCol(p + 'first_us', withValue, (s, r) => s.firstUs - starts[r]));
    columns.push(...valueColumns(p + 'last', withValue, pick(withValue, (s) => s.last!)));
    columns.push(intCol(p + 'last_us', withValue, (s, r) => s.lastUs - starts[r]));
    if (numeric.includes(1)) {
      if (partlyNumeric.includes(1)) columns.push(intCol(p + 'n', partlyNumeric, (s) => s.numeric));
      columns.push(floatCol(p + 'sum', numeric, (s) => s.sum));
      columns.push(floatCol(p + 'min', numeric, (s) => s.min));
      columns.push(floatCol(p + 'max', numeric, (s) => s.max));
      columns.push(floatCol(p + 'm2', numeric, (s) => s.m2));
    }
  }
  return { timesUs: Float64Array.from(starts), columns };
}

/** first/last keep the field's own type; a field whose type changed within a window splits by type. */
function valueColumns(name: string, mask: number[], values: FieldValue[]): Column[] {
  if (values.every((v) => typeof v === 'number')) {
    return [{ name, type: 'float', present: mask.every((m) => m === 1) ? null : Uint8Array.from(mask), values: Float64Array.from(values) }];
  }
  const builder = new SeriesBuilder();
  let v = 0;
  for (let r = 0; r < mask.length; r++) builder.add(r, mask[r] === 1 ? { [name]: values[v++] } : {});
  return builder.build().columns;
}

/** Decodes a rollup row group back into window states. */
export function groupToStates(group: RowGroup): WindowStates {
  const out: WindowStates = new Map();
  const withSum = new WeakSet<WindowState>();
  const times = group.timesUs;
  for (const col of group.columns) {
    const sep = col.name.lastIndexOf(STATE_SEPARATOR);
    if (sep < 0) continue;
    const field = col.name.slice(0, sep);
    const stat = col.name.slice(sep + 1) as Stat;
    const values = columnValues(col);
    let v = 0;
    for (let r = 0; r < times.length; r++) {
      if (col.present && col.present[r] === 0) continue;
      const value = values[v++];
      let fields = out.get(times[r]);
      if (!fields) out.set(times[r], (fields = new Map<string, WindowState>()));
      let s = fields.get(field);
      if (!s) {
        s = emptyState();
        s.numeric = -1;
        fields.set(field, s);
      }
      if (stat === 'sum') withSum.add(s);
      setStat(s, stat, value, times[r]);
    }
  }
  for (const fields of out.values()) {
    for (const s of fields.values()) {
      // No `n` column: every value was numeric if the window has a sum, none if not.
      if (s.numeric === -1) s.numeric = withSum.has(s) ? s.count : 0;
      if (s.numeric > 0) s.mean = s.sum / s.numeric;
    }
  }
  return out;
}

function setStat(s: WindowState, stat: Stat, value: FieldValue, startUs: number): void {
  switch (stat) {
    case 'count':
      s.count = Number(value);
      break;
    case 'n':
      s.numeric = Number(value);
      break;
    case 'sum':
      s.sum = value as number;
      break;
    case 'min':
      s.min = value as number;
      break;
    case 'max':
      s.max = value as number;
      break;
    case 'm2':
      s.m2 = value as number;
      break;
    case 'first':
      s.first = value;
      break;
    case 'last':
      s.last = value;
      break;
    case 'first_us':
      s.firstUs = startUs + Number(value);
      break;
    case 'last_us':
      s.lastUs = startUs + Number(value);
      break;
  }
}

/**
 * A rollup group as the rows an output ships: one row per window, one field per source field and
 * function, named by `fieldName` (default `<field>_<fn>`, e.g. `temperature_mean`).
 */
export function rollupRows(
  group: RowGroup,
  functions: readonly AggregateFunction[],
  fieldName: (field: string, fn: AggregateFunction) => string = (field, fn) => `${field}_${fn}`,
): { timeUs: number; fields: [string, FieldValue][] }[] {
  const rows: { timeUs: number; fields: [string, FieldValue][] }[] = [];
  for (const [start, fields] of [...groupToStates(group)].sort((a, b) => a[0] - b[0])) {
    const out: [string, FieldValue][] = [];
    for (const [field, state] of fields) {
      for (const fn of functions) {
        const v = readFunction(state, fn);
        if (v !== null) out.push([fieldName(field, fn), fn === 'count' ? BigInt(v as number) : v]);
      }
    }
    if (out.length > 0) rows.push({ timeUs: start, fields: out });
  }
  return rows;
}
