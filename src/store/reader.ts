// Reading the chunk table: series, their rows in time order with overlapping chunks merged (the later
// write wins for the same time and field), and what the rollup tiers still owe.
import type { RowGroup } from '../core/chunk.js';
import { SeriesBuilder, sliceGroup } from './builder.js';
import { decodeChunk } from './codec/index.js';
import type { ScanFilter, SeriesGroup, SeriesInfo, StoreReader } from './roles.js';
import type { ChunkTable } from './table.js';

export class ChunkReader implements StoreReader {
  constructor(private readonly table: ChunkTable) {}

  listSeries(measurement?: string): SeriesInfo[] {
    const rows = measurement === undefined
      ? this.table.sql('SELECT id, key, measurement FROM series ORDER BY id').all()
      : this.table.sql('SELECT id, key, measurement FROM series WHERE measurement = ? ORDER BY id').all(measurement);
    return rows as SeriesInfo[];
  }

  *scan(filter: ScanFilter = {}): Generator<SeriesGroup> {
    for (const s of this.listSeries(filter.measurement)) {
      for (const group of this.seriesGroups(s.id, 0, filter.fromUs, filter.toUs, filter.fields)) {
        yield { seriesId: s.id, key: s.key, measurement: s.measurement, group };
      }
    }
  }

  *seriesGroups(seriesId: number, tier: number, fromUs = -Number.MAX_SAFE_INTEGER, toUs = Number.MAX_SAFE_INTEGER, fields?: ReadonlySet<string>): Generator<RowGroup> {
    const rows = this.table.db
      .prepare('SELECT id, min_us, max_us, data FROM chunks WHERE series_id = ? AND tier = ? AND max_us >= ? AND min_us < ? ORDER BY min_us, id')
      .iterate(seriesId, tier, fromUs, toUs) as IterableIterator<{ id: number; min_us: number; max_us: number; data: Uint8Array }>;
    let cluster: { id: number; data: Uint8Array }[] = [];
    let clusterMax = -Infinity;
    const emit = (): RowGroup | undefined => {
      if (cluster.length === 0) return undefined;
      let group: RowGroup;
      if (cluster.length === 1) group = decodeChunk(cluster[0].data, fields);
      else {
        const builder = new SeriesBuilder();
        for (const c of cluster.sort((a, b) => a.id - b.id)) builder.addGroup(decodeChunk(c.data, fields));
        group = builder.build();
      }
      group = clipGroup(group, fromUs, toUs);
      cluster = [];
      return group.timesUs.length === 0 || group.columns.length === 0 ? undefined : group;
    };
    for (const row of rows) {
      if (cluster.length > 0 && row.min_us > clusterMax) {
        const out = emit();
        if (out) yield out;
      }
      if (cluster.length === 0) clusterMax = -Infinity;
      cluster.push({ id: row.id, data: row.data });
      clusterMax = Math.max(clusterMax, row.max_us);
    }
    const out = emit();
    if (out) yield out;
  }

  storedTiers(): number[] {
    return this.table.sql('SELECT DISTINCT tier FROM chunks WHERE tier > 0 UNION SELECT DISTINCT tier FROM rollup_dirty ORDER BY 1').pluck().all() as number[];
  }

  dirtyRanges(seriesId: number, tier: number, fromUs = -Number.MAX_SAFE_INTEGER, toUs = Number.MAX_SAFE_INTEGER): [number, number][] {
    const rows = this.table.db
      .prepare('SELECT from_us AS a, to_us AS b FROM rollup_dirty WHERE tier = ? AND series_id = ? AND to_us >= ? AND from_us < ? ORDER BY from_us')
      .all(tier, seriesId, fromUs, toUs) as { a: number; b: number }[];
    const windowUs = tier * 1000;
    const out: [number, number][] = [];
    for (const { a, b } of rows) {
      const lo = Math.max(a, Math.ceil(fromUs / windowUs) * windowUs);
      const hi = Math.min(b, toUs - 1);
      if (lo > hi) continue;
      const prev = out[out.length - 1];
      if (prev && lo <= prev[1] + windowUs) prev[1] = Math.max(prev[1], hi);
      else out.push([lo, hi]);
    }
    return out;
  }
}

/** Rows with fromUs ≤ time < toUs. */
export function clipGroup(group: RowGroup, fromUs: number, toUs: number): RowGroup {
  const t = group.timesUs;
  if (t.length === 0 || (t[0] >= fromUs && t[t.length - 1] < toUs)) return group;
  let start = 0;
  while (start < t.length && t[start] < fromUs) start++;
  let end = start;
  while (end < t.length && t[end] < toUs) end++;
  return sliceGroup(group, start, end);
}
