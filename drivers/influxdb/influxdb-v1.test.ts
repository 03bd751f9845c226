// The influxdb output, api v1, against a real InfluxDB 1.6.7 (Debian's influxd) on loopback: what it
// stores is read back with /query and compared value by value; the server is stopped and started again
// under load; its real partial-write, 401 and 404 answers drive rejects and pauses.
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Unsigned, type Point } from '../../src/core/point.js';
import type { SqliteRing } from '../../src/store/ring.js';
import type { OutputSync } from '../../src/sync/engine.js';
import { INFLUX_ADMIN, startInfluxdb, type InfluxdbServer } from '../../test/helpers/influxdb.js';
import { CaptureLogger, engine, makePoints, ringOptions, ringWith, until } from '../../test/helpers/sync.js';
import { SqliteRing as Ring } from '../../src/store/ring.js';
import { tmpDir } from '../../test/helpers/tmp.js';
import { InfluxdbOutput } from './influxdb.js';
import type { InfluxdbOutputConfig } from './schema.js';

let server: InfluxdbServer;
let dbCount = 0;
const cleanup: (() => Promise<void> | void)[] = [];

beforeAll(async () => {
  server = await startInfluxdb();
}, 60_000);
afterAll(async () => {
  await server?.close();
});
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f();
});

async function newDatabase(): Promise<string> {
  const db = `t${++dbCount}`;
  await server.query(`CREATE DATABASE ${db}`);
  return db;
}

function v1Config(url: string, database: string, extra: Partial<InfluxdbOutputConfig> = {}): InfluxdbOutputConfig {
  return { type: 'influxdb', url, api: 'v1', database, resolution: 'raw', batch_size: 5000, flush_interval: 200, timeout: 5000, gzip: true, ...extra };
}

function start(ring: SqliteRing, config: InfluxdbOutputConfig, log = new CaptureLogger(), settings = {}): { sync: OutputSync; output: InfluxdbOutput; log: CaptureLogger } {
  const output = new InfluxdbOutput(config, { id: 'up', log, agentId: 'test' });
  const sync = engine(output, ring, { log, settings });
  cleanup.push(() => sync.stop());
  return { sync, output, log };
}

const drained = (ring: SqliteRing) => () => ring.outputStatus('up').backlog_points === 0;

/** What InfluxDB should return for a point's fields (unsigned goes to 1.x as an integer). */
function asQueried(p: Point): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(p.fields)) out[k] = v instanceof Unsigned ? Number(v.value) : typeof v === 'bigint' ? Number(v) : v;
  return out;
}

describe('influxdb output, api v1, against InfluxDB 1.6.7', () => {
  it('writes land exactly: every value of every type, read back with /query', async () => {
    const db = await newDatabase();
    const points = makePoints(12, 500);
    const ring = ringWith(points);
    cleanup.push(() => ring.close());
    const { sync } = start(ring, v1Config(server.url, db));
    await sync.start();
    await until(drained(ring), 30_000, 'drained');
    const rows = await server.rows('SELECT * FROM plant GROUP BY *', db);
    expect(rows).toHaveLength(points.length);
    const byKey = new Map(rows.map((r) => [`${String(r.sensor)} ${String(r.time)}`, r]));
    for (const p of points) {
      const row = byKey.get(`${p.tags.sensor} ${p.timeUs}`);
      expect(row).toBeDefined();
      expect(row).toMatchObject({ area: p.tags.area, ...asQueried(p) });
    }
    expect(ring.outputStatus('up')).toMatchObject({ sent_points: points.length, rejected_points: 0 });
  });

  it('escapes what line protocol needs escaped; NaN fields are left out and counted; unsigned beyond int64 goes as a float', async () => {
    const db = await newDatabase();
    const t = 1_700_000_000_000_000;
    const points: Point[] = [
      { measurement: 'we ird,m', tags: { 'k y': 'v,a=l', zone: 'é✓' }, fields: { 'f "q"': 'a\\"b "c"', 'x=y': 1.5 }, timeUs: t },
      { measurement: 'we ird,m', tags: { 'k y': 'v,a=l', zone: 'é✓' }, fields: { 'x=y': NaN, other: 2.25 }, timeUs: t + 1 },
      { measurement: 'we ird,m', tags: { 'k y': 'nan-only' }, fields: { 'x=y': NaN }, timeUs: t + 2 },
      { measurement: 'big', tags: {}, fields: { u: new Unsigned(2n ** 64n - 1n) }, timeUs: t },
    ];
    const ring = ringWith(points);
    cleanup.push(() => ring.close());
    const { sync, output } = start(ring, v1Config(server.url, db, { gzip: false }));
    await sync.start();
    await until(drained(ring), 30_000, 'drained');
    const rows = await server.rows('SELECT * FROM /^we ird/ GROUP BY *', db);
    expect(rows).toEqual([
      { 'k y': 'v,a=l', zone: 'é✓', time: t, 'f "q"': 'a\\"b "c"', 'x=y': 1.5, other: null },
      { 'k y': 'v,a=l', zone: 'é✓', time: t + 1, 'f "q"': null, 'x=y': null, other: 2.25 },
    ]);
    expect(await server.rows('SELECT u FROM big', db)).toEqual([{ time: t, u: 18446744073709552000 }]);
    expect(output.counters()).toMatchObject({ unsigned_as_float: 1, skipped_fields: 2, skipped_points: 1 });
    // The NaN-only point could not be written: rejected, counted.
    expect(ring.outputStatus('up')).toMatchObject({ sent_points: 3, rejected_points: 1 });
  });

  it('names with a backslash before a separator: tags arrive as stored; what 1.x cannot read back is left out, counted', async () => {
    const db = await newDatabase();
    const t = 1_700_000_000_000_000;
    const points: Point[] = [
      // tag keys and values with the reference escaping (`eas\\ t`): InfluxDB 1.x reads them back unchanged; tags in key order
      { measurement: 'bs', tags: { regions: 'eas\\ t', 'A FOO': 'bar', APPLE: 'or\\,ange', 'reg\\=ion': 'x' }, fields: { v: 1, 'f\\ g': 2, 'q\\"': 3 }, timeUs: t },
      // a measurement 1.x would store as `b,s`
      { measurement: 'b\\,s', tags: {}, fields: { v: 1 }, timeUs: t },
    ];
    const ring = ringWith(points);
    cleanup.push(() => ring.close());
    const { sync, output } = start(ring, v1Config(server.url, db, { gzip: false }));
    await sync.start();
    await until(drained(ring), 30_000, 'drained');
    expect(await server.rows('SELECT * FROM bs GROUP BY *', db)).toEqual([{ regions: 'eas\\ t', 'A FOO': 'bar', APPLE: 'or\\,ange', 'reg\\=ion': 'x', time: t, v: 1 }]);
    expect((await server.rows('SHOW MEASUREMENTS', db)).map((r) => r.name)).toEqual(['bs']);
    // `f\\ g` would make 1.x refuse the line, `q\\"` would arrive as `q"`
    expect(output.counters()).toMatchObject({ skipped_fields: 2, skipped_points: 1 });
    expect(ring.outputStatus('up')).toMatchObject({ sent_points: 1, rejected_points: 1 });
  });

  it('the server stopped for a while and started again: every value present once', async () => {
    const db = await newDatabase();
    const dir = tmpDir();
    const ring = Ring.open(ringOptions(dir));
    cleanup.push(() => ring.close());
    const { sync, log } = start(ring, v1Config(server.url, db));
    await sync.start();
    // Live data keeps arriving, before, during and after the outage, as an input would write it.
    let written = 0;
    let step = 0;
    const writeStep = async () => {
      const pts = makePoints(20, 1, 1_700_000_000_000 + step++ * 1000);
      written += pts.length;
      await ring.write(pts);
    };
    for (let i = 0; i < 20; i++) await writeStep();
    await until(() => ring.outputStatus('up').sent_points >= 200, 20_000, 'first deliveries');
    await server.stop();
    const stoppedAt = Date.now();
    for (let i = 0; i < 40; i++) {
      await writeStep();
      await new Promise((r) => setTimeout(r, 50));
    }
    expect(ring.outputStatus('up').backlog_points).toBeGreaterThan(0);
    await server.start();
    for (let i = 0; i < 20; i++) await writeStep();
    await until(drained(ring), 30_000, 'drained after the restart');
    expect(Date.now() - stoppedAt).toBeGreaterThan(1500);
    const counts = await server.rows('SELECT COUNT(temp), COUNT(count), COUNT(raw), COUNT("on"), COUNT(state) FROM plant', db);
    expect(counts).toEqual([{ time: 0, count: written, count_1: written, count_2: written, count_3: written, count_4: written }]);
    const perSensor = await server.rows('SELECT COUNT(temp) FROM plant GROUP BY sensor', db);
    expect(perSensor).toHaveLength(20);
    for (const row of perSensor) expect(row.count).toBe(written / 20);
    expect(ring.outputStatus('up')).toMatchObject({ backlog_points: 0, rejected_points: 0 });
    expect(ring.outputStatus('up').sent_points).toBeGreaterThanOrEqual(written);
    expect(log.lines.some((l) => l.level === 'warn' && /keeping the data/.test(l.msg))).toBe(true);
    expect(log.lines.some((l) => l.level === 'info' && /accepts writes again/.test(l.msg))).toBe(true);
  });

  it('a field type conflict inside one batch (a bare 400 naming nothing): bisected until only the conflicting points are rejected', async () => {
    const db = await newDatabase();
    const now = Date.now();
    const points: Point[] = [];
    for (let i = 0; i < 100; i++) {
      // sensor b writes `v` as an integer where sensor a writes a float: 1.6.7 refuses the whole batch
      // with {"error":"field type conflict"}, and once a's floats are stored, "partial write: … dropped=N".
      points.push({ measurement: 'm', tags: { s: 'a' }, fields: { v: i + 0.5 }, timeUs: (now - 100_000 + i * 100) * 1000 });
      if (i % 10 === 0) points.push({ measurement: 'm', tags: { s: 'b' }, fields: { v: BigInt(i) }, timeUs: (now - 100_000 + i * 100) * 1000 });
    }
    const ring = ringWith(points);
    cleanup.push(() => ring.close());
    const { sync } = start(ring, v1Config(server.url, db));
    await sync.start();
    await until(drained(ring), 30_000, 'drained');
    expect(ring.outputStatus('up')).toMatchObject({ sent_points: 100, rejected_points: 10 });
    expect(await server.rows('SELECT COUNT(v) FROM m GROUP BY s', db)).toEqual([{ s: 'a', time: 0, count: 100 }]);
  });

  it('points beyond the retention policy (a real partial write, dropped=N): exactly those are rejected', async () => {
    const db = await newDatabase();
    await server.query(`CREATE RETENTION POLICY hour ON ${db} DURATION 1h REPLICATION 1`);
    const now = Date.now();
    const points: Point[] = [];
    for (let i = 0; i < 50; i++) points.push({ measurement: 'm', tags: { s: 'a' }, fields: { v: i + 0.5 }, timeUs: (now - 100_000 + i * 100) * 1000 });
    points.push({ measurement: 'm', tags: { s: 'c' }, fields: { v: 1.25 }, timeUs: (now - 7_200_000) * 1000 });
    points.push({ measurement: 'm', tags: { s: 'c' }, fields: { v: 2.25 }, timeUs: (now - 7_100_000) * 1000 });
    const ring = ringWith(points);
    cleanup.push(() => ring.close());
    const { sync } = start(ring, v1Config(server.url, db, { retention_policy: 'hour' }));
    await sync.start();
    await until(drained(ring), 30_000, 'drained');
    expect(ring.outputStatus('up')).toMatchObject({ sent_points: 50, rejected_points: 2 });
    expect(await server.rows('SELECT COUNT(v) FROM hour.m GROUP BY s', db)).toEqual([{ s: 'a', time: 0, count: 50 }]);
  });

  it('404 database not found: paused as a configuration error; creating the database resumes delivery', async () => {
    const ring = ringWith(makePoints(2, 50));
    cleanup.push(() => ring.close());
    const { sync, log } = start(ring, v1Config(server.url, 'missing_db'), new CaptureLogger(), { pausedRetryMs: 300 });
    await sync.start();
    await until(() => sync.stats().paused === 'fatal', 10_000, 'paused');
    expect(log.lines.some((l) => l.level === 'error' && /PAUSED/.test(l.msg) && /database not found/.test(String(l.obj.err)))).toBe(true);
    expect(ring.outputStatus('up').backlog_points).toBe(100);
    await server.query('CREATE DATABASE missing_db');
    await until(drained(ring), 10_000, 'resumed');
    expect((await server.rows('SELECT COUNT(temp) FROM plant', 'missing_db'))[0].count).toBe(100);
  });
});

describe('influxdb output, api v1, against InfluxDB 1.6.7 with authentication', () => {
  let authServer: InfluxdbServer;
  beforeAll(async () => {
    authServer = await startInfluxdb({ auth: true });
    await authServer.query('CREATE DATABASE secure');
  }, 60_000);
  afterAll(async () => {
    await authServer?.close();
  });

  it('401 with a wrong password: paused, data kept; a corrected password_file is picked up; the password is never logged', async () => {
    const ring = ringWith(makePoints(3, 40));
    cleanup.push(() => ring.close());
    const dir = tmpDir();
    const file = `${dir}/influx-password`;
    const { writeFileSync } = await import('node:fs');
    writeFileSync(file, 'wrong-password-123\n');
    const log = new CaptureLogger();
    const { sync } = start(ring, v1Config(authServer.url, 'secure', { username: INFLUX_ADMIN.username, password_file: file }), log, { pausedRetryMs: 300 });
    await sync.start();
    await until(() => sync.stats().paused === 'auth', 10_000, 'paused');
    expect(ring.outputStatus('up')).toMatchObject({ backlog_points: 120, sent_points: 0 });
    writeFileSync(file, `${INFLUX_ADMIN.password}\n`);
    await until(drained(ring), 10_000, 'resumed with the new password');
    expect((await authServer.rows('SELECT COUNT(temp) FROM plant', 'secure'))[0].count).toBe(120);
    expect(log.lines.filter((l) => l.level === 'error' && /PAUSED/.test(l.msg))).toHaveLength(1);
    expect(log.text()).not.toContain('wrong-password-123');
    expect(log.text()).not.toContain(INFLUX_ADMIN.password);
  });
});
