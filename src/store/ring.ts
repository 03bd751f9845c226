// The ring: a durable, compressed, byte-capped store of points in one SQLite file (WAL mode).
//
// Written by hand because it is the product's core. Layout:
//   series(id, key, measurement)          one row per measurement + tag set (the line-protocol series key)
//   chunks(id, series_id, min_us, max_us, rows, vals, level, data)
//                                         compressed row groups (src/store/codec); id order is write order,
//                                         which is what output cursors follow
//   cursors(output, ranges, …)            per output: which chunk ids it has delivered
//   drops(reason, points, vals)           what left the store other than by delivery, by reason
//   meta(key, value)                      format version and creation time
//   commit_marks(scope, key, value)       inputs' records written with their points (src/store/marks.ts)
//
// Writes: points wait in memory for the next group commit (`commit_interval`), which writes one small
// level-0 chunk per series in one transaction and then resolves every waiting writer: that is the
// moment a point is durable. Compaction later merges a series' level-0 chunks into level-1 chunks of up
// to `maxChunkRows` rows, so steady-state compression is that of large chunks; a chunk that reaches
// `maxChunkRows` is sealed (level 2) and never rewritten. Open level-1 chunks are merged like runs in
// a merge sort (a chunk merges with the one before it once it is at least half its size), so a row is
// rewritten about 7 times on its way into a sealed chunk rather than ~26 times when every pass rewrote
// the series' newest chunk. Bulk import writes level-1 and sealed chunks directly.
//
// Durability: journal_mode=WAL with synchronous=FULL, so every commit fsyncs the WAL. kill -9 never
// loses a committed point; a power cut loses at most the points still waiting for their group commit
// (≤ commit_interval). NORMAL would let a power cut roll back commits up to the last checkpoint, an
// unbounded window that would break the MQTT acknowledgement promise; one fsync per commit interval is
// cheap.
import Database from 'better-sqlite3';
import { existsSync, mkdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { RowGroup } from '../core/chunk.js';
import type { Point } from '../core/point.js';
import { seriesKey as makeSeriesKey } from '../core/line-protocol.js';
import { SeriesBuilder, groupValueCount, sliceGroup } from './builder.js';
import { decodeChunk, encodeChunk } from './codec/index.js';
import { StoreClosedError, StoreFullError, StoreOpenError } from './errors.js';
import { addIds, containsId, outsideRangesSql, type IdRange } from './ranges.js';
import { CommitMarkTable, marksOf } from './marks.js';
import type { CommitMark } from '../core/component.js';
import { reorderSeriesKeys } from './series-keys.js';
import { aggregateRaw, aggregateRollup, statesToGroup, type WindowStates } from './rollup.js';
import { SMALL_WAL_BYTES, planCapacity, type CapacityPlan } from './capacity.js';
import { makeRoom, type EvictionCandidate, type EvictionHost } from './eviction.js';
import { SupersededWindows } from './supersede.js';
import { mergeState } from '../core/aggregate.js';

export type WhenFull = 'rollup' | 'drop_oldest' | 'drop_newest';
export type DropReason = 'dropped_oldest' | 'dropped_newest' | 'rolled_up' | 'dropped_rollups' | 'retention';

export const STORE_FILE = 'sluice.db';
export const STORE_FORMAT = 1;

export interface RingOptions {
  dataDir: string;
  maxBytes: number;
  whenFull: WhenFull;
  commitIntervalMs: number;
  readonly?: boolean;
  /** Rows per compacted chunk: larger compresses better, smaller evicts and delivers at a finer grain. */
  maxChunkRows?: number;
  /** Points waiting for a group commit before one is forced early (bounds memory under bursts). */
  maxPendingValues?: number;
  /** Rollup windows (aggregate.windows), shortest first, each a multiple of the one before. */
  rollupWindowsMs?: readonly number[];
  /**
   * SQLite's page cache for this connection. better-sqlite3 builds SQLite with a 16 MB default, which
   * a store larger than that fills over minutes (steady RSS growth on a small box); the hot pages (the
   * B-tree interiors, the newest chunks the compactor rereads) fit in far less.
   */
  cacheBytes?: number;
  /** Called once per condition worth a log line (the agent passes its logger). */
  onWarning?: (message: string, details?: Record<string, unknown>) => void;
}

export interface SeriesGroup {
  seriesId: number;
  key: string;
  measurement: string;
  group: RowGroup;
}

export interface ScanFilter {
  measurement?: string;
  fromUs?: number;
  /** Exclusive. */
  toUs?: number;
  fields?: ReadonlySet<string>;
}

export interface LeasedChunk {
  chunkId: number;
  seriesKey: string;
  group: RowGroup;
}

export interface Lease {
  output: string;
  chunks: LeasedChunk[];
  points: number;
  values: number;
  /** Oldest time in the lease, for the output's bookkeeping. */
  minUs: number;
}

export interface OutputStatus {
  backlog_points: number;
  backlog_values: number;
  oldest_unsent_ms: number | null;
  last_success_ms: number | null;
  sent_points: number;
  rejected_points: number;
  /**
   * Points removed from the store (rolled up, dropped for space or by retention) before this output
   * received them. Under `rollup` their windows remain in the rollups.
   */
  lost_unsent_points: number;
}

export interface StoreStatus {
  points: number;
  values: number;
  series: number;
  chunks: number;
  store_bytes: number;
  capacity_bytes: number;
  used_bytes: number;
  oldest_ms: number | null;
  newest_ms: number | null;
  when_full: WhenFull;
  dropped: Record<string, number>;
  dropped_values: Record<string, number>;
  outputs: Record<string, OutputStatus>;
  /** Per tier (`raw`, then each rollup window such as `1m`): what it holds and the time it still covers. */
  tiers: Record<string, TierStatus>;
  /** Seconds until the cap at the ingest rate of the last 10 minutes (null: no recent ingest, or already at the cap). */
  runway_s: number | null;
}

export interface TierStatus {
  /** Rows: points for raw, windows for rollups. */
  rows: number;
  values: number;
  chunks: number;
  oldest_ms: number | null;
  newest_ms: number | null;
}

interface PendingWaiter {
  resolve: () => void;
  reject: (err: Error) => void;
  points: number;
  marks?: readonly CommitMark[];
}

/** A chunk's row without its data: what eviction and retention decide on and count. */
type ChunkMeta = EvictionCandidate;

interface ChunkInsert {
  group: RowGroup;
  level: number;
  /** 0 for raw data, else the rollup window in milliseconds. */
  tier: number;
}

const DEFAULT_MAX_CHUNK_ROWS = 4096;
const DEFAULT_MAX_PENDING_VALUES = 250_000;
/** A lease stops walking after passing over this many leased or skipped chunks. */
const LEASE_MAX_SKIPPED = 5000;
/** A series is compacted once it has this many level-0 chunks. */
const COMPACT_MIN_L0 = 16;
/** Chunk levels: fresh from a group commit, compacted but still open to merges, full and final. */
const LEVEL_FRESH = 0;
const LEVEL_OPEN = 1;
const LEVEL_SEALED = 2;
/** An open chunk merges with the open chunk before it once it holds at least 1/MERGE_RATIO of its rows. */
const MERGE_RATIO = 2;
/** See RingOptions.cacheBytes. */
const DEFAULT_CACHE_BYTES = 2 * 1024 * 1024;
const SCHEMA = `
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS series(id INTEGER PRIMARY KEY, key TEXT NOT NULL UNIQUE, measurement TEXT NOT NULL,
  rolled_up_until_us INTEGER);
CREATE INDEX IF NOT EXISTS series_measurement ON series(measurement);
CREATE TABLE IF NOT EXISTS chunks(
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  series_id INTEGER NOT NULL,
  min_us INTEGER NOT NULL,
  max_us INTEGER NOT NULL,
  rows INTEGER NOT NULL,
  vals INTEGER NOT NULL,
  level INTEGER NOT NULL,
  tier INTEGER NOT NULL DEFAULT 0,
  data BLOB NOT NULL);
-- A series' chunks by end time: reading a recent range (rollups, live queries) touches the chunks that
-- end in it, not the series' whole history. min_us rides along so the overlap test needs no table row.
DROP INDEX IF EXISTS chunks_series_time;
CREATE INDEX IF NOT EXISTS chunks_series_end ON chunks(series_id, tier, max_us, min_us);
CREATE INDEX IF NOT EXISTS chunks_tier_time ON chunks(tier, max_us);
CREATE INDEX IF NOT EXISTS chunks_max_time ON chunks(max_us);
-- The chunks compaction may still merge: a few per series, however much history the store holds.
CREATE INDEX IF NOT EXISTS chunks_open ON chunks(series_id, tier, level, rows) WHERE level < 2;
CREATE TABLE IF NOT EXISTS rollup_dirty(tier INTEGER NOT NULL, series_id INTEGER NOT NULL, from_us INTEGER NOT NULL, to_us INTEGER NOT NULL,
  PRIMARY KEY(tier, series_id, from_us, to_us)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS cursors(
  output TEXT PRIMARY KEY,
  ranges TEXT NOT NULL DEFAULT '[]',
  sent_points INTEGER NOT NULL DEFAULT 0,
  rejected_points INTEGER NOT NULL DEFAULT 0,
  last_success_ms INTEGER,
  tier INTEGER NOT NULL DEFAULT 0,
  rolled_up_unsent INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS drops(reason TEXT PRIMARY KEY, points INTEGER NOT NULL, vals INTEGER NOT NULL);
-- Running totals per tier, kept by triggers in the writing transaction: status answers without reading
-- every chunk (a scan of a 1 GB store per status request would stall the agent).
CREATE TABLE IF NOT EXISTS tier_totals(tier INTEGER PRIMARY KEY, chunks INTEGER NOT NULL, rows INTEGER NOT NULL, vals INTEGER NOT NULL);
CREATE TRIGGER IF NOT EXISTS chunks_total_insert AFTER INSERT ON chunks BEGIN
  INSERT INTO tier_totals(tier, chunks, rows, vals) VALUES (NEW.tier, 1, NEW.rows, NEW.vals)
    ON CONFLICT(tier) DO UPDATE SET chunks = chunks + 1, rows = rows + excluded.rows, vals = vals + excluded.vals;
END;
CREATE TRIGGER IF NOT EXISTS chunks_total_delete AFTER DELETE ON chunks BEGIN
  UPDATE tier_totals SET chunks = chunks - 1, rows = rows - OLD.rows, vals = vals - OLD.vals WHERE tier = OLD.tier;
END;
`;
/** Chunks looked at for a tier's oldest time: the earliest-ending ones (what eviction removes first). */
const OLDEST_PROBE_CHUNKS = 64;

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

export class SqliteRing {
  readonly file: string;
  private readonly db: Database.Database;
  private readonly opts: Required<Omit<RingOptions, 'onWarning' | 'readonly'>> & Pick<RingOptions, 'onWarning'>;
  private readonly readonly: boolean;
  /** Compaction candidates a pass left for the next (see compact). */
  private compactQueue: { id: number; tier: number }[] = [];
  private pending = new Map<string, SeriesBuilder>();
  private pendingValues = 0;
  private waiters: PendingWaiter[] = [];
  private commitTimer: NodeJS.Timeout | undefined;
  private closed = false;
  /** Told after every group commit: the HTTP endpoint's commit-latency histogram and store health. */
  onCommit: ((event: { durationMs: number; points: number; error?: Error }) => void) | undefined;
  private readonly seriesIds = new Map<string, number>();
  private readonly leased = new Map<string, Set<number>>();
  /** Per output, the last chunk id of its backlog lane (see setLiveMark). */
  private readonly liveMarks = new Map<string, number>();
  private readonly pageSize: number;
  private readonly statements = new Map<string, Database.Statement>();
  /** Whether the caller named the rollup windows (else the store's recorded ones are kept). */
  private readonly explicitWindows: boolean;
  /** Whether tier_totals is kept by this store's triggers (see countTotals). */
  private totalsKept = false;
  private readonly stmt: ReturnType<SqliteRing['prepareStatements']>;
  private readonly capacity: CapacityPlan;
  private readonly superseded: SupersededWindows | undefined;
  private readonly marks: CommitMarkTable;

  private constructor(db: Database.Database, file: string, options: RingOptions) {
    this.db = db;
    this.file = file;
    this.readonly = options.readonly ?? false;
    this.explicitWindows = options.rollupWindowsMs !== undefined;
    this.opts = {
      dataDir: options.dataDir,
      maxBytes: options.maxBytes,
      whenFull: options.whenFull,
      commitIntervalMs: options.commitIntervalMs,
      maxChunkRows: options.maxChunkRows ?? DEFAULT_MAX_CHUNK_ROWS,
      maxPendingValues: options.maxPendingValues ?? DEFAULT_MAX_PENDING_VALUES,
      cacheBytes: options.cacheBytes ?? DEFAULT_CACHE_BYTES,
      rollupWindowsMs: [...(options.rollupWindowsMs ?? storedWindows(db))].sort((a, b) => a - b),
      onWarning: options.onWarning,
    };
    this.pageSize = db.pragma('page_size', { simple: true }) as number;
    this.capacity = planCapacity(options.maxBytes, this.pageSize);
    this.stmt = this.prepareStatements();
    this.superseded = this.readonly ? undefined : new SupersededWindows(db, (rows) => (rows >= this.opts.maxChunkRows ? LEVEL_SEALED : LEVEL_OPEN));
    this.marks = new CommitMarkTable(db, this.readonly);
  }

  /** Opens (creating when writable and absent) the store in `dataDir`. Throws StoreOpenError with advice. */
  static open(options: RingOptions): SqliteRing {
    const file = join(options.dataDir, STORE_FILE);
    const readonly = options.readonly ?? false;
    if (readonly && !existsSync(file)) {
      throw new StoreOpenError(file, 'no store here', 'Check --data-dir / data_dir, or start the agent or an import first.');
    }
    if (!readonly) mkdirSync(options.dataDir, { recursive: true });
    let db: Database.Database;
    try {
      db = new Database(file, { readonly, fileMustExist: readonly });
    } catch (err) {
      throw new StoreOpenError(file, `cannot open (${(err as Error).message})`, 'Check the path and its permissions.', { cause: err });
    }
    try {
      // Read before any write so a file that is not ours is never modified.
      const objects = db.prepare("SELECT count(*) AS n FROM sqlite_master WHERE type='table'").get() as { n: number };
      const hasMeta = (db.prepare("SELECT count(*) AS n FROM sqlite_master WHERE type='table' AND name='meta'").get() as { n: number }).n === 1;
      if (objects.n > 0 && !hasMeta) {
        throw new StoreOpenError(file, 'is an SQLite database but not a sluice store', 'Point --data-dir at a sluice data directory, or move this file away.');
      }
      db.pragma('busy_timeout = 10000');
      db.pragma(`cache_size = ${-Math.max(64, Math.round((options.cacheBytes ?? DEFAULT_CACHE_BYTES) / 1024))}`);
      if (!readonly) {
        const check = db.pragma('quick_check', { simple: true }) as string;
        if (check !== 'ok') throw new Error(`integrity check failed: ${check}`);
        db.pragma('journal_mode = WAL');
        db.pragma('synchronous = FULL');
        db.exec(SCHEMA);
        const insertMeta = db.prepare('INSERT OR IGNORE INTO meta(key, value) VALUES (?, ?)');
        insertMeta.run('format', String(STORE_FORMAT));
        insertMeta.run('created_ms', String(Date.now()));
      }
      if (objects.n > 0 || !readonly) {
        const format = db.prepare("SELECT value FROM meta WHERE key='format'").get() as { value: string } | undefined;
        if (format && Number(format.value) > STORE_FORMAT) {
          throw new StoreOpenError(file, `store format ${format.value} is newer than this sluice understands (${STORE_FORMAT})`, 'Run a newer sluice on it.');
        }
      }
      const ring = new SqliteRing(db, file, options);
      if (!readonly) {
        ring.applyWalBudget();
        ring.markNewTiers();
        ring.sealFullChunks();
        ring.countTotals();
        ring.migrateOnce('series_key_order', () => reorderSeriesKeys(db));
      }
      ring.totalsKept = ring.migrated('tier_totals');
      return ring;
    } catch (err) {
      db.close();
      if (err instanceof StoreOpenError) throw err;
      throw new StoreOpenError(
        file,
        `cannot be read: ${(err as Error).message}`,
        'The file is damaged or not a sluice store. Nothing was changed: move it (and any -wal/-shm files beside it) away and restore a backup, or start an empty store.',
        { cause: err },
      );
    }
  }

  /**
   * A prepared statement, prepared once per text: the maintenance passes run the same few queries for
   * every series, and preparing them each time showed up as CPU and garbage at 10k points/s.
   */
  private sql(text: string): Database.Statement {
    let stmt = this.statements.get(text);
    if (!stmt) {
      stmt = this.db.prepare(text);
      this.statements.set(text, stmt);
    }
    return stmt;
  }

  private prepareStatements() {
    const db = this.db;
    const ro = this.readonly;
    return {
      seriesByKey: db.prepare('SELECT id FROM series WHERE key = ?').pluck(),
      insertSeries: ro ? undefined : db.prepare('INSERT INTO series(key, measurement) VALUES (?, ?)'),
      insertChunk: ro
        ? undefined
        : db.prepare('INSERT INTO chunks(series_id, min_us, max_us, rows, vals, level, data, tier) VALUES (?, ?, ?, ?, ?, ?, ?, ?)'),
      // length() of a blob reads its header, not its overflow pages.
      oldestChunks: db.prepare('SELECT id, series_id, max_us, rows, vals, tier, length(data) AS bytes FROM chunks WHERE tier = ? ORDER BY max_us, id LIMIT ?'),
      oldestAny: db.prepare('SELECT id, series_id, max_us, rows, vals, tier, length(data) AS bytes FROM chunks ORDER BY max_us, id LIMIT ?'),
      markDirty: ro ? undefined : db.prepare('INSERT OR IGNORE INTO rollup_dirty(tier, series_id, from_us, to_us) VALUES (?, ?, ?, ?)'),
      deleteChunk: ro ? undefined : db.prepare('DELETE FROM chunks WHERE id = ?'),
      addDrop: ro
        ? undefined
        : db.prepare(
            'INSERT INTO drops(reason, points, vals) VALUES (?, ?, ?) ON CONFLICT(reason) DO UPDATE SET points = points + excluded.points, vals = vals + excluded.vals',
          ),
      pageCount: db.prepare('PRAGMA page_count').pluck(),
      freelistCount: db.prepare('PRAGMA freelist_count').pluck(),
    };
  }

  // ---------------------------------------------------------------- writing

  /**
   * Queues points for the next group commit. Resolves when they are durable; rejects with
   * StoreFullError if `drop_newest` refused them, or StoreClosedError if the store closed first.
   * `marks` (src/store/marks.ts) are written in the same transaction as the points.
   */
  write(points: readonly Point[], marks?: readonly CommitMark[]): Promise<void> {
    if (this.closed) return Promise.reject(new StoreClosedError());
    if (points.length === 0 && !marks?.length) return Promise.resolve();
    for (const p of points) this.addPending(p);
    const done = new Promise<void>((resolve, reject) => this.waiters.push({ resolve, reject, points: points.length, marks }));
    if (this.pendingValues >= this.opts.maxPendingValues) this.scheduleCommit(0);
    else this.scheduleCommit(this.opts.commitIntervalMs);
    return done;
  }

  private addPending(p: Point): void {
    const key = makeSeriesKey(p.measurement, p.tags);
    let builder = this.pending.get(key);
    if (!builder) {
      builder = new SeriesBuilder();
      this.pending.set(key, builder);
    }
    const before = builder.values;
    builder.add(p.timeUs, p.fields);
    this.pendingValues += builder.values - before;
  }

  private scheduleCommit(delayMs: number): void {
    if (this.commitTimer && delayMs > 0) return;
    if (this.commitTimer) clearTimeout(this.commitTimer);
    this.commitTimer = setTimeout(() => {
      this.commitTimer = undefined;
      this.commit();
    }, delayMs);
  }

  /** Commits every pending point now (one transaction) and settles their writers. */
  commit(): void {
    if (this.commitTimer) {
      clearTimeout(this.commitTimer);
      this.commitTimer = undefined;
    }
    const waiters = this.waiters;
    const pending = this.pending;
    if (waiters.length === 0 && pending.size === 0) return;
    this.waiters = [];
    this.pending = new Map();
    this.pendingValues = 0;
    const points = waiters.reduce((n, w) => n + w.points, 0);
    const startedMs = performance.now();
    let error: Error | undefined;
    try {
      const inserts: { key: string; group: RowGroup; level: number }[] = [];
      for (const [key, builder] of pending) inserts.push({ key, group: builder.build(), level: 0 });
      const marks = marksOf(waiters);
      // Marks alone take no room worth evicting for: they are committed even when the store is full.
      if (inserts.length > 0) this.writeGroups(inserts, points, () => this.marks.apply(marks));
      else this.db.transaction(() => this.marks.apply(marks))();
      for (const w of waiters) w.resolve();
    } catch (err) {
      error = err as Error;
      for (const w of waiters) w.reject(err as Error);
    }
    this.onCommit?.({ durationMs: performance.now() - startedMs, points, error });
  }

  /**
   * Writes groups in one transaction, making room first as `when_full` says. `points` is what the
   * caller counts as points for a drop_newest refusal; `alsoInTransaction` runs after the inserts,
   * in the same transaction (the group commit's marks).
   */
  writeGroups(entries: readonly { key: string; group: RowGroup; level: number; tier?: number }[], points?: number, alsoInTransaction?: () => void): void {
    const inserts: { seriesKey: string; insert: ChunkInsert; bytes: Uint8Array }[] = [];
    let bytes = 0;
    let values = 0;
    let rows = 0;
    for (const { key, group, level, tier = 0 } of entries) {
      for (let start = 0; start < group.timesUs.length; start += this.opts.maxChunkRows) {
        const part = sliceGroup(group, start, start + this.opts.maxChunkRows);
        const encoded = encodeChunk(part);
        bytes += encoded.length + 48; // row header, rowid and index entries
        values += groupValueCount(part);
        rows += part.timesUs.length;
        const partLevel = level === LEVEL_FRESH ? LEVEL_FRESH : part.timesUs.length >= this.opts.maxChunkRows ? LEVEL_SEALED : LEVEL_OPEN;
        inserts.push({ seriesKey: key, insert: { group: part, level: partLevel, tier }, bytes: encoded });
      }
    }
    const tx = this.db.transaction(() => {
      if (!this.makeRoom(bytes)) throw new StoreFullError(points ?? rows);
      for (const item of inserts) {
        const seriesId = this.seriesId(item.seriesKey);
        const g = item.insert.group;
        this.stmt.insertChunk!.run(
          seriesId,
          g.timesUs[0],
          g.timesUs[g.timesUs.length - 1],
          g.timesUs.length,
          groupValueCount(g),
          item.insert.level,
          item.bytes,
          item.insert.tier,
        );
        if (item.insert.tier === 0) this.markDirty(seriesId, g);
      }
      alsoInTransaction?.();
    });
    try {
      tx();
    } catch (err) {
      // The transaction rolled back; the refusal is counted on its own.
      if (err instanceof StoreFullError) this.stmt.addDrop!.run('dropped_newest', points ?? rows, values);
      throw err;
    }
    this.checkpointIfLarge();
  }

  /**
   * A window added to `aggregate.windows` since the last open has no rollups of the data already
   * stored: mark all of it dirty for the new tiers, once.
   */
  private markNewTiers(): void {
    if (this.explicitWindows === false) return;
    const known = this.sql("SELECT value FROM meta WHERE key = 'rollup_windows_ms'").pluck().get() as string | undefined;
    const before = new Set(known === undefined ? [] : (JSON.parse(known) as number[]));
    const added = this.opts.rollupWindowsMs.filter((w) => !before.has(w));
    this.db.transaction(() => {
      if (added.length > 0 && known !== undefined) {
        // Ids first: better-sqlite3 cannot write while a statement is still iterating.
        const ids = this.sql('SELECT id FROM chunks WHERE tier = 0').pluck().all() as number[];
        const chunkOf = this.sql('SELECT series_id, data FROM chunks WHERE id = ?');
        for (const id of ids) {
          const c = chunkOf.get(id) as { series_id: number; data: Uint8Array };
          const times = decodeChunk(c.data, new Set()).timesUs;
          for (const w of added) this.markRange(w, c.series_id, times[0], times[times.length - 1]);
        }
      }
      this.sql("INSERT OR REPLACE INTO meta(key, value) VALUES ('rollup_windows_ms', ?)").run(JSON.stringify(this.opts.rollupWindowsMs));
    })();
  }

  /** Whether the one-time step `key` (see migrateOnce) has been done in this store. */
  private migrated(key: string): boolean {
    return this.sql('SELECT 1 FROM meta WHERE key = ?').get(key) !== undefined;
  }

  /** Runs `step` once per store, in one transaction with the meta key that records it. */
  private migrateOnce(key: string, step: () => void): void {
    if (this.migrated(key)) return;
    this.db.transaction(() => {
      step();
      this.sql("INSERT INTO meta(key, value) VALUES (?, '1')").run(key);
    })();
  }

  /** Stores from before tier_totals existed: count once, the triggers keep it from then on. */
  private countTotals(): void {
    this.migrateOnce('tier_totals', () => {
      this.sql('DELETE FROM tier_totals').run();
      this.sql('INSERT INTO tier_totals(tier, chunks, rows, vals) SELECT tier, count(*), sum(rows), sum(vals) FROM chunks GROUP BY tier').run();
    });
  }

  /**
   * Stores written before chunks were sealed hold their full chunks at level 1: seal them once, so
   * compaction's index of open chunks stays a few entries per series.
   */
  private sealFullChunks(): void {
    this.migrateOnce('sealed_levels', () => {
      this.sql('UPDATE chunks SET level = ? WHERE level = ? AND rows >= ?').run(LEVEL_SEALED, LEVEL_OPEN, this.opts.maxChunkRows);
    });
  }

  /**
   * Records the windows of every tier that these raw points fall in as needing (re)computation: one
   * range per chunk and tier (a window in the range without data simply yields nothing).
   */
  private markDirty(seriesId: number, group: RowGroup): void {
    if (this.opts.rollupWindowsMs.length === 0) return;
    const timesUs = group.timesUs;
    const first = timesUs[0];
    const last = timesUs[timesUs.length - 1];
    const rolledUntil = this.rolledUpUntil(seriesId);
    if (first < rolledUntil) this.mergeLate(seriesId, group, rolledUntil);
    for (const [ti, windowMs] of this.opts.rollupWindowsMs.entries()) {
      const from = ti === 0 ? Math.max(first, rolledUntil) : first;
      if (from <= last) this.markRange(windowMs, seriesId, from, last);
    }
  }

  private markRange(windowMs: number, seriesId: number, firstUs: number, lastUs: number): void {
    const windowUs = windowMs * 1000;
    this.stmt.markDirty!.run(windowMs, seriesId, Math.floor(firstUs / windowUs) * windowUs, Math.floor(lastUs / windowUs) * windowUs);
  }

  private seriesId(key: string): number {
    let id = this.seriesIds.get(key);
    if (id !== undefined) return id;
    id = this.stmt.seriesByKey.get(key) as number | undefined;
    if (id === undefined) {
      const measurement = measurementOf(key);
      id = Number(this.stmt.insertSeries!.run(key, measurement).lastInsertRowid);
    }
    this.seriesIds.set(key, id);
    return id;
  }

  // ------------------------------------------------------------- capacity

  private applyWalBudget(): void {
    this.db.pragma(`wal_autocheckpoint = ${this.capacity.checkpointPages}`);
    this.db.pragma(`journal_size_limit = ${this.capacity.walBudgetBytes}`);
  }

  /** Bytes the database file may hold (see capacity.ts). */
  private dataBudgetBytes(): number {
    return this.capacity.dataBudgetBytes;
  }

  private usedBytes(): number {
    return ((this.stmt.pageCount.get() as number) - (this.stmt.freelistCount.get() as number)) * this.pageSize;
  }

  /** Inside a write transaction: room for `incomingBytes` as `when_full` says (see eviction.ts). */
  private makeRoom(incomingBytes: number): boolean {
    const host: EvictionHost = {
      whenFull: this.opts.whenFull,
      rollupWindowsMs: this.opts.rollupWindowsMs,
      pageSize: this.pageSize,
      dataBudgetBytes: () => this.dataBudgetBytes(),
      usedBytes: () => this.usedBytes(),
      oldestChunks: (tier, limit) => (tier === null ? this.stmt.oldestAny.all(limit) : this.stmt.oldestChunks.all(tier, limit)) as ChunkMeta[],
      rollUpBefore: (seriesId, untilUs, rawGoes) => this.rollUpBeforeEvicting(seriesId, untilUs, rawGoes),
      remove: (victim) => {
        this.countUnsent(victim);
        this.stmt.deleteChunk!.run(victim.id);
      },
      addDrop: (reason, points, values) => this.stmt.addDrop!.run(reason, points, values),
    };
    return makeRoom(host, incomingBytes);
  }

  /** An output that had not received a chunk about to go is told so in its status (by reason of loss). */
  private countUnsent(victim: { id: number; rows: number; tier: number }): void {
    for (const cur of this.sql('SELECT output, ranges FROM cursors WHERE tier = ?').all(victim.tier) as { output: string; ranges: string }[]) {
      if (containsId(JSON.parse(cur.ranges) as IdRange[], victim.id)) continue;
      this.sql('UPDATE cursors SET rolled_up_unsent = rolled_up_unsent + ? WHERE output = ?').run(victim.rows, cur.output);
    }
  }

  /**
   * Before chunks up to `untilUs` go: every window they touch is rolled up in the tiers above them;
   * `rawGoes`: raw data up to there is replaced by the rollups from now on.
   */
  private rollUpBeforeEvicting(seriesId: number, untilUs: number, rawGoes: boolean): void {
    this.rollUp({ seriesId, untilUs });
    if (!rawGoes) return;
    const windowUs = this.opts.rollupWindowsMs[0] * 1000;
    const until = (Math.floor(untilUs / windowUs) + 1) * windowUs;
    this.sql('UPDATE series SET rolled_up_until_us = max(coalesce(rolled_up_until_us, ?), ?) WHERE id = ?').run(until, until, seriesId);
  }

  private checkpointIfLarge(): void {
    if (fileSize(this.file + '-wal') > this.capacity.walBudgetBytes) this.checkpointNow();
  }

  private checkpointNow(): void {
    try {
      this.db.pragma('wal_checkpoint(TRUNCATE)');
    } catch {
      // A reader holding an old snapshot blocks truncation; the next commit tries again.
    }
  }

  // ------------------------------------------------------------- compaction

  /**
   * Merges a series' fresh (level-0) chunks into one open chunk, and open chunks with each other as
   * MERGE_RATIO says (`force`: every mergeable chunk into one). Chunks are only merged with chunks that
   * every output has treated alike (all sent or all unsent), and never while leased, so delivery state
   * survives. Returns the number of series compacted.
   */
  compact(options: { force?: boolean; maxSeries?: number; budgetMs?: number } = {}): number {
    if (this.readonly) return 0;
    // The candidate query groups every open chunk of the store, so the series a pass had no time for are
    // taken from the queue first; one compacted meanwhile finds nothing to merge and costs one lookup.
    const candidates = !options.force && this.compactQueue.length > 0 ? this.compactQueue : this.compactCandidates(options.force ?? false, options.maxSeries ?? -1);
    if (candidates.length === 0) return 0;
    // A merge rewrites whole chunks, a large transaction next to a small WAL budget: it starts on an
    // empty WAL so that it alone is what the WAL holds (see capacity.ts).
    if (this.capacity.walBudgetBytes < SMALL_WAL_BYTES && fileSize(this.file + '-wal') > 0) this.checkpointNow();
    const cursors = this.loadCursors();
    const leased = new Set<number>();
    for (const ids of this.leased.values()) for (const id of ids) leased.add(id);
    let compacted = 0;
    let done = 0;
    const deadline = performance.now() + (options.budgetMs ?? Infinity);
    // One transaction for the pass: under synchronous=FULL every commit is an fsync, and a pass of a
    // few hundred series committed one by one stalled the event loop for ~300 ms.
    this.db.transaction(() => {
      for (; done < candidates.length; done++) {
        // The time budget keeps a pass short; the candidates left over (most fresh chunks first) come next pass.
        if (performance.now() > deadline) break;
        if (this.compactSeries(candidates[done], cursors, leased, options.force ?? false)) compacted++;
      }
    })();
    this.compactQueue = options.force ? [] : candidates.slice(done);
    this.checkpointIfLarge();
    return compacted;
  }

  /** Series (and tiers) with enough fresh chunks to compact, most first; `force`: any with two open chunks. */
  private compactCandidates(force: boolean, maxSeries: number): { id: number; tier: number }[] {
    // `level < 2` spelled out so SQLite uses the partial index chunks_open (it does not infer it from level = 0).
    const rows = force
      ? this.sql('SELECT series_id AS id, tier, count(*) AS n FROM chunks WHERE level < 2 GROUP BY series_id, tier HAVING n >= 2 ORDER BY n DESC LIMIT ?').all(maxSeries)
      : this.sql(
          'SELECT series_id AS id, tier, count(*) AS n, sum(rows) AS r FROM chunks WHERE level < 2 AND level = 0 GROUP BY series_id, tier HAVING n >= ? OR r >= ? ORDER BY n DESC LIMIT ?',
        ).all(COMPACT_MIN_L0, this.opts.maxChunkRows, maxSeries);
    return rows as { id: number; tier: number }[];
  }

  /** Compacts one series' open and fresh chunks of one tier (see compact); true if anything merged. */
  private compactSeries(cand: { id: number; tier: number }, cursors: { output: string; ranges: IdRange[] }[], leased: ReadonlySet<number>, force: boolean): boolean {
    type OpenChunk = { id: number; level: number; rows: number; data: Uint8Array };
    const chunks = this.sql('SELECT id, level, rows, data FROM chunks WHERE series_id = ? AND tier = ? AND level < 2 ORDER BY id').all(cand.id, cand.tier) as OpenChunk[];
    // Runs of consecutive chunks with the same delivery signature can merge.
    const runs: OpenChunk[][] = [];
    let lastSig = '';
    for (const c of chunks) {
      // Leased chunks, and full chunks of stores written before sealing existed, end a run.
      if (leased.has(c.id) || (c.level === LEVEL_OPEN && c.rows >= this.opts.maxChunkRows)) {
        lastSig = '';
        runs.push([]);
        continue;
      }
      // An output's live mark splits runs too, so no merge moves data between its lanes.
      const sig = cursors.map((cur) => (containsId(cur.ranges, c.id) ? '1' : '0') + (c.id > (this.liveMarks.get(cur.output) ?? Infinity) ? 'L' : '')).join('');
      if (runs.length === 0 || sig !== lastSig) runs.push([]);
      runs[runs.length - 1].push(c);
      lastSig = sig;
    }
    let did = false;
    for (const run of runs) {
      for (let segment of mergePlan(run, force)) {
        // A merge's transaction writes every byte it merges: under a small cap the oldest chunks of an
        // oversized merge are left out, so the WAL stays within its reservation (see capacity.ts).
        while (segment.length >= 2 && segment.reduce((n, c) => n + c.data.length, 0) > this.capacity.maxMergeBytes) segment = segment.slice(1);
        if (segment.length < 2) continue;
        this.mergeChunks(cand, segment, cursors);
        did = true;
      }
    }
    return did;
  }

  /** Replaces consecutive chunks of one series by their merge, under the same ids (see below). */
  private mergeChunks(cand: { id: number; tier: number }, segment: readonly { id: number; data: Uint8Array }[], cursors: { output: string; ranges: IdRange[] }[]): void {
    const builder = new SeriesBuilder();
    for (const c of segment) builder.addGroup(decodeChunk(c.data));
    const merged = builder.build();
    for (const c of segment) this.stmt.deleteChunk!.run(c.id);
    const sentBy = cursors.filter((cur) => containsId(cur.ranges, segment[0].id));
    // The merged parts take the segment's own (lowest) ids, never new ones: ids are the order outputs
    // deliver in, and a merge must not move a backlog behind data written after it. n chunks of at
    // most maxChunkRows rows each never need more than n parts.
    const insertWithId = this.sql('INSERT INTO chunks(id, series_id, min_us, max_us, rows, vals, level, data, tier) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)');
    const newIds: number[] = [];
    for (let start = 0; start < merged.timesUs.length; start += this.opts.maxChunkRows) {
      const part = sliceGroup(merged, start, start + this.opts.maxChunkRows);
      const rows = part.timesUs.length;
      const info = insertWithId.run(
        segment[newIds.length].id,
        cand.id,
        part.timesUs[0],
        part.timesUs[rows - 1],
        rows,
        groupValueCount(part),
        rows >= this.opts.maxChunkRows ? LEVEL_SEALED : LEVEL_OPEN,
        encodeChunk(part),
        cand.tier,
      );
      newIds.push(Number(info.lastInsertRowid));
    }
    for (const cur of sentBy) {
      cur.ranges = addIds(cur.ranges, newIds);
      this.sql('UPDATE cursors SET ranges = ? WHERE output = ?').run(JSON.stringify(cur.ranges), cur.output);
    }
  }

  // ---------------------------------------------------------------- reading

  /** Series matching the filter, in creation order. */
  listSeries(measurement?: string): { id: number; key: string; measurement: string }[] {
    const rows = measurement === undefined
      ? this.sql('SELECT id, key, measurement FROM series ORDER BY id').all()
      : this.sql('SELECT id, key, measurement FROM series WHERE measurement = ? ORDER BY id').all(measurement);
    return rows as { id: number; key: string; measurement: string }[];
  }

  /**
   * Yields each matching series' rows in time order, as groups of at most a few chunks: overlapping
   * chunks (late or re-imported data) are merged, the later write winning for the same time and field.
   */
  *scan(filter: ScanFilter = {}): Generator<SeriesGroup> {
    for (const s of this.listSeries(filter.measurement)) {
      for (const group of this.seriesGroups(s.id, 0, filter.fromUs, filter.toUs, filter.fields)) {
        yield { seriesId: s.id, key: s.key, measurement: s.measurement, group };
      }
    }
  }

  /** One series' groups of one tier (0 = raw, else a rollup window in ms) within [fromUs, toUs). */
  *seriesGroups(seriesId: number, tier: number, fromUs = -Number.MAX_SAFE_INTEGER, toUs = Number.MAX_SAFE_INTEGER, fields?: ReadonlySet<string>): Generator<RowGroup> {
    const rows = this.db
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

  /** Rollup tiers (window ms) present in the store, shortest first. */
  storedTiers(): number[] {
    return this.sql('SELECT DISTINCT tier FROM chunks WHERE tier > 0 UNION SELECT DISTINCT tier FROM rollup_dirty ORDER BY 1').pluck().all() as number[];
  }

  /**
   * Ranges of window starts [first, last] of one series and tier that still wait for (re)computation,
   * merged and clipped to starts in [fromUs, toUs).
   */
  dirtyRanges(seriesId: number, tier: number, fromUs = -Number.MAX_SAFE_INTEGER, toUs = Number.MAX_SAFE_INTEGER): [number, number][] {
    const rows = this.db
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

  // ---------------------------------------------------------------- rollups

  /**
   * Computes the rollup windows marked dirty by writes: every tier straight from raw data (so a
   * query answers the same from rollups as from raw), or from the tier below for windows whose raw
   * data has already been replaced by rollups. Windows still open (ending after `nowUs`) wait, unless
   * `untilUs` asks for everything starting at or before it (eviction does, before deleting raw data).
   * Returns the number of windows written.
   */
  rollUp(opts: { nowUs?: number; untilUs?: number; seriesId?: number; maxSeries?: number; budgetMs?: number } = {}): number {
    const tiers = this.opts.rollupWindowsMs;
    if (this.readonly || tiers.length === 0) return 0;
    const now = opts.nowUs ?? Date.now() * 1000;
    let written = 0;
    // Between series, not inside one: a series' dirty ranges are taken out and recomputed together.
    const deadline = performance.now() + (opts.budgetMs ?? Infinity);
    const run = () => {
      for (let ti = 0; ti < tiers.length; ti++) {
        const tier = tiers[ti];
        const windowUs = tier * 1000;
        const lastStart = Math.floor((opts.untilUs ?? now - windowUs) / windowUs) * windowUs;
        const seriesIds =
          opts.seriesId === undefined
            ? (this.sql('SELECT DISTINCT series_id FROM rollup_dirty WHERE tier = ? AND from_us <= ? LIMIT ?').pluck().all(tier, lastStart, opts.maxSeries ?? -1) as number[])
            : [opts.seriesId];
        for (const seriesId of seriesIds) {
          if (performance.now() > deadline) return;
          const ranges = this.dirtyRanges(seriesId, tier, -Number.MAX_SAFE_INTEGER, lastStart + 1);
          if (ranges.length === 0) continue;
          // Take the ranges out; what lies beyond lastStart (windows still open) goes back in.
          const rows = this.sql('SELECT from_us AS a, to_us AS b FROM rollup_dirty WHERE tier = ? AND series_id = ? AND from_us <= ?').all(tier, seriesId, lastStart) as { a: number; b: number }[];
          this.sql('DELETE FROM rollup_dirty WHERE tier = ? AND series_id = ? AND from_us <= ?').run(tier, seriesId, lastStart);
          for (const r of rows) if (r.b > lastStart) this.stmt.markDirty!.run(tier, seriesId, lastStart + windowUs, r.b);
          const rolledUntil = this.rolledUpUntil(seriesId);
          for (const [first, last] of ranges) {
            // Batches of windows bound the memory a long import's rollups take.
            for (let lo = first; lo <= last; lo += this.opts.maxChunkRows * windowUs) {
              const hi = Math.min(last, lo + (this.opts.maxChunkRows - 1) * windowUs);
              written += this.rollUpWindows(seriesId, ti, lo, hi, rolledUntil);
            }
          }
        }
      }
    };
    this.db.transaction(run)();
    return written;
  }

  /**
   * Recomputes the windows of tier `ti` starting in [firstUs, lastUs] of one series: the finest tier
   * from raw data (late points into rolled-up windows were merged when written), coarser tiers from
   * raw too (so a query answers the same from rollups as from raw) except below the rolled-up mark,
   * where they build on the tier below.
   */
  private rollUpWindows(seriesId: number, ti: number, firstUs: number, lastUs: number, rolledUntil: number): number {
    const tiers = this.opts.rollupWindowsMs;
    const tier = tiers[ti];
    const windowUs = tier * 1000;
    const states: WindowStates = new Map();
    const split = ti === 0 ? firstUs : Math.min(Math.max(firstUs, Math.floor(rolledUntil / windowUs) * windowUs + (rolledUntil % windowUs === 0 ? 0 : windowUs)), lastUs + windowUs);
    if (split > firstUs) {
      for (const g of this.seriesGroups(seriesId, tiers[ti - 1], firstUs, split)) aggregateRollup(g, windowUs, states);
    }
    if (split <= lastUs) {
      for (const g of this.seriesGroups(seriesId, 0, split, lastUs + windowUs)) aggregateRaw(g, windowUs, states);
    }
    if (states.size === 0) return 0;
    const group = statesToGroup(states);
    this.superseded!.removeFrom(seriesId, tier, group);
    this.stmt.insertChunk!.run(seriesId, group.timesUs[0], group.timesUs[group.timesUs.length - 1], group.timesUs.length, groupValueCount(group), 0, encodeChunk(group), tier);
    return group.timesUs.length;
  }

  /**
   * Raw data of a series before this time (a window boundary of the finest tier) has been replaced by
   * rollups: windows before it are complete in the rollups and only ever gain late points.
   */
  private rolledUpUntil(seriesId: number): number {
    const v = this.sql('SELECT rolled_up_until_us FROM series WHERE id = ?').pluck().get(seriesId) as number | null | undefined;
    return v ?? -Infinity;
  }

  /** Late points for windows whose raw data is gone: merged into the stored window states at once. */
  private mergeLate(seriesId: number, group: RowGroup, rolledUntil: number): void {
    const tier = this.opts.rollupWindowsMs[0];
    const windowUs = tier * 1000;
    const late = clipGroup(group, -Number.MAX_SAFE_INTEGER, rolledUntil);
    const states: WindowStates = new Map();
    aggregateRaw(late, windowUs, states);
    const starts = new Set(states.keys());
    const existing: WindowStates = new Map();
    for (const g of this.seriesGroups(seriesId, tier, Math.min(...starts), Math.max(...starts) + windowUs)) aggregateRollup(g, windowUs, existing, starts);
    for (const [start, fields] of states) {
      for (const [field, state] of existing.get(start) ?? []) {
        const mine = fields.get(field);
        if (mine) mergeState(mine, state);
        else fields.set(field, state);
      }
    }
    const merged = statesToGroup(states);
    this.superseded!.removeFrom(seriesId, tier, merged);
    this.stmt.insertChunk!.run(seriesId, merged.timesUs[0], merged.timesUs[merged.timesUs.length - 1], merged.timesUs.length, groupValueCount(merged), 0, encodeChunk(merged), tier);
  }

  // ---------------------------------------------------------------- outputs

  /**
   * Makes sure an output has a cursor; a new output starts with everything in the store unsent.
   * `tier` is what it ships: 0 for raw points, or a rollup window in ms (its `resolution`).
   */
  registerOutput(output: string, tier = 0): void {
    this.sql('INSERT OR IGNORE INTO cursors(output, tier) VALUES (?, ?)').run(output, tier);
    this.sql('UPDATE cursors SET tier = ? WHERE output = ?').run(tier, output);
    if (!this.leased.has(output)) this.leased.set(output, new Set());
  }

  private tierOf(output: string): number {
    return (this.sql('SELECT tier FROM cursors WHERE output = ?').pluck().get(output) as number | undefined) ?? 0;
  }

  private loadCursors(): { output: string; ranges: IdRange[] }[] {
    return (this.sql('SELECT output, ranges FROM cursors ORDER BY output').all() as { output: string; ranges: string }[]).map(
      (r) => ({ output: r.output, ranges: JSON.parse(r.ranges) as IdRange[] }),
    );
  }

  private rangesOf(output: string): IdRange[] {
    const row = this.sql('SELECT ranges FROM cursors WHERE output = ?').get(output) as { ranges: string } | undefined;
    if (!row) throw new Error(`unknown output ${output}`);
    return JSON.parse(row.ranges) as IdRange[];
  }

  /**
   * Leases unsent chunks to an output: `oldest` first (backfill) or `newest` first (live). Leased
   * chunks are not offered again until released. At least one chunk is leased if any is available,
   * even if it alone exceeds `maxPoints`. `minId`/`maxId` (inclusive) bound the ids, so an output can
   * keep a live lane and a backfill lane apart; chunks of a series in `skipSeries` are passed over (an
   * output keeps one series in one request at a time, so a retry never lands after newer data).
   */
  lease(
    output: string,
    opts: { maxPoints: number; order: 'oldest' | 'newest'; minId?: number; maxId?: number; skipSeries?: ReadonlySet<string> },
  ): Lease | null {
    const leased = this.leased.get(output) ?? new Set<number>();
    this.leased.set(output, leased);
    const ranges = this.rangesOf(output);
    const tier = this.tierOf(output);
    let minId = opts.minId ?? 0;
    // A backfill walks up from the oldest chunk; when the first delivered range reaches down to it, start
    // after that range instead of stepping over every delivered chunk.
    if (ranges.length > 0 && ranges[0][1] >= minId) {
      const first = this.sql('SELECT min(id) FROM chunks WHERE tier = ?').pluck().get(tier) as number | null;
      if (first !== null && ranges[0][0] <= Math.max(first, minId)) minId = ranges[0][1] + 1;
    }
    const where = outsideRangesSql('c.id', ranges);
    // Metadata first, blobs only for the chunks taken: skipped chunks cost no I/O. `+c.tier` keeps
    // SQLite off the tier index (every chunk of the tier, then a sort): the walk follows the id order.
    const rows = this.db
      .prepare(
        `SELECT c.id, c.rows, c.vals, c.min_us, s.key FROM chunks c JOIN series s ON s.id = c.series_id
         WHERE ${where.sql} AND +c.tier = ? AND c.id >= ? AND c.id <= ? ORDER BY c.id ${opts.order === 'oldest' ? 'ASC' : 'DESC'}`,
      )
      .iterate(...where.params, tier, minId, opts.maxId ?? Number.MAX_SAFE_INTEGER) as IterableIterator<{ id: number; rows: number; vals: number; min_us: number; key: string }>;
    const dataOf = this.sql('SELECT data FROM chunks WHERE id = ?').pluck();
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

  /**
   * Marks where an output's live lane starts: chunks with a higher id are its live data, the rest its
   * backlog. Compaction never merges chunks across the mark, so a merge moves no data between lanes.
   * Not persisted (an output sets it when it starts); null removes it.
   */
  setLiveMark(output: string, chunkId: number | null): void {
    if (chunkId === null) this.liveMarks.delete(output);
    else this.liveMarks.set(output, chunkId);
  }

  /** Points in chunks with an id above `chunkId` (written after it), delivered or not: cheap, by rowid. */
  pointsAfter(chunkId: number): number {
    return this.sql('SELECT coalesce(sum(rows), 0) FROM chunks WHERE id > ?').pluck().get(chunkId) as number;
  }

  /**
   * Records a lease as delivered: its chunks never go to this output again. `rejectedPoints` of them
   * were refused by the upstream for good (counted, not retried).
   */
  settle(lease: Lease, result: { rejectedPoints?: number; nowMs?: number } = {}): void {
    const rejected = result.rejectedPoints ?? 0;
    const tx = this.db.transaction(() => {
      const ranges = addIds(this.rangesOf(lease.output), lease.chunks.map((c) => c.chunkId));
      this.db
        .prepare('UPDATE cursors SET ranges = ?, sent_points = sent_points + ?, rejected_points = rejected_points + ?, last_success_ms = ? WHERE output = ?')
        .run(JSON.stringify(this.compressRanges(ranges, this.tierOf(lease.output))), lease.points - rejected, rejected, result.nowMs ?? Date.now(), lease.output);
    });
    tx();
    this.release(lease);
  }

  /** Gives a lease back undelivered: its chunks will be offered again. */
  release(lease: Lease): void {
    const leased = this.leased.get(lease.output);
    if (leased) for (const c of lease.chunks) leased.delete(c.chunkId);
  }

  /** Joins ranges separated only by ids that no longer exist, so cursors stay a handful of ranges. */
  private compressRanges(ranges: IdRange[], tier: number): IdRange[] {
    if (ranges.length < 2) return ranges;
    const anyBetween = this.sql('SELECT 1 FROM chunks WHERE id > ? AND id < ? AND tier = ? LIMIT 1').pluck();
    const out: IdRange[] = [ranges[0]];
    for (let i = 1; i < ranges.length; i++) {
      const prev = out[out.length - 1];
      if (anyBetween.get(prev[1], ranges[i][0], tier) === undefined) prev[1] = ranges[i][1];
      else out.push(ranges[i]);
    }
    return out;
  }

  /** Id of the newest chunk, so an output can tell live chunks (written later) from its backlog. */
  lastChunkId(): number {
    return (this.sql("SELECT seq FROM sqlite_sequence WHERE name = 'chunks'").pluck().get() as number | undefined) ?? 0;
  }

  outputStatus(output: string): OutputStatus {
    const row = this.sql('SELECT ranges, sent_points, rejected_points, last_success_ms, tier, rolled_up_unsent FROM cursors WHERE output = ?').get(output) as
      | { ranges: string; sent_points: number; rejected_points: number; last_success_ms: number | null; tier: number; rolled_up_unsent: number }
      | undefined;
    if (!row) return { backlog_points: 0, backlog_values: 0, oldest_unsent_ms: null, last_success_ms: null, sent_points: 0, rejected_points: 0, lost_unsent_points: 0 };
    const where = outsideRangesSql('id', JSON.parse(row.ranges) as IdRange[]);
    const backlog = this.db
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

  // ---------------------------------------------------------------- status

  status(): StoreStatus {
    const tiers = this.tierTotals();
    const raw = tiers.find((t) => t.tier === 0);
    const totals = { chunks: raw?.chunks ?? 0, points: raw?.rows ?? 0, vals: raw?.vals ?? 0, oldest: raw?.oldest ?? null, newest: raw?.newest ?? null };
    const series = this.sql('SELECT count(*) FROM series').pluck().get() as number;
    const dropped: Record<string, number> = {};
    const droppedValues: Record<string, number> = {};
    for (const d of this.sql('SELECT reason, points, vals FROM drops ORDER BY reason').all() as { reason: string; points: number; vals: number }[]) {
      dropped[d.reason] = d.points;
      droppedValues[d.reason] = d.vals;
    }
    const outputs: Record<string, OutputStatus> = {};
    for (const { output } of this.sql('SELECT output FROM cursors ORDER BY output').all() as { output: string }[]) {
      outputs[output] = this.outputStatus(output);
    }
    return {
      points: totals.points,
      values: totals.vals,
      series,
      chunks: totals.chunks,
      store_bytes: this.storeBytes(),
      capacity_bytes: this.opts.maxBytes,
      used_bytes: this.usedBytes(),
      oldest_ms: totals.oldest === null ? null : Math.floor(totals.oldest / 1000),
      newest_ms: totals.newest === null ? null : Math.floor(totals.newest / 1000),
      when_full: this.opts.whenFull,
      dropped,
      dropped_values: droppedValues,
      outputs,
      tiers: this.tierStatus(tiers),
      runway_s: this.runwaySeconds(tiers.reduce((n, t) => n + t.vals, 0)),
    };
  }

  /**
   * Chunks, rows and values per tier, with the tier's time span: from the running totals when this
   * store keeps them (a read-only look at an older store counts). The newest time is exact (an index);
   * the oldest is the oldest point of the earliest-ending chunks, exact unless chunks overlap widely.
   */
  private tierTotals(): { tier: number; chunks: number; rows: number; vals: number; oldest: number | null; newest: number | null }[] {
    const counts = (
      this.totalsKept
        ? this.sql('SELECT tier, chunks, rows, vals FROM tier_totals WHERE chunks > 0 ORDER BY tier').all()
        : this.sql('SELECT tier, count(*) AS chunks, sum(rows) AS rows, sum(vals) AS vals FROM chunks GROUP BY tier ORDER BY tier').all()
    ) as { tier: number; chunks: number; rows: number; vals: number }[];
    const newest = this.sql('SELECT max(max_us) FROM chunks WHERE tier = ?').pluck();
    const oldest = this.sql(`SELECT min(min_us) FROM (SELECT min_us FROM chunks WHERE tier = ? ORDER BY max_us LIMIT ${OLDEST_PROBE_CHUNKS})`).pluck();
    return counts.map((c) => ({ ...c, oldest: oldest.get(c.tier) as number | null, newest: newest.get(c.tier) as number | null }));
  }

  private tierStatus(rows: ReturnType<SqliteRing['tierTotals']>): Record<string, TierStatus> {
    const out: Record<string, TierStatus> = {};
    for (const r of rows) {
      out[r.tier === 0 ? 'raw' : tierName(r.tier)] = {
        rows: r.rows,
        values: r.vals,
        chunks: r.chunks,
        oldest_ms: r.oldest === null ? null : Math.floor(r.oldest / 1000),
        newest_ms: r.newest === null ? null : Math.floor(r.newest / 1000),
      };
    }
    return out;
  }

  private runwaySeconds(allValues: number): number | null {
    const windowS = 600;
    const sinceUs = (Date.now() - windowS * 1000) * 1000;
    // Chunks written recently hold data stamped recently; live data is what fills the cap.
    const recent = this.sql('SELECT coalesce(sum(vals), 0) FROM chunks WHERE tier = 0 AND max_us >= ?').pluck().get(sinceUs) as number;
    if (recent === 0 || allValues === 0) return null;
    const bytesPerValue = this.usedBytes() / allValues;
    const free = this.dataBudgetBytes() - this.usedBytes();
    if (free <= 0) return null;
    return Math.round(free / ((recent / windowS) * bytesPerValue));
  }

  // ---------------------------------------------------------------- retention

  /**
   * Deletes chunks of `tier` whose newest time is before `beforeUs`, counted as `retention`. Raw data
   * is rolled up first (when rollups are configured), so retention of raw never loses a window.
   */
  expire(tier: number, beforeUs: number): number {
    if (this.readonly) return 0;
    let removed = 0;
    this.db.transaction(() => {
      const victims = this.sql('SELECT id, series_id, max_us, rows, vals, tier, length(data) AS bytes FROM chunks WHERE tier = ? AND max_us < ? ORDER BY max_us').all(tier, beforeUs) as ChunkMeta[];
      let points = 0;
      let values = 0;
      for (const v of victims) {
        if (this.opts.rollupWindowsMs.length > 0) this.rollUpBeforeEvicting(v.series_id, v.max_us, v.tier === 0);
        this.countUnsent(v);
        this.stmt.deleteChunk!.run(v.id);
        points += v.rows;
        values += v.vals;
      }
      if (victims.length > 0) this.stmt.addDrop!.run('retention', points, values);
      removed = points;
    })();
    return removed;
  }

  /** Database, WAL and shared-memory files as they are on disk. */
  storeBytes(): number {
    return fileSize(this.file) + fileSize(this.file + '-wal') + fileSize(this.file + '-shm');
  }

  // ---------------------------------------------------------------- lifecycle

  /** Commits what is pending, checkpoints, and closes. Idempotent. */
  close(): void {
    if (this.closed) return;
    if (!this.readonly) {
      this.commit();
      try {
        this.db.pragma('wal_checkpoint(TRUNCATE)');
      } catch {
        // Another process is reading; its own close or the next open will checkpoint.
      }
    }
    this.closed = true;
    if (this.commitTimer) clearTimeout(this.commitTimer);
    for (const w of this.waiters) w.reject(new StoreClosedError());
    this.waiters = [];
    this.db.close();
  }

  /** The commit marks of `scope` (see write). */
  readMarks(scope: string): Map<number, string> {
    return this.marks.read(scope);
  }

  /** For the bulk importer and rollups: run `fn` in one write transaction. */
  transaction<T>(fn: () => T): T {
    return this.db.transaction(fn)();
  }
}

/** The rollup windows recorded by the last writer that named them. */
function storedWindows(db: Database.Database): number[] {
  try {
    const v = db.prepare("SELECT value FROM meta WHERE key = 'rollup_windows_ms'").pluck().get() as string | undefined;
    return v === undefined ? [] : (JSON.parse(v) as number[]);
  } catch {
    return [];
  }
}

/** `60000` → `1m`: the name a window goes by in status and config. */
export function tierName(windowMs: number): string {
  const units: [string, number][] = [['d', 86_400_000], ['h', 3_600_000], ['m', 60_000], ['s', 1000]];
  for (const [u, ms] of units) if (windowMs % ms === 0) return `${windowMs / ms}${u}`;
  return `${windowMs}ms`;
}

function fileSize(path: string): number {
  try {
    return statSync(path).size;
  } catch {
    return 0;
  }
}

/** The measurement part of a series key: up to the first unescaped comma. */
export function measurementOf(key: string): string {
  let out = '';
  for (let i = 0; i < key.length; i++) {
    const c = key[i];
    if (c === '\\' && i + 1 < key.length) {
      out += key[i + 1];
      i++;
    } else if (c === ',') break;
    else out += c;
  }
  return out;
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
