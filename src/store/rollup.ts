// Rollups as row groups: a rollup chunk is an ordinary chunk whose rows are windows (time = window
// start, aligned to the epoch in UTC) and whose columns hold each field's aggregation state
// (`<field>\u0000count`, `…\u0000sum`, …, and the times of the first and last value, so late points
// merge exactly). The codec compresses them like any other series, the ring
// stores them in the same table under the window length as `tier`, and the same compaction, cursors
// and eviction apply. The full state is stored (not just the configured functions) so windows merge
// exactly into coarser tiers and any function can be answered later.
import type { RowGroup } from '../core/chunk.js';
import { addValue, emptyState, mergeState, windowStartUs, type WindowState } from '../core/aggregate.js';
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
    const values = columnValues(col);
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
        if (!fields) into.set(start, (fields = new Map()));
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
    if (!target) into.set(coarse, (target = new Map()));
    for (const [field, state] of fields) {
      let t = target.get(field);
      if (!t) target.set(field, (t = emptyState()));
      mergeState(t, state);
    }
  }
}

/** Encodes window states as a row group (rows in window order). */
export function statesToGroup(windows: WindowStates): RowGroup {
  const builder = new SeriesBuilder();
  for (const start of [...windows.keys()].sort((a, b) => a - b)) {
    const fields: Record<string, FieldValue> = {};
    for (const [field, s] of windows.get(start)!) {
      if (s.count === 0) continue;
      const p = field + STATE_SEPARATOR;
      fields[p + 'count'] = BigInt(s.count);
      if (s.first !== null) {
        fields[p + 'first'] = s.first;
        fields[p + 'first_us'] = BigInt(s.firstUs);
      }
      if (s.last !== null) {
        fields[p + 'last'] = s.last;
        fields[p + 'last_us'] = BigInt(s.lastUs);
      }
      if (s.numeric > 0) {
        fields[p + 'n'] = BigInt(s.numeric);
        fields[p + 'sum'] = s.sum;
        fields[p + 'min'] = s.min;
        fields[p + 'max'] = s.max;
        fields[p + 'm2'] = s.m2;
      }
    }
    builder.add(start, fields);
  }
  return builder.build();
}

/** Decodes a rollup row group back into window states. */
export function groupToStates(group: RowGroup): WindowStates {
  const out: WindowStates = new Map();
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
      if (!fields) out.set(times[r], (fields = new Map()));
      let s = fields.get(field);
      if (!s) fields.set(field, (s = emptyState()));
      setStat(s, stat, value);
    }
  }
  for (const fields of out.values()) for (const s of fields.values()) if (s.numeric > 0) s.mean = s.sum / s.numeric;
  return out;
}

function setStat(s: WindowState, stat: Stat, value: FieldValue): void {
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
      s.firstUs = Number(value);
      break;
    case 'last_us':
      s.lastUs = Number(value);
      break;
  }
}
