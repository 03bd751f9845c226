// Opening a store: the file checks, the pragmas, the schema, and the one-time migrations that bring
// a store written by an older sluice up to date. Nothing is written to a file that is not ours, and a
// file that cannot be opened is reported with advice (StoreOpenError).
import Database from 'better-sqlite3';
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { StoreOpenError } from './errors.js';
import { DEFAULT_CACHE_BYTES, type RingOptions } from './options.js';
import { reorderSeriesKeys } from './series-keys.js';
import { LEVEL_OPEN, LEVEL_SEALED, type ChunkTable } from './table.js';

export const STORE_FILE = 'sluice.db';
export const STORE_FORMAT = 1;

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

/**
 * Opens (creating when writable and absent) the store in `dataDir` and hands the connection to
 * `build`, whose failure closes it again. Throws StoreOpenError with advice.
 */
export function openStore<T>(options: RingOptions, build: (db: Database.Database, file: string) => T): T {
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
    return build(db, file);
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

/** The rollup windows recorded by the last writer that named them. */
export function storedWindows(db: Database.Database): number[] {
  try {
    const v = db.prepare("SELECT value FROM meta WHERE key = 'rollup_windows_ms'").pluck().get() as string | undefined;
    return v === undefined ? [] : (JSON.parse(v) as number[]);
  } catch {
    return [];
  }
}

/** Whether the one-time step `key` (see migrateOnce) has been done in this store. */
export function migrated(table: ChunkTable, key: string): boolean {
  return table.sql('SELECT 1 FROM meta WHERE key = ?').get(key) !== undefined;
}

/** Runs `step` once per store, in one transaction with the meta key that records it. */
function migrateOnce(table: ChunkTable, key: string, step: () => void): void {
  if (migrated(table, key)) return;
  table.transaction(() => {
    step();
    table.sql("INSERT INTO meta(key, value) VALUES (?, '1')").run(key);
  });
}

/** The one-time steps for stores written by an older sluice, in the order they were introduced. */
export function migrate(table: ChunkTable): void {
  // Stores written before chunks were sealed hold their full chunks at level 1: seal them once, so
  // compaction's index of open chunks stays a few entries per series.
  migrateOnce(table, 'sealed_levels', () => {
    table.sql('UPDATE chunks SET level = ? WHERE level = ? AND rows >= ?').run(LEVEL_SEALED, LEVEL_OPEN, table.settings.maxChunkRows);
  });
  // Stores from before tier_totals existed: count once, the triggers keep it from then on.
  migrateOnce(table, 'tier_totals', () => {
    table.sql('DELETE FROM tier_totals').run();
    table.sql('INSERT INTO tier_totals(tier, chunks, rows, vals) SELECT tier, count(*), sum(rows), sum(vals) FROM chunks GROUP BY tier').run();
  });
  migrateOnce(table, 'series_key_order', () => reorderSeriesKeys(table.db));
}
