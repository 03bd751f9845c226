// The chunk table and what every part of the ring shares over it: the connection, prepared statements,
// series ids, and the few writes (insert, delete, count a drop) that several concerns make. The layout
// of the tables is in open.ts; what each concern does with them is in its own module (see ring.ts).
import type Database from 'better-sqlite3';
import { statSync } from 'node:fs';
import { measurementOf } from './series-keys.js';
import type { EvictionCandidate } from './eviction.js';
import type { RingSettings } from './options.js';

/** Chunk levels: fresh from a group commit, compacted but still open to merges, full and final. */
export const LEVEL_FRESH = 0;
export const LEVEL_OPEN = 1;
export const LEVEL_SEALED = 2;

/** A chunk's row without its data: what eviction and retention decide on and count. */
export type ChunkMeta = EvictionCandidate;

export class ChunkTable {
  readonly pageSize: number;
  readonly stmt: ReturnType<ChunkTable['prepareStatements']>;
  private readonly statements = new Map<string, Database.Statement>();
  private readonly seriesIds = new Map<string, number>();

  constructor(
    readonly db: Database.Database,
    readonly file: string,
    readonly readonly: boolean,
    readonly settings: RingSettings,
  ) {
    this.pageSize = db.pragma('page_size', { simple: true }) as number;
    this.stmt = this.prepareStatements();
  }

  /**
   * A prepared statement, prepared once per text: the maintenance passes run the same few queries for
   * every series, and preparing them each time showed up as CPU and garbage at 10k points/s.
   */
  sql(text: string): Database.Statement {
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

  /** The id of a series key, created on first use. */
  seriesId(key: string): number {
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

  /** Bytes in pages that hold data (free pages not counted: SQLite reuses them first). */
  usedBytes(): number {
    return ((this.stmt.pageCount.get() as number) - (this.stmt.freelistCount.get() as number)) * this.pageSize;
  }

  /** Runs `fn` in one write transaction. */
  transaction<T>(fn: () => T): T {
    return this.db.transaction(fn)();
  }
}

export function fileSize(path: string): number {
  try {
    return statSync(path).size;
  } catch {
    return 0;
  }
}
