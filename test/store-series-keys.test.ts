// A store written before tags were ordered by their key's bytes: its series keys are rewritten once
// at open, so new points of the same tags land in the same series.
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { seriesKey } from '../src/core/line-protocol.js';
import type { Point } from '../src/core/point.js';
import { SqliteRing, STORE_FILE, type RingOptions } from '../src/store/ring.js';
import { tmpDir } from './helpers/tmp.js';

const options = (dataDir: string): RingOptions => ({ dataDir, maxBytes: 64 * 1024 * 1024, whenFull: 'drop_oldest', commitIntervalMs: 20 });
const point = (timeUs: number, v: number): Point => ({ measurement: 'test', tags: { APPLE: 'orange', 'A FOO': 'bar' }, fields: { v }, timeUs });
// How seriesKey wrote these tags before: ordered by the escaped text, `APPLE` before `A\ FOO`.
const OLD_KEY = 'test,APPLE=orange,A\\ FOO=bar';
const NEW_KEY = 'test,A\\ FOO=bar,APPLE=orange';

function rowsOf(ring: SqliteRing, id: number): number {
  let rows = 0;
  for (const g of ring.seriesGroups(id, 0)) rows += g.timesUs.length;
  return rows;
}

describe('series keys of a store written before tags were ordered by key bytes', () => {
  it('are rewritten once at open, keeping the series (its id and data) and its new points together', async () => {
    const dir = tmpDir();
    expect(seriesKey('test', point(0, 0).tags)).toBe(NEW_KEY);
    const first = SqliteRing.open(options(dir));
    await first.write([point(1_000_000, 1), { measurement: 'plain', tags: { a: '1', b: '2' }, fields: { v: 1 }, timeUs: 1 }]);
    first.close();
    // Make it the store an older sluice left: the old key order, the one-time step not yet done.
    const db = new Database(join(dir, STORE_FILE));
    db.prepare('UPDATE series SET key = ? WHERE key = ?').run(OLD_KEY, NEW_KEY);
    db.prepare("DELETE FROM meta WHERE key = 'series_key_order'").run();
    db.close();

    const ring = SqliteRing.open(options(dir));
    try {
      const before = ring.listSeries('test');
      expect(before.map((s) => s.key)).toEqual([NEW_KEY]);
      await ring.write([point(2_000_000, 2)]);
      const after = ring.listSeries('test');
      expect(after).toEqual(before);
      expect(rowsOf(ring, after[0].id)).toBe(2);
      expect(ring.listSeries('plain').map((s) => s.key)).toEqual(['plain,a=1,b=2']);
    } finally {
      ring.close();
    }
  });
});
