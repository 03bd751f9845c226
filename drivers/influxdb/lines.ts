// A batch as line protocol, remembering which point each line is, so an error that names a line can
// be turned back into the point to reject. Times go out in microseconds (the store's precision), so
// nothing is rounded on the way.
//
// Unsigned fields: InfluxDB 1.x refuses `123u` ("invalid number") unless built with a flag, so for api
// v1 an unsigned value is sent as an integer (`123i`) when it fits int64, which every uint16/uint32
// register and most uint64 counters do, and as a float beyond 2^63 - 1 (counted: a field that crosses
// that line changes type, which InfluxDB then refuses for the rest of its shard). api v2 sends `123u`.
import type { RowGroup } from '../../src/core/chunk.js';
import type { OutputBatch } from '../../src/core/component.js';
import { serializeLine, type SerializeStats } from '../../src/core/line-protocol.js';
import { INT64_MAX, Unsigned, type FieldValue } from '../../src/core/point.js';

export interface Lines {
  /** Lines without line breaks, in batch order. */
  lines: string[];
  /** For each line, the index of its point in the batch. */
  pointOfLine: number[];
  /** Points with nothing writable (only NaN/±Inf fields): not sent, counted as rejected. */
  skippedPoints: number;
  /** Fields left out of their line (NaN, ±Inf). */
  skippedFields: number;
  /** api v1: unsigned values above int64 sent as floats. */
  unsignedAsFloat: number;
}

export type Api = 'v1' | 'v2';

export function batchLines(batch: OutputBatch, api: Api): Lines {
  const out: Lines = { lines: [], pointOfLine: [], skippedPoints: 0, skippedFields: 0, unsignedAsFloat: 0 };
  const stats: SerializeStats = { skippedFields: 0, skippedPoints: 0 };
  let point = 0;
  for (const part of batch.parts) {
    point = groupLines(part.seriesKey, part.group, api, point, out, stats);
  }
  out.skippedPoints = stats.skippedPoints;
  out.skippedFields = stats.skippedFields;
  return out;
}

interface Cursor {
  pair: [string, FieldValue];
  present: Uint8Array | null;
  next: number;
  value: (i: number) => FieldValue;
}

function groupLines(key: string, group: RowGroup, api: Api, firstPoint: number, out: Lines, stats: SerializeStats): number {
  // One [name, value] pair per column, reused for every row: serializeLine only reads them.
  const cursors: Cursor[] = group.columns.map((col) => {
    let value: (i: number) => FieldValue;
    switch (col.type) {
      case 'float':
      case 'integer':
      case 'string': {
        const values = col.values;
        value = (i) => values[i];
        break;
      }
      case 'boolean': {
        const values = col.values;
        value = (i) => values[i] === 1;
        break;
      }
      case 'unsigned': {
        const values = col.values;
        value =
          api === 'v2'
            ? (i) => new Unsigned(values[i])
            : (i) => {
                const v = values[i];
                if (v <= INT64_MAX) return v;
                out.unsignedAsFloat++;
                return Number(v);
              };
        break;
      }
    }
    return { pair: [col.name, 0], present: col.present, next: 0, value };
  });
  const fields: [string, FieldValue][] = [];
  const times = group.timesUs;
  let point = firstPoint;
  for (let r = 0; r < times.length; r++, point++) {
    fields.length = 0;
    for (const c of cursors) {
      if (c.present !== null && c.present[r] === 0) continue;
      c.pair[1] = c.value(c.next++);
      fields.push(c.pair);
    }
    const line = serializeLine(key, fields, times[r], 'us', stats);
    if (line === '') continue;
    out.lines.push(line);
    out.pointOfLine.push(point);
  }
  return point;
}
