// Recent data for the status page: a few series of one measurement, thinned to what a chart can show,
// and the latest row of each. Read from the ring (committed data), so the page shows what was kept.
import type { Column } from '../core/chunk.js';
import { parseSeriesKey } from '../core/line-protocol.js';
import type { StoreReader } from '../store/roles.js';

export interface SeriesQuery {
  measurement: string;
  /** A numeric field; without one, the first float field found (else integer, else boolean). */
  field?: string;
  sinceMs: number;
  untilMs: number;
  maxSeries: number;
  /** Points per series after thinning (bucket means). */
  maxPoints: number;
}

export interface SeriesLine {
  key: string;
  tags: Record<string, string>;
  /** [time_ms, value] pairs, oldest first. */
  points: [number, number][];
}

export interface SeriesResult {
  measurement: string;
  field: string | null;
  /** Numeric fields seen in the series read, for the page's field selector. */
  fields: string[];
  series: SeriesLine[];
  /** More series matched than were returned. */
  truncated: boolean;
}

type JsonValue = number | string | boolean | null;

export interface LatestRow {
  key: string;
  tags: Record<string, string>;
  time_ms: number;
  fields: Record<string, JsonValue>;
}

function isNumeric(c: Column): boolean {
  return c.type !== 'string';
}

/** Column values as numbers (booleans 0/1), indexed by row; NaN where the row has none. */
function numericByRow(c: Column, rows: number): Float64Array {
  const out = new Float64Array(rows).fill(NaN);
  let next = 0;
  for (let r = 0; r < rows; r++) {
    if (c.present && c.present[r] === 0) continue;
    out[r] = Number(c.values[next++]);
  }
  return out;
}

function jsonValue(c: Column, index: number): JsonValue {
  const v = c.values[index];
  if (c.type === 'boolean') return v === 1;
  // JSON has no NaN, Infinity or integers beyond 2^53: those travel as strings, as in `query --json`.
  if (typeof v === 'number') return Number.isFinite(v) ? v : String(v);
  if (typeof v === 'bigint') return Number.isSafeInteger(Number(v)) ? Number(v) : v.toString();
  return v.length > 80 ? `${v.slice(0, 77)}...` : v;
}

export function readSeries(ring: StoreReader, q: SeriesQuery): SeriesResult {
  const fields = new Set<string>();
  let field = q.field ?? null;
  const bySeries = new Map<number, { key: string; times: number[]; values: number[] }>();
  let truncated = false;
  // Every column is decoded, not just `field`: the page lists the other fields to choose from.
  const scan = ring.scan({ measurement: q.measurement, fromUs: q.sinceMs * 1000, toUs: q.untilMs * 1000 });
  for (const g of scan) {
    let line = bySeries.get(g.seriesId);
    if (!line) {
      if (bySeries.size >= q.maxSeries) {
        truncated = true;
        break;
      }
      line = { key: g.key, times: [], values: [] };
      bySeries.set(g.seriesId, line);
    }
    for (const c of g.group.columns) if (isNumeric(c)) fields.add(c.name);
    // A chart of a float says more than one of a counter, and that more than one of a flag.
    field ??= (['float', 'integer', 'unsigned', 'boolean'] as const).map((t) => g.group.columns.find((c) => c.type === t)).find((c) => c)?.name ?? null;
    const col = g.group.columns.find((c) => c.name === field && isNumeric(c));
    if (!col) continue;
    const values = numericByRow(col, g.group.timesUs.length);
    for (let r = 0; r < values.length; r++) {
      if (Number.isNaN(values[r])) continue;
      line.times.push(g.group.timesUs[r] / 1000);
      line.values.push(values[r]);
    }
  }
  const bucketMs = Math.max(1, (q.untilMs - q.sinceMs) / q.maxPoints);
  const series: SeriesLine[] = [];
  for (const line of bySeries.values()) {
    series.push({ key: line.key, tags: parseSeriesKey(line.key).tags, points: thin(line.times, line.values, q.sinceMs, bucketMs) });
  }
  return { measurement: q.measurement, field, fields: [...fields].sort(), series, truncated };
}

/** Bucket means (time and value), so a chart gets at most one point per bucket. */
function thin(times: number[], values: number[], startMs: number, bucketMs: number): [number, number][] {
  const out: [number, number][] = [];
  let bucket = NaN;
  let n = 0;
  let sumT = 0;
  let sumV = 0;
  const flush = () => {
    if (n > 0) out.push([Math.round(sumT / n), sumV / n]);
    n = 0;
    sumT = 0;
    sumV = 0;
  };
  for (let i = 0; i < times.length; i++) {
    const b = Math.floor((times[i] - startMs) / bucketMs);
    if (b !== bucket) {
      flush();
      bucket = b;
    }
    n++;
    sumT += times[i];
    sumV += values[i];
  }
  flush();
  return out;
}

/** The latest row of each of the first `maxSeries` series of a measurement written since `sinceMs`. */
export function readLatest(ring: StoreReader, measurement: string, sinceMs: number, maxSeries: number): { rows: LatestRow[]; truncated: boolean } {
  const latest = new Map<number, LatestRow>();
  let truncated = false;
  for (const g of ring.scan({ measurement, fromUs: sinceMs * 1000 })) {
    if (!latest.has(g.seriesId) && latest.size >= maxSeries) {
      truncated = true;
      break;
    }
    const last = g.group.timesUs.length - 1;
    if (last < 0) continue;
    const fields: Record<string, JsonValue> = {};
    for (const c of g.group.columns) {
      if (c.present && c.present[last] === 0) continue;
      fields[c.name] = jsonValue(c, c.values.length - 1);
    }
    const prev = latest.get(g.seriesId);
    const time = g.group.timesUs[last] / 1000;
    if (!prev || time >= prev.time_ms) latest.set(g.seriesId, { key: g.key, tags: parseSeriesKey(g.key).tags, time_ms: time, fields });
  }
  return { rows: [...latest.values()], truncated };
}

/** Measurements in the store, for the page's selector. */
export function listMeasurements(ring: StoreReader): string[] {
  return [...new Set(ring.listSeries().map((s) => s.measurement))].sort();
}
