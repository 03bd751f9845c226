// The ring against a real SQLite file: durability of group commits, de-duplication, the byte cap with
// exact drop counts, delivery cursors surviving compaction, and refusing damaged files.
import { createHash } from 'node:crypto';
import { readFileSync, statSync, truncateSync, writeFileSync, copyFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { Unsigned, type Point } from '../src/core/point.js';
import { groupRows } from '../src/query/rows.js';
import { BulkWriter } from '../src/store/bulk.js';
import { StoreFullError, StoreOpenError } from '../src/store/errors.js';
import { sinkRefusal } from '../src/core/component.js';
import { SqliteRing, STORE_FILE, mergePlan, type RingOptions } from '../src/store/ring.js';
import { tmpDir } from './helpers/tmp.js';
import { rng } from './helpers/random.js';

const MiB = 1024 * 1024;

function options(dataDir: string, extra: Partial<RingOptions> = {}): RingOptions {
  return { dataDir, maxBytes: 64 * MiB, whenFull: 'drop_oldest', commitIntervalMs: 20, ...extra };
}

/** Regular series of `series` sensors with decimal temperatures, counters, flags and states. */
function makePoints(count: number, series: number, seed = 1, startMs = 1_700_000_000_000): Point[] {
  const r = rng(seed);
  const out: Point[] = [];
  for (let i = 0; i < count; i++) {
    const s = i % series;
    out.push({
      measurement: 'plant',
      tags: { sensor: `s${s}`, area: s % 2 ? 'north' : 'south' },
      fields: {
        temp: Math.round((20 + r() * 50) * 1000) / 1000,
        count: BigInt(i),
        on: r() < 0.5,
        state: r() < 0.9 ? 'ok' : 'warn',
        raw: new Unsigned(BigInt(Math.floor(r() * 65536))),
      },
      timeUs: (startMs + Math.floor(i / series) * 1000) * 1000,
    });
  }
  return out;
}

/** Everything in the store as sorted canonical strings, for exact comparisons. */
function dump(ring: SqliteRing): string[] {
  const out: string[] = [];
  for (const s of ring.scan()) {
    for (const row of groupRows(s.group)) {
      for (const [f, v] of row.fields) out.push(`${s.key} ${f}=${typeof v}:${String(v)} ${row.timeUs}`);
    }
  }
  return out.sort();
}

function expected(points: Point[]): string[] {
  const out: string[] = [];
  for (const p of points) {
    const key = `${p.measurement},${Object.keys(p.tags).sort().map((k) => `${k}=${p.tags[k]}`).join(',')}`;
    for (const [f, v] of Object.entries(p.fields)) out.push(`${key} ${f}=${typeof v}:${String(v)} ${p.timeUs}`);
  }
  return out.sort();
}

describe('SqliteRing', () => {
  it('makes points durable when write() resolves: another connection sees them', async () => {
    const dir = tmpDir();
    const ring = SqliteRing.open(options(dir));
    const points = makePoints(500, 5);
    await ring.write(points);
    const reader = SqliteRing.open({ ...options(dir), readonly: true });
    expect(reader.status().points).toBe(500);
    expect(dump(reader)).toEqual(expected(points));
    reader.close();
    ring.close();
  });

  it('keeps every type exactly through commit, compaction and reopen', async () => {
    const dir = tmpDir();
    let ring = SqliteRing.open(options(dir));
    const points = makePoints(3000, 3);
    for (let i = 0; i < points.length; i += 100) await ring.write(points.slice(i, i + 100));
    expect(ring.status().chunks).toBeGreaterThan(20);
    ring.compact({ force: true });
    expect(ring.status().chunks).toBeLessThanOrEqual(3);
    ring.close();
    ring = SqliteRing.open(options(dir));
    expect(dump(ring)).toEqual(expected(points));
    ring.close();
  });

  it('steady compaction seals full chunks, keeps few open ones and loses nothing', async () => {
    const dir = tmpDir();
    let ring = SqliteRing.open(options(dir, { maxChunkRows: 64 }));
    const points = makePoints(3000, 2);
    // Group commits of 5 rows per series, compacted as the agent does (no force) after each commit.
    for (let i = 0; i < points.length; i += 10) {
      const durable = ring.write(points.slice(i, i + 10));
      ring.commit();
      await durable;
      ring.compact();
    }
    const db = new Database(join(dir, STORE_FILE), { readonly: true });
    const levels = db.prepare('SELECT series_id, level, count(*) AS n, min(rows) AS minRows, max(rows) AS maxRows FROM chunks GROUP BY 1, 2').all() as {
      series_id: number;
      level: number;
      n: number;
      minRows: number;
      maxRows: number;
    }[];
    for (const series of [1, 2]) {
      const sealed = levels.find((l) => l.series_id === series && l.level === 2)!;
      // 1500 rows per series: sealed chunks are full, and every full chunk is sealed.
      expect(sealed).toMatchObject({ minRows: 64, maxRows: 64 });
      expect(sealed.n).toBeGreaterThanOrEqual(20);
      const open = levels.find((l) => l.series_id === series && l.level === 1);
      // Open chunks form a short stack of shrinking sizes: a few, never a full one.
      expect(open?.n ?? 0).toBeLessThanOrEqual(5);
      expect(open?.maxRows ?? 0).toBeLessThan(64);
      expect(levels.find((l) => l.series_id === series && l.level === 0)?.n ?? 0).toBeLessThan(16);
    }
    db.close();
    expect(dump(ring)).toEqual(expected(points));
    ring.close();
    ring = SqliteRing.open(options(dir, { maxChunkRows: 64 }));
    expect(dump(ring)).toEqual(expected(points));
    ring.close();
  });

  it('plans merges like a merge sort: fresh chunks together, then a chunk into one at most twice its size', () => {
    const c = (id: number, level: number, rows: number) => ({ id, level, rows });
    const ids = (plan: { id: number }[][]) => plan.map((seg) => seg.map((x) => x.id));
    // 2000 open + 80 fresh (in two chunks): too small to join the 2000 yet.
    expect(ids(mergePlan([c(1, 1, 2000), c(2, 0, 40), c(3, 0, 40)], false))).toEqual([[1], [2, 3]]);
    // 300 open + 160 fresh: 300 ≤ 2·160, one segment.
    expect(ids(mergePlan([c(1, 1, 300), c(2, 0, 80), c(3, 0, 80)], false))).toEqual([[1, 2, 3]]);
    // 900, 300 open + 160 fresh: 300 joins the fresh ones, then 900 ≤ 2·460 joins too.
    expect(ids(mergePlan([c(1, 1, 900), c(2, 1, 300), c(3, 0, 80), c(4, 0, 80)], false))).toEqual([[1, 2, 3, 4]]);
    expect(ids(mergePlan([c(1, 1, 2000), c(2, 1, 300), c(3, 0, 5)], true))).toEqual([[1, 2, 3]]);
  });

  it('seals the full level-1 chunks of a store written before sealing existed, once', async () => {
    const dir = tmpDir();
    let ring = SqliteRing.open(options(dir, { maxChunkRows: 64 }));
    const points = makePoints(1000, 1);
    for (let i = 0; i < points.length; i += 100) await ring.write(points.slice(i, i + 100));
    ring.compact({ force: true });
    ring.close();
    // What an older sluice left: full chunks at level 1 and no record of sealing.
    const db = new Database(join(dir, STORE_FILE));
    db.prepare('UPDATE chunks SET level = 1 WHERE level = 2').run();
    db.prepare("DELETE FROM meta WHERE key = 'sealed_levels'").run();
    db.close();
    ring = SqliteRing.open(options(dir, { maxChunkRows: 64 }));
    ring.close();
    const after = new Database(join(dir, STORE_FILE), { readonly: true });
    expect(after.prepare('SELECT count(*) FROM chunks WHERE level = 1 AND rows >= 64').pluck().get()).toBe(0);
    expect(after.prepare('SELECT count(*) FROM chunks WHERE level = 2').pluck().get()).toBe(15);
    after.close();
    ring = SqliteRing.open(options(dir, { maxChunkRows: 64 }));
    expect(dump(ring)).toEqual(expected(points));
    ring.close();
  });

  it('keeps per-tier totals through writes, compaction and eviction, and counts an older store once', async () => {
    const dir = tmpDir();
    let ring = SqliteRing.open(options(dir, { maxBytes: 1 * MiB, maxChunkRows: 256 }));
    const scan = () => {
      const db = new Database(join(dir, STORE_FILE), { readonly: true });
      const row = db.prepare('SELECT count(*) AS chunks, sum(rows) AS points, sum(vals) AS vals FROM chunks WHERE tier = 0').get();
      db.close();
      return row;
    };
    const writer = new BulkWriter(ring, 1024);
    for (let batch = 0; batch < 40; batch++) writer.add(makePoints(5000, 10, batch + 7, 1_700_000_000_000 + batch * 500_000));
    writer.finish();
    const live = makePoints(3000, 3, 1, 1_700_100_000_000);
    for (let i = 0; i < live.length; i += 30) {
      await ring.write(live.slice(i, i + 30));
      ring.compact();
    }
    const status = ring.status();
    expect(status.dropped.dropped_oldest).toBeGreaterThan(0);
    expect({ chunks: status.chunks, points: status.points, vals: status.values }).toEqual(scan());
    ring.close();
    // What an older sluice left: no totals table, no triggers.
    const db = new Database(join(dir, STORE_FILE));
    db.exec("DROP TRIGGER chunks_total_insert; DROP TRIGGER chunks_total_delete; DROP TABLE tier_totals; DELETE FROM meta WHERE key = 'tier_totals'");
    db.close();
    ring = SqliteRing.open(options(dir, { maxBytes: 1 * MiB, maxChunkRows: 256 }));
    await ring.write(makePoints(300, 3, 2, 1_800_000_000_000));
    const after = ring.status();
    expect({ chunks: after.chunks, points: after.points, vals: after.values }).toEqual(scan());
    ring.close();
  });

  it('a compaction pass stops at its time budget and the next pass does the rest', async () => {
    const ring = SqliteRing.open(options(tmpDir()));
    const points = makePoints(20 * 40, 40);
    for (let i = 0; i < points.length; i += 40) await ring.write(points.slice(i, i + 40));
    const before = ring.status().chunks;
    expect(ring.compact({ budgetMs: 0 })).toBe(0);
    expect(ring.status().chunks).toBe(before);
    expect(ring.compact()).toBe(40);
    expect(ring.status().chunks).toBe(40);
    expect(dump(ring)).toEqual(expected(points));
    ring.close();
  });

  it('overwrites the same series, field and time (last write wins), keeping other fields', async () => {
    const ring = SqliteRing.open(options(tmpDir()));
    await ring.write([{ measurement: 'm', tags: {}, fields: { a: 1, b: 'x' }, timeUs: 1000 }]);
    await ring.write([{ measurement: 'm', tags: {}, fields: { a: 2 }, timeUs: 1000 }]);
    await ring.write([{ measurement: 'm', tags: {}, fields: { a: 0.5 }, timeUs: 500 }]);
    const rows = [...ring.scan()].flatMap((s) => [...groupRows(s.group)]);
    expect(rows).toEqual([
      { timeUs: 500, fields: [['a', 0.5]] },
      { timeUs: 1000, fields: [['a', 2], ['b', 'x']] },
    ]);
    ring.compact({ force: true });
    expect([...ring.scan()].flatMap((s) => [...groupRows(s.group)])).toEqual(rows);
    ring.close();
  });

  it('filters by time range and measurement', async () => {
    const ring = SqliteRing.open(options(tmpDir()));
    await ring.write(makePoints(100, 1));
    await ring.write([{ measurement: 'other', tags: {}, fields: { x: 1 }, timeUs: 1_700_000_010_000_000 }]);
    const fromUs = 1_700_000_010_000_000;
    const toUs = 1_700_000_020_000_000;
    const rows = [...ring.scan({ measurement: 'plant', fromUs, toUs })].flatMap((s) => [...groupRows(s.group)]);
    expect(rows.map((r) => r.timeUs)).toEqual(Array.from({ length: 10 }, (_, i) => fromUs + i * 1_000_000));
    ring.close();
  });

  it('holds the byte cap under a long import with drop_oldest and counts every dropped point exactly', () => {
    const dir = tmpDir();
    const cap = 1 * MiB;
    const ring = SqliteRing.open(options(dir, { maxBytes: cap }));
    ring.registerOutput('uplink');
    const writer = new BulkWriter(ring, 1024);
    let total = 0;
    for (let batch = 0; batch < 60; batch++) {
      const points = makePoints(5000, 10, batch + 7, 1_700_000_000_000 + batch * 500_000);
      writer.add(points);
      total += points.length;
      expect(ring.storeBytes()).toBeLessThanOrEqual(cap);
    }
    writer.finish();
    const status = ring.status();
    expect(status.store_bytes).toBeLessThanOrEqual(cap);
    expect(status.dropped.dropped_oldest).toBeGreaterThan(0);
    expect(status.points + status.dropped.dropped_oldest).toBe(total);
    expect(status.values + status.dropped_values.dropped_oldest).toBe(total * 5);
    // The output never received what was dropped, and its status says so.
    expect(status.outputs.uplink.lost_unsent_points).toBe(status.dropped.dropped_oldest);
    expect(status.outputs.uplink.backlog_points).toBe(status.points);
    // What survived is the newest data.
    expect(status.newest_ms).toBe(1_700_000_000_000 + 59 * 500_000 + 499_000);
    ring.close();
    expect(statSync(join(dir, STORE_FILE)).size).toBeLessThanOrEqual(cap);
  });

  it('refuses new points with drop_newest when full, counts them, and keeps the old ones', async () => {
    const dir = tmpDir();
    const ring = SqliteRing.open(options(dir, { maxBytes: 1 * MiB, whenFull: 'drop_newest' }));
    let stored = 0;
    let refused = 0;
    for (let batch = 0; batch < 80; batch++) {
      const points = makePoints(2000, 4, batch, 1_700_000_000_000 + batch * 1_000_000);
      try {
        await ring.write(points);
        stored += points.length;
      } catch (err) {
        expect(err).toBeInstanceOf(StoreFullError);
        // What inputs see: a typed refusal with its reason, without knowing the store's classes.
        expect(sinkRefusal(err)).toBe('full');
        refused += points.length;
      }
    }
    const status = ring.status();
    expect(refused).toBeGreaterThan(0);
    expect(status.dropped.dropped_newest).toBe(refused);
    expect(status.points).toBe(stored);
    expect(status.oldest_ms).toBe(1_700_000_000_000);
    expect(ring.storeBytes()).toBeLessThanOrEqual(1 * MiB);
    ring.close();
  });

  it('leases unsent chunks to an output, remembers what was settled across reopen and compaction', async () => {
    const dir = tmpDir();
    let ring = SqliteRing.open(options(dir));
    ring.registerOutput('up');
    const points = makePoints(200, 2);
    for (let i = 0; i < 200; i += 20) await ring.write(points.slice(i, i + 20));
    expect(ring.outputStatus('up').backlog_points).toBe(200);

    const first = ring.lease('up', { maxPoints: 60, order: 'oldest' })!;
    expect(first.points).toBe(60);
    // A leased chunk is not offered twice.
    const second = ring.lease('up', { maxPoints: 40, order: 'oldest' })!;
    expect(second.chunks.map((c) => c.chunkId)).not.toContain(first.chunks[0].chunkId);
    ring.settle(first, { rejectedPoints: 2, nowMs: 123 });
    ring.release(second);
    expect(ring.outputStatus('up')).toMatchObject({ backlog_points: 140, sent_points: 58, rejected_points: 2, last_success_ms: 123 });

    ring.compact({ force: true });
    expect(ring.outputStatus('up').backlog_points).toBe(140);
    ring.close();

    ring = SqliteRing.open(options(dir));
    ring.registerOutput('up');
    expect(ring.outputStatus('up').backlog_points).toBe(140);
    const sent: number[] = [];
    for (let lease = ring.lease('up', { maxPoints: 50, order: 'newest' }); lease; lease = ring.lease('up', { maxPoints: 50, order: 'newest' })) {
      for (const c of lease.chunks) sent.push(...c.group.timesUs);
      ring.settle(lease);
    }
    expect(sent.length).toBe(140);
    expect(ring.outputStatus('up')).toMatchObject({ backlog_points: 0, oldest_unsent_ms: null, sent_points: 198 });
    ring.close();
  });

  it('refuses a garbage store file with advice, without changing it', () => {
    const dir = tmpDir();
    const file = join(dir, STORE_FILE);
    writeFileSync(file, Buffer.alloc(64 * 1024, 0x5a));
    const before = createHash('sha256').update(readFileSync(file)).digest('hex');
    expect(() => SqliteRing.open(options(dir))).toThrow(StoreOpenError);
    expect(() => SqliteRing.open(options(dir))).toThrow(/sluice\.db.*move it/);
    expect(createHash('sha256').update(readFileSync(file)).digest('hex')).toBe(before);
  });

  it('refuses a truncated store file', () => {
    const dir = tmpDir();
    const ring = SqliteRing.open(options(dir));
    const writer = new BulkWriter(ring, 1024);
    writer.add(makePoints(50_000, 5));
    writer.finish();
    ring.close();
    const file = join(dir, STORE_FILE);
    truncateSync(file, Math.floor(statSync(file).size / 3));
    const copy = join(dir, 'copy');
    copyFileSync(file, copy);
    expect(() => SqliteRing.open(options(dir))).toThrow(StoreOpenError);
    expect(readFileSync(file).equals(readFileSync(copy))).toBe(true);
  });

  it('refuses an SQLite database that is not a sluice store', () => {
    const dir = tmpDir();
    const db = new Database(join(dir, STORE_FILE));
    db.exec('CREATE TABLE other(x)');
    db.close();
    expect(() => SqliteRing.open(options(dir))).toThrow(/not a sluice store/);
  });
});
