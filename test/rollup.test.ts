// Rollups against brute force over the raw points: late and out-of-order data, window boundaries,
// tiers built on tiers, eviction under `when_full: rollup`, retention and windows added later.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { AGGREGATE_FUNCTIONS, addValue, emptyState, readFunction, type AggregateFunction, type WindowState } from '../src/core/aggregate.js';
import type { Point } from '../src/core/point.js';
import { queryAggregate, queryAggregateRaw, type AggregateRow } from '../src/query/query.js';
import { BulkWriter } from '../src/store/bulk.js';
import { SqliteRing, type RingOptions } from '../src/store/ring.js';
import { sluice } from './helpers/cli.js';
import { tmpDir } from './helpers/tmp.js';
import { rng } from './helpers/random.js';

const MINUTE_MS = 60_000;
const HOUR_MS = 3_600_000;
const FNS = [...AGGREGATE_FUNCTIONS] as AggregateFunction[];
const T0_MS = Date.UTC(2024, 0, 1, 0, 0, 0);

function options(dataDir: string, extra: Partial<RingOptions> = {}): RingOptions {
  return { dataDir, maxBytes: 64 * 1024 * 1024, whenFull: 'rollup', commitIntervalMs: 10, rollupWindowsMs: [MINUTE_MS, HOUR_MS], ...extra };
}

/** Random readings of two sensors over `minutes`, in a shuffled arrival order (late and out of order). */
function readings(minutes: number, seed: number): Point[] {
  const r = rng(seed);
  const out: Point[] = [];
  for (let ms = 0; ms < minutes * MINUTE_MS; ms += 1000 + Math.floor(r() * 9000)) {
    for (const sensor of ['a', 'b']) {
      const fields: Point['fields'] = { temp: Math.round((15 + r() * 10) * 10) / 10 };
      if (r() < 0.7) fields.level = BigInt(Math.floor(r() * 1000));
      if (r() < 0.5) fields.state = r() < 0.5 ? 'open' : 'shut';
      out.push({ measurement: 'tank', tags: { sensor }, fields, timeUs: (T0_MS + ms) * 1000 });
    }
  }
  for (let i = out.length - 1; i > 0; i--) {
    if (r() < 0.3) {
      const j = Math.floor(r() * (i + 1));
      [out[i], out[j]] = [out[j], out[i]];
    }
  }
  return out;
}

/** The expected windows, by brute force over the points in time order. */
function bruteForce(points: Point[], windowMs: number, fromMs = -Infinity, toMs = Infinity): Map<string, WindowState> {
  const windows = new Map<string, WindowState>();
  for (const p of [...points].sort((x, y) => x.timeUs - y.timeUs)) {
    const ms = p.timeUs / 1000;
    if (ms < fromMs || ms >= toMs) continue;
    const start = Math.floor(ms / windowMs) * windowMs;
    for (const [field, value] of Object.entries(p.fields)) {
      const key = `${p.tags.sensor} ${field} ${start}`;
      let s = windows.get(key);
      if (!s) windows.set(key, (s = emptyState()));
      addValue(s, p.timeUs, value);
    }
  }
  return windows;
}

function expectRowsMatch(rows: AggregateRow[], expected: Map<string, WindowState>): void {
  const seen = new Set<string>();
  for (const row of rows) {
    const key = `${row.tags.sensor} ${row.field} ${row.timeUs / 1000}`;
    const want = expected.get(key);
    expect(want, `unexpected window ${key}`).toBeDefined();
    seen.add(key);
    for (const fn of FNS) {
      const got = row.values[fn];
      const exp = readFunction(want!, fn);
      if (typeof exp === 'number' && typeof got === 'number' && (fn === 'mean' || fn === 'stddev' || fn === 'sum')) {
        expect(got, `${key} ${fn}`).toBeCloseTo(exp, 9);
      } else {
        expect(got, `${key} ${fn}`).toEqual(exp);
      }
    }
  }
  expect(seen.size).toBe(expected.size);
}

function query(ring: SqliteRing, windowMs: number, extra: { fromUs?: number; toUs?: number } = {}): AggregateRow[] {
  return [...queryAggregate(ring, { measurement: 'tank', everyUs: windowMs * 1000, functions: FNS, ...extra })];
}

describe('rollups', () => {
  it('equal brute force over raw data with late and out-of-order points, in every tier', async () => {
    const ring = SqliteRing.open(options(tmpDir()));
    const points = readings(150, 1);
    const nowUs = (T0_MS + 151 * MINUTE_MS) * 1000;
    // Arrive in several commits, rolling up in between, so late points reopen windows already written.
    for (let i = 0; i < points.length; i += 97) {
      await ring.write(points.slice(i, i + 97));
      if (i % 5 === 0) ring.rollUp({ nowUs });
    }
    ring.rollUp({ nowUs: (T0_MS + 10 * HOUR_MS) * 1000 });
    expect(ring.status().tiers['1m'].rows).toBeGreaterThan(250);
    expect(ring.dirtyRanges(1, MINUTE_MS)).toEqual([]);
    expectRowsMatch(query(ring, MINUTE_MS), bruteForce(points, MINUTE_MS));
    expectRowsMatch(query(ring, HOUR_MS), bruteForce(points, HOUR_MS));
    // The same answer from raw data, and for a range that cuts windows at both ends.
    const raw = [...queryAggregateRaw(ring, { measurement: 'tank', everyUs: HOUR_MS * 1000, functions: FNS })];
    expect(query(ring, HOUR_MS)).toEqual(raw);
    const fromMs = T0_MS + 17 * MINUTE_MS + 30_000;
    const toMs = T0_MS + 95 * MINUTE_MS + 10_000;
    expectRowsMatch(query(ring, MINUTE_MS, { fromUs: fromMs * 1000, toUs: toMs * 1000 }), bruteForce(points, MINUTE_MS, fromMs, toMs));
    ring.close();
  });

  it('answers windows not yet rolled up from raw data', async () => {
    const ring = SqliteRing.open(options(tmpDir()));
    const points = readings(10, 2);
    await ring.write(points);
    // Nothing rolled up yet, but a first pass stored some tiers.
    ring.rollUp({ nowUs: (T0_MS + 5 * MINUTE_MS) * 1000 });
    expect(ring.dirtyRanges(1, MINUTE_MS).length).toBeGreaterThan(0);
    expectRowsMatch(query(ring, MINUTE_MS), bruteForce(points, MINUTE_MS));
    ring.close();
  });

  it('under pressure keeps the cap, replaces the oldest raw data by rollups, and answers old windows exactly', () => {
    const cap = 512 * 1024;
    const ring = SqliteRing.open(options(tmpDir(), { maxBytes: cap }));
    const writer = new BulkWriter(ring, 1024);
    const r = rng(3);
    const all: Point[] = [];
    // 3 days of 1 s readings of noisy values: far more raw data than 512 KiB holds.
    for (let s = 0; s < 3 * 86_400; s += 1) {
      const batch: Point[] = [];
      batch.push({ measurement: 'tank', tags: { sensor: 'a' }, fields: { temp: Math.round(r() * 1e6) / 1e3 }, timeUs: (T0_MS + s * 1000) * 1000 });
      all.push(...batch);
      writer.add(batch);
      if (s % 20_000 === 0) ring.rollUp({ nowUs: (T0_MS + s * 1000) * 1000 });
    }
    writer.finish();
    ring.rollUp({ nowUs: (T0_MS + 4 * 86_400_000) * 1000 });
    const status = ring.status();
    expect(status.store_bytes).toBeLessThanOrEqual(cap);
    expect(status.dropped.rolled_up).toBeGreaterThan(100_000);
    expect(status.points + status.dropped.rolled_up).toBe(all.length);
    // The first day's raw data is gone, its windows remain exact.
    expect(status.tiers.raw.oldest_ms).toBeGreaterThan(T0_MS + 86_400_000);
    const firstDay = { fromUs: T0_MS * 1000, toUs: (T0_MS + 86_400_000) * 1000 };
    expectRowsMatch(query(ring, HOUR_MS, firstDay), bruteForce(all, HOUR_MS, T0_MS, T0_MS + 86_400_000));
    expectRowsMatch(query(ring, MINUTE_MS, firstDay), bruteForce(all, MINUTE_MS, T0_MS, T0_MS + 86_400_000));
    ring.close();
  });

  it('a window computed again replaces its earlier version on disk', async () => {
    const ring = SqliteRing.open(options(tmpDir()));
    const points = readings(150, 6).sort((x, y) => x.timeUs - y.timeUs);
    // Rolled up to the newest point after every write, as eviction does: each pass cuts an open window.
    for (let i = 0; i < points.length; i += 40) {
      const batch = points.slice(i, i + 40);
      await ring.write(batch);
      ring.rollUp({ untilUs: batch[batch.length - 1].timeUs });
    }
    ring.rollUp({ nowUs: (T0_MS + 10 * HOUR_MS) * 1000 });
    const windows = (ms: number) => new Set(points.map((p) => `${p.tags.sensor} ${Math.floor(p.timeUs / 1000 / ms)}`)).size;
    const { tiers } = ring.status();
    expect(tiers['1m'].rows).toBe(windows(MINUTE_MS));
    expect(tiers['1h'].rows).toBe(windows(HOUR_MS));
    expectRowsMatch(query(ring, MINUTE_MS), bruteForce(points, MINUTE_MS));
    expectRowsMatch(query(ring, HOUR_MS), bruteForce(points, HOUR_MS));
    ring.close();
  });

  it('late points into windows whose raw data is gone are merged into the stored windows', async () => {
    const ring = SqliteRing.open(options(tmpDir()));
    const points = readings(30, 4).sort((x, y) => x.timeUs - y.timeUs);
    for (let i = 0; i < points.length; i += 50) await ring.write(points.slice(i, i + 50));
    ring.rollUp({ nowUs: (T0_MS + HOUR_MS) * 1000 });
    // Retention removes all raw data older than 20 minutes, rolling up first.
    ring.expire(0, (T0_MS + 20 * MINUTE_MS) * 1000);
    expect(ring.status().dropped.retention).toBeGreaterThan(0);
    const late: Point[] = [{ measurement: 'tank', tags: { sensor: 'a' }, fields: { temp: 99.5 }, timeUs: (T0_MS + 3 * MINUTE_MS + 123) * 1000 }];
    await ring.write(late);
    ring.rollUp({ nowUs: (T0_MS + HOUR_MS) * 1000 });
    const expected = bruteForce([...points, ...late], MINUTE_MS, T0_MS, T0_MS + 19 * MINUTE_MS);
    expectRowsMatch(query(ring, MINUTE_MS, { fromUs: T0_MS * 1000, toUs: (T0_MS + 19 * MINUTE_MS) * 1000 }), expected);
    ring.close();
  });

  it('rolls up data stored before a window was added to the config', async () => {
    const dir = tmpDir();
    let ring = SqliteRing.open(options(dir, { rollupWindowsMs: [] }));
    const points = readings(20, 5);
    await ring.write(points);
    ring.close();
    ring = SqliteRing.open(options(dir, { rollupWindowsMs: [5 * MINUTE_MS] }));
    ring.rollUp({ nowUs: (T0_MS + HOUR_MS) * 1000 });
    expect(ring.storedTiers()).toEqual([5 * MINUTE_MS]);
    expectRowsMatch(query(ring, 5 * MINUTE_MS), bruteForce(points, 5 * MINUTE_MS));
    ring.close();
  });
});

interface TierJson {
  rows: number;
  oldest_ms: number;
  newest_ms: number;
}
interface StatusJson {
  store_bytes: number;
  used_bytes: number;
  capacity_bytes: number;
  dropped: Record<string, number>;
  tiers: Record<string, TierJson>;
}

describe('when_full: rollup at the cap', () => {
  // The case of issue 12: 20 days of one series at 1 Hz imported day by day (the CLI, a config file)
  // into a 512 KiB store with 1m and 1h windows. The whole 1h tier is a few kilobytes.
  it('keeps the coarse tiers: 1h covers every day exactly, 1m far more than raw, the cap used and never passed', () => {
    const dir = tmpDir();
    const cap = 512 * 1024;
    const config = join(dir, 'sluice.yaml');
    writeFileSync(
      config,
      [`version: 1`, `agent:`, `  data_dir: ${join(dir, 'store')}`, `buffer:`, `  max_size: 512KiB`, `  when_full: rollup`, `inputs: {}`, `aggregate:`, `  windows: [1m, 1h]`, `outputs: {}`, ''].join('\n'),
    );
    const status = (): StatusJson => {
      const r = sluice(['status', '-c', config, '--json']);
      expect(r.status, r.stderr).toBe(0);
      return JSON.parse(r.stdout) as StatusJson;
    };
    const r = rng(12);
    const DAYS = 20;
    const values: number[][] = [];
    for (let day = 0; day < DAYS; day++) {
      const lines: string[] = [];
      const v: number[] = [];
      for (let s = 0; s < 86_400; s++) {
        v.push(Math.round(r() * 1e6) / 1e3);
        lines.push(`tank,sensor=a temp=${v[s]} ${T0_MS / 1000 + day * 86_400 + s}`);
      }
      values.push(v);
      const file = join(dir, `day${day}.lp`);
      writeFileSync(file, lines.join('\n') + '\n');
      const imported = sluice(['import', '-c', config, '--precision', 's', file]);
      expect(imported.status, imported.stderr).toBe(0);
      expect(JSON.parse(imported.stdout)).toMatchObject({ points: 86_400, dropped: 0 });
      const st = status();
      expect(st.store_bytes, `day ${day}`).toBeLessThanOrEqual(cap);
      // Below the cap nothing goes: once anything has gone, the store has used the cap.
      if (Object.keys(st.dropped).length > 0) expect(st.store_bytes, `day ${day}: ${JSON.stringify(st.dropped)}`).toBeGreaterThan(0.7 * cap);
    }
    const st = status();
    expect(Object.keys(st.dropped).sort()).toEqual(['dropped_rollups', 'rolled_up']);
    const span = (t: TierJson) => t.newest_ms - t.oldest_ms;
    const { raw, '1m': minutes, '1h': hours } = st.tiers;
    expect(hours.rows).toBe(DAYS * 24);
    expect(hours.oldest_ms).toBe(T0_MS);
    expect(hours.newest_ms).toBe(T0_MS + DAYS * 86_400_000 - HOUR_MS);
    expect(span(minutes)).toBeGreaterThan(2 * 86_400_000);
    expect(span(minutes)).toBeGreaterThan(10 * span(raw));
    expect(raw.newest_ms).toBe(T0_MS + DAYS * 86_400_000 - 1000);

    // Day 0 (raw and 1m long gone) at --every 1h: the windows of the raw values, computed here.
    const q = sluice(['query', '-c', config, '--measurement', 'tank', '--every', '1h', '--fn', 'mean,min,max,count,first,last', '--from', String(T0_MS), '--to', String(T0_MS + 86_400_000), '--json']);
    expect(q.status, q.stderr).toBe(0);
    const rows = JSON.parse(q.stdout) as { time_ms: number; field: string; mean: number; min: number; max: number; count: number; first: number; last: number }[];
    expect(rows.map((w) => w.time_ms)).toEqual(Array.from({ length: 24 }, (_, h) => T0_MS + h * HOUR_MS));
    for (const [h, w] of rows.entries()) {
      const hour = values[0].slice(h * 3600, (h + 1) * 3600);
      expect(w.field).toBe('temp');
      expect(w.count).toBe(3600);
      expect(w.min).toBe(Math.min(...hour));
      expect(w.max).toBe(Math.max(...hour));
      expect(w.first).toBe(hour[0]);
      expect(w.last).toBe(hour[3599]);
      expect(w.mean).toBeCloseTo(hour.reduce((a, b) => a + b, 0) / 3600, 9);
    }
  }, 600_000);
});
