// Series keys are the canonical line-protocol text of measurement and tags (seriesKey). Stores written
// before tags were ordered by their key's bytes hold keys ordered by the escaped text instead, which
// differs only when a tag key holds a space, comma or `=` (`APPLE` before `A\ FOO`, now after). New
// points of such a series would start a second series with the same tags, so the keys are rewritten
// once, in place: the series id, and with it every chunk, rollup and cursor, stays the same.
import type Database from 'better-sqlite3';
import { parseSeriesKey, seriesKey } from '../core/line-protocol.js';

/** Rewrites every series key that is no longer canonical; returns how many were rewritten. */
export function reorderSeriesKeys(db: Database.Database): number {
  // Only a key with an escape and two tags can be out of order.
  const candidates = db.prepare("SELECT id, key FROM series WHERE instr(key, '\\') > 0 AND key LIKE '%,%,%'").all() as { id: number; key: string }[];
  const existing = db.prepare('SELECT id FROM series WHERE key = ?').pluck();
  const rename = db.prepare('UPDATE series SET key = ? WHERE id = ?');
  let rewritten = 0;
  for (const row of candidates) {
    const { measurement, tags } = parseSeriesKey(row.key);
    const key = seriesKey(measurement, tags);
    // A series already under the new key (written by a newer sluice, then this store reopened) keeps both.
    if (key === row.key || existing.get(key) !== undefined) continue;
    rename.run(key, row.id);
    rewritten++;
  }
  return rewritten;
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
