// Cutting batches: in halves (413, bisecting an unexplained 400) and without the points an upstream
// refused (so the rest can be sent again). Pure functions over the core's RowGroup.
import type { Column, RowGroup } from '../core/chunk.js';
import type { OutputBatch } from '../core/component.js';
import { sliceGroup } from '../store/builder.js';

type Part = OutputBatch['parts'][number];

export function makeBatch(parts: Part[]): OutputBatch {
  let points = 0;
  for (const p of parts) points += p.group.timesUs.length;
  return { parts, points };
}

/** The batch as two batches of about half the points each (the first half first). */
export function halve(batch: OutputBatch): [OutputBatch, OutputBatch] {
  const target = Math.floor(batch.points / 2);
  const first: Part[] = [];
  const second: Part[] = [];
  let seen = 0;
  for (const part of batch.parts) {
    const rows = part.group.timesUs.length;
    if (seen >= target) second.push(part);
    else if (seen + rows <= target) first.push(part);
    else {
      const cut = target - seen;
      first.push({ seriesKey: part.seriesKey, group: sliceGroup(part.group, 0, cut) });
      second.push({ seriesKey: part.seriesKey, group: sliceGroup(part.group, cut, rows) });
    }
    seen += rows;
  }
  return [makeBatch(first), makeBatch(second)];
}

/** The batch without the points at `indices` (positions counted through the parts in order). */
export function without(batch: OutputBatch, indices: Iterable<number>): OutputBatch {
  const drop = new Set(indices);
  if (drop.size === 0) return batch;
  const parts: Part[] = [];
  let base = 0;
  for (const part of batch.parts) {
    const rows = part.group.timesUs.length;
    let keep: Uint8Array | null = null;
    let kept = rows;
    for (let r = 0; r < rows; r++) {
      if (!drop.has(base + r)) continue;
      keep ??= new Uint8Array(rows).fill(1);
      keep[r] = 0;
      kept--;
    }
    base += rows;
    if (keep === null) parts.push(part);
    else if (kept > 0) parts.push({ seriesKey: part.seriesKey, group: selectRows(part.group, keep, kept) });
  }
  return makeBatch(parts);
}

/** Only the points at `indices`: what an upstream refused, for the quarantine. */
export function only(batch: OutputBatch, indices: Iterable<number>): OutputBatch {
  const take = new Set(indices);
  const parts: Part[] = [];
  let base = 0;
  for (const part of batch.parts) {
    const rows = part.group.timesUs.length;
    const keep = new Uint8Array(rows);
    let kept = 0;
    for (let r = 0; r < rows; r++) {
      if (!take.has(base + r)) continue;
      keep[r] = 1;
      kept++;
    }
    base += rows;
    if (kept === rows) parts.push(part);
    else if (kept > 0) parts.push({ seriesKey: part.seriesKey, group: selectRows(part.group, keep, kept) });
  }
  return makeBatch(parts);
}

/** Rows r with keep[r] = 1 (`kept` of them). Columns left without values are dropped. */
export function selectRows(group: RowGroup, keep: Uint8Array, kept: number): RowGroup {
  const timesUs = new Float64Array(kept);
  for (let r = 0, k = 0; r < keep.length; r++) if (keep[r]) timesUs[k++] = group.timesUs[r];
  const columns: Column[] = [];
  for (const col of group.columns) {
    const positions: number[] = [];
    const present = new Uint8Array(kept);
    let v = 0;
    for (let r = 0, k = 0; r < keep.length; r++) {
      const has = col.present === null || col.present[r] === 1;
      if (keep[r]) {
        if (has) {
          positions.push(v);
          present[k] = 1;
        }
        k++;
      }
      if (has) v++;
    }
    if (positions.length === 0) continue;
    const mask = positions.length === kept ? null : present;
    columns.push(pick(col, positions, mask));
  }
  return { timesUs, columns };
}

function pick(col: Column, positions: number[], present: Uint8Array | null): Column {
  switch (col.type) {
    case 'float':
      return { name: col.name, type: col.type, present, values: Float64Array.from(positions, (i) => col.values[i]) };
    case 'integer':
      return { name: col.name, type: col.type, present, values: BigInt64Array.from(positions, (i) => col.values[i]) };
    case 'unsigned':
      return { name: col.name, type: col.type, present, values: BigUint64Array.from(positions, (i) => col.values[i]) };
    case 'boolean':
      return { name: col.name, type: col.type, present, values: Uint8Array.from(positions, (i) => col.values[i]) };
    case 'string':
      return { name: col.name, type: col.type, present, values: positions.map((i) => col.values[i]) };
  }
}
