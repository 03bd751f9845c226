// The quarantine: points an upstream refused for good (a 400 naming lines, a field type conflict, a
// value PostgreSQL will not store), kept per output instead of dropped, so an operator can see why,
// export them, fix the cause and send them again (`sluice quarantine …`). One row per series part of
// a refused batch, with the upstream's reason kept as it said it.
//
// Inside the byte cap: the rows live in the same file and count as used pages. When room is needed
// they go last, after every chunk (eviction.ts), and are counted as `quarantine_evicted`. A retry
// writes the points back as new chunks that only this output has not received (every other output's
// cursor gets their ids in the same transaction), and takes them off the output's rejected count, so
// a point refused again comes back here and is counted once.
import type { RowGroup } from '../core/chunk.js';
import { groupValueCount } from './builder.js';
import { decodeChunk, encodeChunk } from './codec/index.js';
import { CHUNK_OVERHEAD_BYTES } from './eviction.js';
import { addIds, type IdRange } from './ranges.js';
import type { GroupEntry, QuarantinedPart, QuarantineStatus } from './roles.js';
import { LEVEL_FRESH, type ChunkTable } from './table.js';

// Created with the first refused point, so a store that never had one is as it was, page for page.
const SCHEMA = `
CREATE TABLE IF NOT EXISTS quarantine(
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  output TEXT NOT NULL,
  reason TEXT NOT NULL,
  message TEXT NOT NULL,
  at_ms INTEGER NOT NULL,
  series_key TEXT NOT NULL,
  min_us INTEGER NOT NULL,
  max_us INTEGER NOT NULL,
  rows INTEGER NOT NULL,
  vals INTEGER NOT NULL,
  data BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS quarantine_output ON quarantine(output, reason);
`;

/** A quarantined part as eviction sees it. */
export interface QuarantineVictim {
  id: number;
  rows: number;
  vals: number;
  bytes: number;
}

export class Quarantine {
  private present = false;

  constructor(private readonly table: ChunkTable) {}

  /** Whether this store has the table yet (remembered once it has: another process may create it). */
  private exists(): boolean {
    if (!this.present) this.present = this.table.db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'quarantine'").get() !== undefined;
    return this.present;
  }

  /** Creates the table if this store has none yet; outside a transaction, so a rollback cannot undo it behind our back. */
  ensure(): void {
    if (this.exists()) return;
    this.table.db.exec(SCHEMA);
    this.present = true;
  }

  /** Encoded parts ready to insert, and their bytes (for making room first). */
  encode(parts: readonly { seriesKey: string; group: RowGroup }[]): { parts: { seriesKey: string; group: RowGroup; data: Uint8Array }[]; bytes: number } {
    let bytes = 0;
    const out = parts
      .filter((p) => p.group.timesUs.length > 0)
      .map((p) => {
        const data = encodeChunk(p.group);
        bytes += data.length + CHUNK_OVERHEAD_BYTES;
        return { ...p, data };
      });
    return { parts: out, bytes };
  }

  /** Inside a write transaction that made room: keeps refused parts of one batch with the upstream's reason. */
  insert(output: string, reason: string, message: string, nowMs: number, parts: readonly { seriesKey: string; group: RowGroup; data: Uint8Array }[]): void {
    const ins = this.table.sql('INSERT INTO quarantine(output, reason, message, at_ms, series_key, min_us, max_us, rows, vals, data) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)');
    for (const p of parts) {
      const t = p.group.timesUs;
      ins.run(output, reason, message, nowMs, p.seriesKey, t[0], t[t.length - 1], t.length, groupValueCount(p.group), p.data);
    }
  }

  /** Per output: points, values and bytes held, by reason, with the time they span and the last reason given. */
  status(): Record<string, QuarantineStatus> {
    const out: Record<string, QuarantineStatus> = {};
    if (!this.exists()) return out;
    const rows = this.table
      .sql(
        `SELECT output, reason, count(*) AS parts, sum(rows) AS points, sum(vals) AS vals, sum(length(data)) AS bytes, min(min_us) AS oldest, max(max_us) AS newest,
           min(at_ms) AS first_at, max(at_ms) AS last_at FROM quarantine GROUP BY output, reason ORDER BY output, reason`,
      )
      .all() as { output: string; reason: string; parts: number; points: number; vals: number; bytes: number; oldest: number; newest: number; first_at: number; last_at: number }[];
    const lastMessage = this.table.sql('SELECT message FROM quarantine WHERE output = ? AND reason = ? ORDER BY id DESC LIMIT 1').pluck();
    for (const r of rows) {
      const o = (out[r.output] ??= { points: 0, values: 0, bytes: 0, oldest_ms: null, newest_ms: null, reasons: {} });
      o.points += r.points;
      o.values += r.vals;
      o.bytes += r.bytes;
      const oldestMs = Math.floor(r.oldest / 1000);
      const newestMs = Math.floor(r.newest / 1000);
      o.oldest_ms = o.oldest_ms === null ? oldestMs : Math.min(o.oldest_ms, oldestMs);
      o.newest_ms = o.newest_ms === null ? newestMs : Math.max(o.newest_ms, newestMs);
      o.reasons[r.reason] = {
        points: r.points,
        values: r.vals,
        oldest_ms: oldestMs,
        newest_ms: newestMs,
        first_refused_ms: r.first_at,
        last_refused_ms: r.last_at,
        last_message: lastMessage.get(r.output, r.reason) as string,
      };
    }
    return out;
  }

  /** The quarantined parts of an output (of one reason), oldest refusal first. */
  *parts(output: string, reason?: string): Generator<QuarantinedPart> {
    if (!this.exists()) return;
    const rows = this.table.db
      .prepare(`SELECT series_key, reason, message, data FROM quarantine WHERE output = ?${reason === undefined ? '' : ' AND reason = ?'} ORDER BY id`)
      .iterate(...(reason === undefined ? [output] : [output, reason])) as IterableIterator<{ series_key: string; reason: string; message: string; data: Uint8Array }>;
    for (const r of rows) yield { seriesKey: r.series_key, group: decodeChunk(r.data), reason: r.reason, message: r.message };
  }

  /** Takes an output's parts (of one reason) out, as group entries to write back; returns them and their points. */
  take(output: string, reason?: string): { entries: GroupEntry[]; points: number; values: number } {
    const entries: GroupEntry[] = [];
    let points = 0;
    let values = 0;
    for (const p of this.parts(output, reason)) {
      entries.push({ key: p.seriesKey, group: p.group, level: LEVEL_FRESH });
      points += p.group.timesUs.length;
      values += groupValueCount(p.group);
    }
    this.remove(output, reason);
    return { entries, points, values };
  }

  /** Deletes an output's parts (of one reason); returns the points and values removed. */
  remove(output: string, reason?: string): { points: number; values: number } {
    if (!this.exists()) return { points: 0, values: 0 };
    const where = `output = ?${reason === undefined ? '' : ' AND reason = ?'}`;
    const params = reason === undefined ? [output] : [output, reason];
    const counts = this.table.db.prepare(`SELECT coalesce(sum(rows), 0) AS points, coalesce(sum(vals), 0) AS vals FROM quarantine WHERE ${where}`).get(...params) as { points: number; vals: number };
    this.table.db.prepare(`DELETE FROM quarantine WHERE ${where}`).run(...params);
    return { points: counts.points, values: counts.vals };
  }

  /** The oldest quarantined parts, for eviction once no chunk is left to evict. */
  oldest(limit: number): QuarantineVictim[] {
    if (!this.exists()) return [];
    return this.table.sql('SELECT id, rows, vals, length(data) AS bytes FROM quarantine ORDER BY id LIMIT ?').all(limit) as QuarantineVictim[];
  }

  evict(id: number): void {
    this.table.sql('DELETE FROM quarantine WHERE id = ?').run(id);
  }
}

/** Adds chunk ids [firstId, lastId] to the delivered ranges of every raw output but `except`. */
export function markDeliveredExcept(table: ChunkTable, except: string, firstId: number, lastId: number): void {
  if (lastId < firstId) return;
  const ids: number[] = [];
  for (let id = firstId; id <= lastId; id++) ids.push(id);
  for (const cur of table.sql('SELECT output, ranges FROM cursors WHERE tier = 0 AND output != ?').all(except) as { output: string; ranges: string }[]) {
    table.sql('UPDATE cursors SET ranges = ? WHERE output = ?').run(JSON.stringify(addIds(JSON.parse(cur.ranges) as IdRange[], ids)), cur.output);
  }
}
