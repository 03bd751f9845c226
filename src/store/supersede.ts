// Recomputed rollup windows replace their earlier versions. A window is written again when late
// points reopen it and, under `when_full: rollup`, whenever eviction rolls up a window that the next
// raw chunk still feeds (every eviction cuts one open window per tier). Reads already let the later
// chunk win, but the earlier version stayed on disk until compaction merged the two, and `import`
// never compacts: a store at its cap filled with dead copies of its coarse windows (81 chunks for 133
// hourly windows in the case that showed it) and then dropped live ones to make room.
//
// The earlier chunks keep their ids (ids are the order outputs deliver in, and delivery state is kept
// per id): a chunk whose windows are all superseded is deleted, one with others left is rewritten
// without the superseded ones. Nothing is lost: every removed window is in the chunk written now.
// A chunk larger than a page keeps its stale windows (reads still let the later chunk win, and
// compaction drops them when it merges): rewriting 4096 windows to drop one cost a 50-frame
// transaction, which took a 512 KiB store's WAL past its reservation.
import type Database from 'better-sqlite3';
import type { RowGroup } from '../core/chunk.js';
import { SeriesBuilder, groupValueCount, sliceGroup } from './builder.js';
import { decodeChunk, encodeChunk } from './codec/index.js';

/** Chunks up to this size are rewritten without their superseded windows. */
const MAX_REWRITE_BYTES = 4096;

export class SupersededWindows {
  private readonly overlapping: Database.Statement;
  private readonly remove: Database.Statement;
  private readonly rewrite: Database.Statement;

  constructor(
    db: Database.Database,
    /** Level a rewritten chunk takes for its row count (full chunks stay sealed). */
    private readonly levelFor: (rows: number) => number,
  ) {
    this.overlapping = db.prepare('SELECT id, data FROM chunks WHERE series_id = ? AND tier = ? AND max_us >= ? AND min_us <= ? ORDER BY id');
    this.remove = db.prepare('DELETE FROM chunks WHERE id = ?');
    this.rewrite = db.prepare('INSERT INTO chunks(id, series_id, min_us, max_us, rows, vals, level, data, tier) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)');
  }

  /** Before `fresh` (windows of one series and tier) is stored: removes those windows from older chunks. */
  removeFrom(seriesId: number, tier: number, fresh: RowGroup): void {
    const starts = fresh.timesUs;
    if (starts.length === 0) return;
    const replaced = new Set(starts);
    const older = this.overlapping.all(seriesId, tier, starts[0], starts[starts.length - 1]) as { id: number; data: Uint8Array }[];
    for (const chunk of older) {
      const group = decodeChunk(chunk.data);
      const kept = withoutRows(group, replaced);
      if (kept === group || (kept.timesUs.length > 0 && chunk.data.length > MAX_REWRITE_BYTES)) continue;
      this.remove.run(chunk.id);
      const rows = kept.timesUs.length;
      if (rows === 0) continue;
      this.rewrite.run(chunk.id, seriesId, kept.timesUs[0], kept.timesUs[rows - 1], rows, groupValueCount(kept), this.levelFor(rows), encodeChunk(kept), tier);
    }
  }
}

/** The group without the rows at the given times; the group itself when it has none of them. */
function withoutRows(group: RowGroup, times: ReadonlySet<number>): RowGroup {
  const t = group.timesUs;
  let hits = 0;
  for (let r = 0; r < t.length; r++) if (times.has(t[r])) hits++;
  if (hits === 0) return group;
  const builder = new SeriesBuilder();
  for (let start = 0; start < t.length; ) {
    if (times.has(t[start])) {
      start++;
      continue;
    }
    let end = start;
    while (end < t.length && !times.has(t[end])) end++;
    builder.addGroup(sliceGroup(group, start, end));
    start = end;
  }
  return builder.build();
}
