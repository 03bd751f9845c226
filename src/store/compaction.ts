// Compaction merges a series' level-0 chunks into level-1 chunks of up to `maxChunkRows` rows, so
// steady-state compression is that of large chunks; a chunk that reaches `maxChunkRows` is sealed
// (level 2) and never rewritten. Open level-1 chunks are merged like runs in a merge sort (a chunk
// merges with the one before it once it is at least half its size), so a row is rewritten about 7
// times on its way into a sealed chunk rather than ~26 times when every pass rewrote the series'
// newest chunk. Chunks merge only with chunks every output has treated alike, never while leased and
// never across an output's live mark, and the merged parts keep the merged chunks' ids, so delivery
// state and order survive.
import { SeriesBuilder, groupValueCount, sliceGroup } from './builder.js';
import { decodeChunk, encodeChunk } from './codec/index.js';
import type { Cursors } from './cursors.js';
import { addIds, containsId, type IdRange } from './ranges.js';
import type { Space } from './space.js';
import { LEVEL_FRESH, LEVEL_OPEN, LEVEL_SEALED, type ChunkTable } from './table.js';

/** A series is compacted once it has this many level-0 chunks. */
const COMPACT_MIN_L0 = 16;
/** An open chunk merges with the open chunk before it once it holds at least 1/MERGE_RATIO of its rows. */
const MERGE_RATIO = 2;

type Candidate = { id: number; tier: number };
type CursorRanges = { output: string; ranges: IdRange[] };

/**
 * Which consecutive chunks of one run to merge: all fresh chunks in a row become one segment; then, as
 * in a merge sort's run stack, a segment merges with the one before it while that one holds at most
 * MERGE_RATIO times its rows (`force`: always). Open chunks thus form a short stack of shrinking sizes
 * and each row is rewritten a logarithmic number of times. Segments of one chunk stay as they are.
 */
export function mergePlan<C extends { level: number; rows: number }>(run: readonly C[], force: boolean): C[][] {
  const stack: { chunks: C[]; rows: number }[] = [];
  for (let i = 0; i < run.length; ) {
    const segment = { chunks: [run[i]], rows: run[i].rows };
    if (run[i].level === LEVEL_FRESH) {
      while (i + 1 < run.length && run[i + 1].level === LEVEL_FRESH) {
        i++;
        segment.chunks.push(run[i]);
        segment.rows += run[i].rows;
      }
    }
    i++;
    stack.push(segment);
    while (stack.length >= 2) {
      const top = stack[stack.length - 1];
      const below = stack[stack.length - 2];
      if (!force && below.rows > MERGE_RATIO * top.rows) break;
      below.chunks.push(...top.chunks);
      below.rows += top.rows;
      stack.pop();
    }
  }
  return stack.map((s) => s.chunks);
}

export class Compactor {
  /** Compaction candidates a pass left for the next (see compact). */
  private queue: Candidate[] = [];

  constructor(
    private readonly table: ChunkTable,
    private readonly cursors: Cursors,
    private readonly space: Space,
  ) {}

  /**
   * Merges a series' fresh (level-0) chunks into one open chunk, and open chunks with each other as
   * MERGE_RATIO says (`force`: every mergeable chunk into one). Returns the number of series compacted.
   */
  compact(options: { force?: boolean; maxSeries?: number; budgetMs?: number } = {}): number {
    if (this.table.readonly) return 0;
    // The candidate query groups every open chunk of the store, so the series a pass had no time for are
    // taken from the queue first; one compacted meanwhile finds nothing to merge and costs one lookup.
    const candidates = !options.force && this.queue.length > 0 ? this.queue : this.candidates(options.force ?? false, options.maxSeries ?? -1);
    if (candidates.length === 0) return 0;
    // A merge rewrites whole chunks, a large transaction next to a small WAL budget (see capacity.ts).
    this.space.emptyWalIfSmall();
    const leased = this.cursors.leasedIds();
    let compacted = 0;
    let done = 0;
    const deadline = performance.now() + (options.budgetMs ?? Infinity);
    // One transaction for the pass: under synchronous=FULL every commit is an fsync, and a pass of a
    // few hundred series committed one by one stalled the event loop for ~300 ms. The cursors are read
    // inside it: another process (`sluice quarantine retry`) may have moved one since the last pass.
    this.table.transaction(() => {
      const cursors = this.cursors.load();
      for (; done < candidates.length; done++) {
        // The time budget keeps a pass short; the candidates left over (most fresh chunks first) come next pass.
        if (performance.now() > deadline) break;
        if (this.compactSeries(candidates[done], cursors, leased, options.force ?? false)) compacted++;
      }
    });
    this.queue = options.force ? [] : candidates.slice(done);
    this.space.checkpointIfLarge();
    return compacted;
  }

  /** Series (and tiers) with enough fresh chunks to compact, most first; `force`: any with two open chunks. */
  private candidates(force: boolean, maxSeries: number): Candidate[] {
    // `level < 2` spelled out so SQLite uses the partial index chunks_open (it does not infer it from level = 0).
    const rows = force
      ? this.table.sql('SELECT series_id AS id, tier, count(*) AS n FROM chunks WHERE level < 2 GROUP BY series_id, tier HAVING n >= 2 ORDER BY n DESC LIMIT ?').all(maxSeries)
      : this.table.sql(
          'SELECT series_id AS id, tier, count(*) AS n, sum(rows) AS r FROM chunks WHERE level < 2 AND level = 0 GROUP BY series_id, tier HAVING n >= ? OR r >= ? ORDER BY n DESC LIMIT ?',
        ).all(COMPACT_MIN_L0, this.table.settings.maxChunkRows, maxSeries);
    return rows as Candidate[];
  }

  /** Compacts one series' open and fresh chunks of one tier (see compact); true if anything merged. */
  private compactSeries(cand: Candidate, cursors: CursorRanges[], leased: ReadonlySet<number>, force: boolean): boolean {
    type OpenChunk = { id: number; level: number; rows: number; data: Uint8Array };
    const maxChunkRows = this.table.settings.maxChunkRows;
    const chunks = this.table.sql('SELECT id, level, rows, data FROM chunks WHERE series_id = ? AND tier = ? AND level < 2 ORDER BY id').all(cand.id, cand.tier) as OpenChunk[];
    // Runs of consecutive chunks with the same delivery signature can merge.
    const runs: OpenChunk[][] = [];
    let lastSig = '';
    for (const c of chunks) {
      // Leased chunks, and full chunks of stores written before sealing existed, end a run.
      if (leased.has(c.id) || (c.level === LEVEL_OPEN && c.rows >= maxChunkRows)) {
        lastSig = '';
        runs.push([]);
        continue;
      }
      // An output's live mark splits runs too, so no merge moves data between its lanes.
      const sig = cursors.map((cur) => (containsId(cur.ranges, c.id) ? '1' : '0') + (c.id > this.cursors.liveMarkOf(cur.output) ? 'L' : '')).join('');
      if (runs.length === 0 || sig !== lastSig) runs.push([]);
      runs[runs.length - 1].push(c);
      lastSig = sig;
    }
    let did = false;
    for (const run of runs) {
      for (let segment of mergePlan(run, force)) {
        // A merge's transaction writes every byte it merges: under a small cap the oldest chunks of an
        // oversized merge are left out, so the WAL stays within its reservation (see capacity.ts).
        while (segment.length >= 2 && segment.reduce((n, c) => n + c.data.length, 0) > this.space.plan.maxMergeBytes) segment = segment.slice(1);
        if (segment.length < 2) continue;
        this.mergeChunks(cand, segment, cursors);
        did = true;
      }
    }
    return did;
  }

  /** Replaces consecutive chunks of one series by their merge, under the same ids (see below). */
  private mergeChunks(cand: Candidate, segment: readonly { id: number; data: Uint8Array }[], cursors: CursorRanges[]): void {
    const maxChunkRows = this.table.settings.maxChunkRows;
    const builder = new SeriesBuilder();
    for (const c of segment) builder.addGroup(decodeChunk(c.data));
    const merged = builder.build();
    for (const c of segment) this.table.stmt.deleteChunk!.run(c.id);
    const sentBy = cursors.filter((cur) => containsId(cur.ranges, segment[0].id));
    // The merged parts take the segment's own (lowest) ids, never new ones: ids are the order outputs
    // deliver in, and a merge must not move a backlog behind data written after it. n chunks of at
    // most maxChunkRows rows each never need more than n parts.
    const insertWithId = this.table.sql('INSERT INTO chunks(id, series_id, min_us, max_us, rows, vals, level, data, tier) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)');
    const newIds: number[] = [];
    for (let start = 0; start < merged.timesUs.length; start += maxChunkRows) {
      const part = sliceGroup(merged, start, start + maxChunkRows);
      const rows = part.timesUs.length;
      const info = insertWithId.run(
        segment[newIds.length].id,
        cand.id,
        part.timesUs[0],
        part.timesUs[rows - 1],
        rows,
        groupValueCount(part),
        rows >= maxChunkRows ? LEVEL_SEALED : LEVEL_OPEN,
        encodeChunk(part),
        cand.tier,
      );
      newIds.push(Number(info.lastInsertRowid));
    }
    for (const cur of sentBy) {
      cur.ranges = addIds(cur.ranges, newIds);
      this.cursors.saveRanges(cur.output, cur.ranges);
    }
  }
}
