// A batch as the eight parallel arrays of one INSERT ... SELECT FROM unnest(...): one row per value.
// The arrays go to PostgreSQL as array literals built here ('{1,2,NULL}'), because node-pg's generic
// array serializer costs more than the database's insert for large batches. Repeated texts (the
// measurement, tags and field name of a series) are quoted once and reused.
import type { Column } from '../../src/core/chunk.js';
import type { OutputBatch } from '../../src/core/component.js';
import { parseSeriesKey } from '../../src/core/line-protocol.js';
import { INT64_MAX } from '../../src/core/point.js';

export interface ValueRows {
  /** Array literals, in the order of the INSERT's unnest: time_us, measurement, tags, field, value, value_int, value_text, value_bool. */
  params: [string, string, string, string, string, string, string, string];
  rows: number;
  bytes: number;
  /** Earliest and latest time of the rows (µs); ±Infinity without rows. */
  minTimeUs: number;
  maxTimeUs: number;
}

const NULL = 'NULL';

/** An element of a text (or jsonb) array literal: always quoted, `"` and `\` escaped. */
export function quoteElement(s: string): string {
  return '"' + s.replace(/["\\]/g, '\\$&') + '"';
}

function float(v: number): string {
  if (v !== v) return 'NaN';
  if (v === Infinity) return 'Infinity';
  if (v === -Infinity) return '-Infinity';
  return Object.is(v, -0) ? '-0' : String(v);
}

/** Tags as canonical JSON (keys sorted), so a series has one spelling and the unique key holds. */
export function tagsJson(tags: Record<string, string>): string {
  const sorted: Record<string, string> = {};
  for (const k of Object.keys(tags).sort()) sorted[k] = tags[k];
  return JSON.stringify(sorted);
}

export function valueRows(batch: OutputBatch): ValueRows {
  const time: string[] = [];
  const measurement: string[] = [];
  const tags: string[] = [];
  const field: string[] = [];
  const value: string[] = [];
  const valueInt: string[] = [];
  const valueText: string[] = [];
  const valueBool: string[] = [];
  let minTimeUs = Infinity;
  let maxTimeUs = -Infinity;
  for (const part of batch.parts) {
    const series = parseSeriesKey(part.seriesKey);
    const m = quoteElement(series.measurement);
    const t = quoteElement(tagsJson(series.tags));
    const times = part.group.timesUs;
    // Every time, not the ends: the row-exact insert relies on these bounds holding every row.
    for (let r = 0; r < times.length; r++) {
      if (times[r] < minTimeUs) minTimeUs = times[r];
      if (times[r] > maxTimeUs) maxTimeUs = times[r];
    }
    for (const col of part.group.columns) {
      const f = quoteElement(col.name);
      forEachValue(col, times.length, (row, i) => {
        time.push(String(times[row]));
        measurement.push(m);
        tags.push(t);
        field.push(f);
        switch (col.type) {
          case 'float':
            value.push(float(col.values[i]));
            valueInt.push(NULL);
            valueText.push(NULL);
            valueBool.push(NULL);
            break;
          case 'integer': {
            const v = col.values[i];
            value.push(float(Number(v)));
            valueInt.push(v.toString());
            valueText.push(NULL);
            valueBool.push(NULL);
            break;
          }
          case 'unsigned': {
            // bigint holds up to 2^63 - 1; beyond, the exact value goes to value_text.
            const v = col.values[i];
            value.push(float(Number(v)));
            valueInt.push(v <= INT64_MAX ? v.toString() : NULL);
            valueText.push(v <= INT64_MAX ? NULL : v.toString());
            valueBool.push(NULL);
            break;
          }
          case 'boolean':
            value.push(col.values[i] ? '1' : '0');
            valueInt.push(NULL);
            valueText.push(NULL);
            valueBool.push(col.values[i] ? 't' : 'f');
            break;
          case 'string':
            value.push(NULL);
            valueInt.push(NULL);
            valueText.push(quoteElement(col.values[i]));
            valueBool.push(NULL);
            break;
        }
      });
    }
  }
  const params = [time, measurement, tags, field, value, valueInt, valueText, valueBool].map((a) => '{' + a.join(',') + '}') as ValueRows['params'];
  let bytes = 0;
  for (const p of params) bytes += p.length;
  return { params, rows: time.length, bytes, minTimeUs, maxTimeUs };
}

/** Calls fn(row, valueIndex) for every row that has a value in the column. */
function forEachValue(col: Column, rows: number, fn: (row: number, i: number) => void): void {
  if (col.present === null) {
    for (let r = 0; r < rows; r++) fn(r, r);
    return;
  }
  let i = 0;
  for (let r = 0; r < rows; r++) if (col.present[r] === 1) fn(r, i++);
}
