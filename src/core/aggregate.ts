// Window aggregation: the state kept per series, field and window, and the functions read from it.
// Pure. States merge (parallel Welford for stddev), so rollups can be combined from partial windows.
import { Unsigned, type FieldValue } from './point.js';

export const AGGREGATE_FUNCTIONS = ['mean', 'min', 'max', 'count', 'sum', 'first', 'last', 'stddev'] as const;
export type AggregateFunction = (typeof AGGREGATE_FUNCTIONS)[number];

export interface WindowState {
  count: number;
  /** Count of numeric values (floats, integers, unsigned, booleans as 0/1); mean/min/max/sum use these. */
  numeric: number;
  sum: number;
  min: number;
  max: number;
  mean: number;
  /** Sum of squared deviations from the mean (Welford). */
  m2: number;
  firstUs: number;
  first: FieldValue | null;
  lastUs: number;
  last: FieldValue | null;
}

export function emptyState(): WindowState {
  return { count: 0, numeric: 0, sum: 0, min: Infinity, max: -Infinity, mean: 0, m2: 0, firstUs: Infinity, first: null, lastUs: -Infinity, last: null };
}

export function numericValue(value: FieldValue): number | null {
  switch (typeof value) {
    case 'number':
      return value;
    case 'bigint':
      return Number(value);
    case 'boolean':
      return value ? 1 : 0;
    case 'string':
      return null;
    default:
      return value instanceof Unsigned ? Number(value.value) : null;
  }
}

export function addValue(state: WindowState, timeUs: number, value: FieldValue): void {
  state.count++;
  if (timeUs < state.firstUs) {
    state.firstUs = timeUs;
    state.first = value;
  }
  if (timeUs >= state.lastUs) {
    state.lastUs = timeUs;
    state.last = value;
  }
  const x = numericValue(value);
  if (x === null || Number.isNaN(x)) return;
  state.numeric++;
  state.sum += x;
  if (x < state.min) state.min = x;
  if (x > state.max) state.max = x;
  const delta = x - state.mean;
  state.mean += delta / state.numeric;
  state.m2 += delta * (x - state.mean);
}

export function mergeState(into: WindowState, from: WindowState): void {
  if (from.count === 0) return;
  into.count += from.count;
  if (from.firstUs < into.firstUs) {
    into.firstUs = from.firstUs;
    into.first = from.first;
  }
  if (from.lastUs >= into.lastUs) {
    into.lastUs = from.lastUs;
    into.last = from.last;
  }
  if (from.numeric === 0) return;
  const n = into.numeric + from.numeric;
  const delta = from.mean - into.mean;
  into.m2 += from.m2 + (delta * delta * into.numeric * from.numeric) / n;
  into.mean += (delta * from.numeric) / n;
  into.numeric = n;
  into.sum += from.sum;
  into.min = Math.min(into.min, from.min);
  into.max = Math.max(into.max, from.max);
}

/** The value of one function over a window; null where it has no meaning (mean of strings). */
export function readFunction(state: WindowState, fn: AggregateFunction): FieldValue | null {
  switch (fn) {
    case 'count':
      return state.count;
    case 'first':
      return state.first;
    case 'last':
      return state.last;
    case 'mean':
      return state.numeric ? state.sum / state.numeric : null;
    case 'sum':
      return state.numeric ? state.sum : null;
    case 'min':
      return state.numeric ? state.min : null;
    case 'max':
      return state.numeric ? state.max : null;
    case 'stddev':
      // Sample standard deviation, as InfluxDB's stddev().
      return state.numeric > 1 ? Math.sqrt(state.m2 / (state.numeric - 1)) : null;
  }
}

/** Start of the window holding `timeUs`, windows aligned to the Unix epoch (UTC). */
export function windowStartUs(timeUs: number, everyUs: number): number {
  return Math.floor(timeUs / everyUs) * everyUs;
}
