// Output cursors and leases over the chunk table. Chunk ids are write order; a cursor is the set of
// chunk ids an output has delivered (a handful of id ranges, persisted in `cursors`). A lease lends
// unsent chunks to an output until it settles them (delivered: the cursor moves in one transaction)
// or releases them (offered again); leases and live marks live in memory, so a restart re-offers what
// was in flight.
import { decodeChunk } from './codec/index.js';
import { addIds, containsId, outsideRangesSql, type IdRange } from './ranges.js';
import type { CursorStore, Lease, LeaseOptions, OutputStatus } from './roles.js';
import type { ChunkTable } from './table.js';

/** A lease stops walking after passing over this many leased or skipped chunks. */
const LEASE_MAX_SKIPPED = 5000;

export class Cursors implements CursorStore {
  private readonly leased = new Map<string, Set<number>>();
  /** Per output, the last chunk id of its backlog lane (see setLiveMark). */
  private readonly liveMarks = new Map<string, number>();

  constructor(private readonly table: ChunkTable) {}

  registerOutput(output: string, tier = 0): void {
    this.table.sql('INSERT OR IGNORE INTO cursors(output, tier) VALUES (?, ?)').run(output, tier);
    this.table.sql('UPDATE cursors SET tier = ? WHERE output = ?').run(tier, output);
    if (!this.leased.has(output)) this.leased.set(output, new Set());
  }

  private tierOf(output: string): number {
    return (this.table.sql('SELECT tier FROM cursors WHERE output = ?').pluck().get(output) as number | undefined) ?? 0;
  }

  /** Every output's delivered ranges, for compaction (which merges only chunks outputs treated alike). */
  load(): { output: string; ranges: IdRange[] }[] {
    return (this.table.sql('SELECT output, ranges FROM cursors ORDER BY output').all() as { output: string; ranges: string }[]).map(
      (r) => ({ output: r.output, ranges: JSON.parse(r.ranges) as IdRange[] }),
    );
  }

  /** Chunk ids leased to any output: compaction leaves them alone. */
  leasedIds(): Set<number> {
    const all = new Set<number>();
    for (const ids of this.leased.values()) for (const id of ids) all.add(id);
    return all;
  }

  /** Where an output's live lane starts (see setLiveMark); Infinity when it has none. */
  liveMarkOf(output: string): number {
    return this.liveMarks.get(output) ?? Infinity;
  }

  /** Stores a cursor's ranges after compaction gave merged chunks new ids. */
  saveRanges(output: string, ranges: IdRange[]): void {
    this.table.sql('UPDATE cursors SET ranges = ? WHERE output = ?').run(JSON.stringify(ranges), output);
  }

  private rangesOf(output: string): IdRange[] {
    const row = this.table.sql('SELECT ranges FROM cursors WHERE output = ?').get(output) as { ranges: string } | undefined;
    if (!row) throw new Error(`unknown output ${output}`);
    return JSON.parse(row.ranges) as IdRange[];
  }

  lease(output: string, opts: LeaseOptions): Lease | null {
    const table = this.table;
    const leased = this.leased.get(output) ?? new Set<number>();
    this.leased.set(output, leased);
    const ranges = this.rangesOf(output);
    const tier = this.tierOf(output);
    let minId = opts.minId ?? 0;
    // A backfill walks up from the oldest chunk; when the first delivered range reaches down to it, start
    // after that range instead of stepping over every delivered chunk.
    if (ranges.length > 0 && ranges[0][1] >= minId) {
      const first = table.sql('SELECT min(id) FROM chunks WHERE tier = ?').pluck().get(tier) as number | null;
      if (first !== null && ranges[0][0] <= Math.max(first, minId)) minId = ranges[0][1] + 1;
    }
    const where = outsideRangesSql('c.id', ranges);
    // Metadata first, blobs only for the chunks taken: skipped chunks cost no I/O. `+c.tier` keeps
    // SQLite off the tier index (every chunk of the tier, then a sort): the walk follows the id order.
    const rows = table.db
      .prepare(
        `SELECT c.id, c.rows, c.vals, c.min_us, s.key FROM chunks c JOIN series s ON s.id = c.series_id
         WHERE ${where.sql} AND +c.tier = ? AND c.id >= ? AND c.id <= ? ORDER BY c.id ${opts.order === 'oldest' ? 'ASC' : 'DESC'}`,
      )
      .iterate(...where.params, tier, minId, opts.maxId ?? Number.MAX_SAFE_INTEGER) as IterableIterator<{ id: number; rows: number; vals: number; min_us: number; key: string }>;
    const dataOf = table.sql('SELECT data FROM chunks WHERE id = ?').pluck();
    const lease: Lease = { output, chunks: [], points: 0, values: 0, minUs: Infinity };
    let skipped = 0;
    for (const row of rows) {
      if (leased.has(row.id) || opts.skipSeries?.has(row.key)) {
        // Bounded, so a backlog of one busy series costs a short walk; the caller asks again later.
        if (++skipped >= LEASE_MAX_SKIPPED) break;
        continue;
      }
      if (lease.chunks.length > 0 && lease.points + row.rows > opts.maxPoints) break;
      lease.chunks.push({ chunkId: row.id, seriesKey: row.key, group: decodeChunk(dataOf.get(row.id) as Uint8Array) });
      lease.points += row.rows;
      lease.values += row.vals;
      lease.minUs = Math.min(lease.minUs, row.min_us);
      leased.add(row.id);
    }
    if (opts.order === 'newest') lease.chunks.reverse();
    return lease.chunks.length > 0 ? lease : null;
  }

  setLiveMark(output: string, chunkId: number | null): void {
    if (chunkId === null) this.liveMarks.delete(output);
    else this.liveMarks.set(output, chunkId);
  }

  pointsAfter(chunkId: number): number {
    return this.table.sql('SELECT coalesce(sum(rows), 0) FROM chunks WHERE id > ?').pluck().get(chunkId) as number;
  }

  settle(lease: Lease, result: { rejectedPoints?: number; nowMs?: number } = {}): void {
    const rejected = result.rejectedPoints ?? 0;
    const db = this.table.db;
    const tx = db.transaction(() => {
      const ranges = addIds(this.rangesOf(lease.output), lease.chunks.map((c) => c.chunkId));
      db
        .prepare('UPDATE cursors SET ranges = ?, sent_points = sent_points + ?, rejected_points = rejected_points + ?, last_success_ms = ? WHERE output = ?')
        .run(JSON.stringify(this.compressRanges(ranges, this.tierOf(lease.output))), lease.points - rejected, rejected, result.nowMs ?? Date.now(), lease.output);
    });
    tx();
    this.release(lease);
  }

  release(lease: Lease): void {
    const leased = this.leased.get(lease.output);
    if (leased) for (const c of lease.chunks) leased.delete(c.chunkId);
  }

  /** Joins ranges separated only by ids that no longer exist, so cursors stay a handful of ranges. */
  private compressRanges(ranges: IdRange[], tier: number): IdRange[] {
    if (ranges.length < 2) return ranges;
    const anyBetween = this.table.sql('SELECT 1 FROM chunks WHERE id > ? AND id < ? AND tier = ? LIMIT 1').pluck();
    const out: IdRange[] = [ranges[0]];
    for (let i = 1; i < ranges.length; i++) {
      const prev = out[out.length - 1];
      if (anyBetween.get(prev[1], ranges[i][0], tier) === undefined) prev[1] = ranges[i][1];
      else out.push(ranges[i]);
    }
    return out;
  }

  lastChunkId(): number {
    return (this.table.sql("SELECT seq FROM sqlite_sequence WHERE name = 'chunks'").pluck().get() as number | undefined) ?? 0;
  }

  outputStatus(output: string): OutputStatus {
    const table = this.table;
    const row = table.sql('SELECT ranges, sent_points, rejected_points, last_success_ms, tier, rolled_up_unsent FROM cursors WHERE output = ?').get(output) as
      | { ranges: string; sent_points: number; rejected_points: number; last_success_ms: number | null; tier: number; rolled_up_unsent: number }
      | undefined;
    if (!row) return { backlog_points: 0, backlog_values: 0, oldest_unsent_ms: null, last_success_ms: null, sent_points: 0, rejected_points: 0, lost_unsent_points: 0 };
    const where = outsideRangesSql('id', JSON.parse(row.ranges) as IdRange[]);
    const backlog = table.db
      // `+tier`: the unsent id ranges are the narrow search, not the tier (see outsideRangesSql).
      .prepare(`SELECT coalesce(sum(rows), 0) AS points, coalesce(sum(vals), 0) AS vals, min(min_us) AS oldest FROM chunks WHERE +tier = ? AND ${where.sql}`)
      .get(row.tier, ...where.params) as { points: number; vals: number; oldest: number | null };
    return {
      backlog_points: backlog.points,
      backlog_values: backlog.vals,
      oldest_unsent_ms: backlog.oldest === null ? null : Math.floor(backlog.oldest / 1000),
      last_success_ms: row.last_success_ms,
      sent_points: row.sent_points,
      rejected_points: row.rejected_points,
      lost_unsent_points: row.rolled_up_unsent,
    };
  }

  /** Output ids with a cursor, in order. */
  outputs(): string[] {
    return this.table.sql('SELECT output FROM cursors ORDER BY output').pluck().all() as string[];
  }

  /** An output that had not received a chunk about to go is told so in its status (by reason of loss). */
  countUnsent(victim: { id: number; rows: number; tier: number }): void {
    for (const cur of this.table.sql('SELECT output, ranges FROM cursors WHERE tier = ?').all(victim.tier) as { output: string; ranges: string }[]) {
      if (containsId(JSON.parse(cur.ranges) as IdRange[], victim.id)) continue;
      this.table.sql('UPDATE cursors SET rolled_up_unsent = rolled_up_unsent + ? WHERE output = ?').run(victim.rows, cur.output);
    }
  }

  transaction<T>(fn: () => T): T {
    return this.table.transaction(fn);
  }
}
