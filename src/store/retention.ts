// Retention (`retention:` per tier): chunks older than a tier's limit leave the store, counted as
// `retention`, and outputs that had not received them are told. Raw data is rolled up first (when
// rollups are configured), so retention of raw never loses a window.
import type { Rollups } from './rollups.js';
import type { Space } from './space.js';
import type { ChunkMeta, ChunkTable } from './table.js';

/** Deletes chunks of `tier` whose newest time is before `beforeUs`; returns the points removed. */
export function expire(table: ChunkTable, rollups: Rollups, space: Space, tier: number, beforeUs: number): number {
  if (table.readonly) return 0;
  let removed = 0;
  table.transaction(() => {
    const victims = table.sql('SELECT id, series_id, max_us, rows, vals, tier, length(data) AS bytes FROM chunks WHERE tier = ? AND max_us < ? ORDER BY max_us').all(tier, beforeUs) as ChunkMeta[];
    let points = 0;
    let values = 0;
    for (const v of victims) {
      if (rollups.enabled) rollups.rollUpBefore(v.series_id, v.max_us, v.tier === 0);
      space.remove(v);
      points += v.rows;
      values += v.vals;
    }
    if (victims.length > 0) table.stmt.addDrop!.run('retention', points, values);
    removed = points;
  });
  return removed;
}
