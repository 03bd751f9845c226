// The timescaledb output against a real PostgreSQL 15 (Debian's, started on loopback by the test):
// table creation, every value stored exactly, a value PostgreSQL refuses, the server going away and
// coming back, and the agent killed with SIGKILL mid-drain and restarted: no row twice, none missing.
import { spawn, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { serializePoint } from '../../src/core/line-protocol.js';
import { Unsigned, type Point } from '../../src/core/point.js';
import { SqliteRing, type SqliteRing as Ring } from '../../src/store/ring.js';
import { CLI, sluice } from '../../test/helpers/cli.js';
import { CaptureLogger, engine, makePoints, ringOptions, ringWith, until } from '../../test/helpers/sync.js';
import { tmpDir } from '../../test/helpers/tmp.js';
import { usePostgres } from './testing/fixture.js';
import type { TimescaledbOutputConfig } from './schema.js';
import { TimescaledbOutput } from './timescaledb.js';

const db = usePostgres('t');

function config(url: string, extra: Partial<TimescaledbOutputConfig> = {}): TimescaledbOutputConfig {
  return { type: 'timescaledb', url, layout: 'narrow', table: 'sensor_data', table_template: '{measurement}', new_columns: 'add', resolution: 'raw', batch_size: 5000, flush_interval: 200, timeout: 5000, ...extra };
}

async function q<R extends Record<string, unknown>>(url: string, sql: string): Promise<R[]> {
  const { default: pgLib } = await import('pg');
  const client = new pgLib.Client({ connectionString: url });
  await client.connect();
  try {
    return (await client.query<R>(sql)).rows;
  } finally {
    await client.end();
  }
}

function start(ring: Ring, cfg: TimescaledbOutputConfig, settings = {}) {
  const log = new CaptureLogger();
  const output = new TimescaledbOutput(cfg, { id: 'up', log, agentId: 'test' });
  const sync = engine(output, ring, { log, settings });
  db.cleanup.push(() => sync.stop());
  return { sync, output, log };
}

const drained = (ring: Ring) => () => ring.outputStatus('up').backlog_points === 0;

interface Row {
  us: string;
  measurement: string;
  tags: Record<string, string>;
  field: string;
  value: number | null;
  value_int: string | null;
  value_text: string | null;
  value_bool: boolean | null;
}

const SELECT_ROWS = `SELECT (extract(epoch from time) * 1000000)::bigint::text AS us, measurement, tags, field, value, value_int::text, value_text, value_bool FROM sensor_data`;

/** The row each value of each point must have become. */
function expectedRow(p: Point, field: string): Row {
  const v = p.fields[field];
  const base = { us: String(p.timeUs), measurement: p.measurement, tags: p.tags, field, value: null, value_int: null, value_text: null, value_bool: null };
  if (typeof v === 'number') return { ...base, value: v };
  if (typeof v === 'bigint') return { ...base, value: Number(v), value_int: v.toString() };
  if (typeof v === 'boolean') return { ...base, value: v ? 1 : 0, value_bool: v };
  if (typeof v === 'string') return { ...base, value_text: v };
  const u = v.value;
  return u < 2n ** 63n ? { ...base, value: Number(u), value_int: u.toString() } : { ...base, value: Number(u), value_text: u.toString() };
}

/** One row as text, for comparing many rows at once (a per-row toEqual is slow on 100k rows). */
function rowText(r: Row): string {
  return [r.us, r.measurement, JSON.stringify(Object.fromEntries(Object.entries(r.tags).sort())), r.field, String(r.value), r.value_int, r.value_text, r.value_bool].join('|');
}

async function expectAllRows(url: string, points: Point[]): Promise<void> {
  const rows = await q<Row & Record<string, unknown>>(url, SELECT_ROWS);
  const stored = new Set(rows.map(rowText));
  const missing: string[] = [];
  let values = 0;
  for (const p of points) {
    for (const f of Object.keys(p.fields)) {
      values++;
      const want = rowText(expectedRow(p, f));
      if (!stored.has(want)) missing.push(want);
    }
  }
  expect(missing.slice(0, 5)).toEqual([]);
  expect(rows.length).toBe(values);
}

describe('timescaledb output, against PostgreSQL 15', () => {
  it('creates its table (plain PostgreSQL: no hypertable), with the unique key, and stores every value exactly', async () => {
    const url = await db.newDatabase();
    const points = [
      ...makePoints(10, 300),
      { measurement: 'edge', tags: { 'we"ird': 'q\\uo,te', zone: 'é✓' }, fields: { nan: NaN, inf: -Infinity, big: new Unsigned(2n ** 64n - 1n), neg: -0, s: 'line\nbreak "q" \\' }, timeUs: -1_000_001 },
    ];
    const ring = ringWith(points);
    db.cleanup.push(() => ring.close());
    const { sync, output } = start(ring, config(url));
    await sync.start();
    await until(drained(ring), 30_000, 'drained');
    const cols = await q<{ column_name: string; data_type: string }>(url, "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = 'sensor_data' ORDER BY ordinal_position");
    expect(cols.map((c) => `${c.column_name} ${c.data_type}`)).toEqual([
      'time timestamp with time zone',
      'measurement text',
      'tags jsonb',
      'field text',
      'value double precision',
      'value_int bigint',
      'value_text text',
      'value_bool boolean',
    ]);
    const idx = await q<{ indexdef: string }>(url, "SELECT indexdef FROM pg_indexes WHERE tablename = 'sensor_data'");
    expect(idx.map((i) => i.indexdef)).toEqual([expect.stringMatching(/CREATE UNIQUE INDEX sensor_data_sluice_key ON public\.sensor_data USING btree \(measurement, field, tags, "time"\)/)]);
    expect(output.counters()).toMatchObject({ hypertable: 0 });
    const rows = await q<Row & Record<string, unknown>>(url, `${SELECT_ROWS} WHERE measurement = 'edge' ORDER BY field`);
    expect(rows.map((r) => [r.field, r.value, r.value_int, r.value_text])).toEqual([
      ['big', 18446744073709552000, null, '18446744073709551615'],
      ['inf', -Infinity, null, null],
      ['nan', NaN, null, null],
      ['neg', -0, null, null],
      ['s', null, null, 'line\nbreak "q" \\'],
    ]);
    expect(rows[0].tags).toEqual({ 'we"ird': 'q\\uo,te', zone: 'é✓' });
    expect(rows[0].us).toBe('-1000001');
    await expectAllRows(url, points);
    expect(ring.outputStatus('up')).toMatchObject({ sent_points: points.length, rejected_points: 0 });
  });

  it('a schema-qualified table; a replay of delivered data adds no row', async () => {
    const url = await db.newDatabase();
    await q(url, 'CREATE SCHEMA telemetry');
    const points = makePoints(3, 100);
    const dir = tmpDir();
    const ring = ringWith(points, ringOptions(dir));
    db.cleanup.push(() => ring.close());
    const cfg = config(url, { table: 'telemetry.readings' });
    const first = start(ring, cfg);
    await first.sync.start();
    await until(drained(ring), 30_000, 'drained');
    await first.sync.stop();
    // A second output id over the same table sends everything again: the unique key absorbs it.
    const other = new TimescaledbOutput(cfg, { id: 'again', log: new CaptureLogger(), agentId: 'test' });
    const { RingSource } = await import('../../src/sync/source.js');
    const sync = engine(other, ring, { id: 'again', source: new RingSource(ring, 'again') });
    db.cleanup.push(() => sync.stop());
    await sync.start();
    await until(() => ring.outputStatus('again').backlog_points === 0, 30_000, 'replayed');
    expect(other.counters()).toMatchObject({ rows_inserted: 0, rows_already_present: points.length * 5 });
    const [{ n, d }] = await q<{ n: string; d: string }>(url, 'SELECT count(*) AS n, count(DISTINCT (measurement, field, tags, time)) AS d FROM telemetry.readings');
    expect([Number(n), Number(d)]).toEqual([points.length * 5, points.length * 5]);
  });

  it('a value PostgreSQL refuses (a NUL in a string): that point is rejected, the rest stored', async () => {
    const url = await db.newDatabase();
    const points = makePoints(4, 250);
    points[321] = { ...points[321], fields: { ...points[321].fields, state: 'bad\u0000value' } };
    const ring = ringWith(points);
    db.cleanup.push(() => ring.close());
    const { sync } = start(ring, config(url));
    await sync.start();
    await until(drained(ring), 30_000, 'drained');
    expect(ring.outputStatus('up')).toMatchObject({ sent_points: points.length - 1, rejected_points: 1 });
    await expectAllRows(url, points.filter((_, i) => i !== 321));
  });

  it('the database goes away and comes back: nothing lost', async () => {
    const url = await db.newDatabase();
    const ring = SqliteRing.open(ringOptions());
    db.cleanup.push(() => ring.close());
    const { sync } = start(ring, config(url));
    await sync.start();
    const all: Point[] = [];
    const step = async (i: number) => {
      const pts = makePoints(10, 1, 1_700_000_000_000 + i * 1000);
      all.push(...pts);
      await ring.write(pts);
    };
    for (let i = 0; i < 10; i++) await step(i);
    await until(() => ring.outputStatus('up').sent_points >= 50, 20_000, 'first deliveries');
    await db.server.stop();
    for (let i = 10; i < 40; i++) {
      await step(i);
      await new Promise((r) => setTimeout(r, 30));
    }
    await db.server.start();
    for (let i = 40; i < 50; i++) await step(i);
    await until(drained(ring), 30_000, 'drained after the restart');
    await expectAllRows(url, all);
    expect(sync.stats().retries).toBeGreaterThan(0);
  });

  it('an unknown database: paused as a configuration error, data kept', async () => {
    const ring = ringWith(makePoints(2, 10));
    db.cleanup.push(() => ring.close());
    const { sync, log } = start(ring, config(`postgres://postgres@127.0.0.1:${db.server.port}/no_such_db`));
    await sync.start();
    await until(() => sync.stats().paused === 'fatal', 10_000, 'paused');
    expect(ring.outputStatus('up').backlog_points).toBe(20);
    expect(log.lines.some((l) => l.level === 'error' && /PAUSED/.test(l.msg) && /3D000/.test(String(l.obj.err)))).toBe(true);
  });

  it('the agent killed with SIGKILL mid-drain, then restarted: no row twice, every value present', async () => {
    const url = await db.newDatabase();
    const dir = tmpDir();
    const points = makePoints(30, 1000);
    writeFileSync(join(dir, 'backlog.lp'), points.map((p) => serializePoint(p, 'ms')).join('\n') + '\n');
    const cfgFile = join(dir, 'sluice.yaml');
    writeFileSync(
      cfgFile,
      [
        'version: 1',
        `agent: { id: kill-test, data_dir: ${join(dir, 'data')}, commit_interval: 100ms }`,
        'buffer: { max_size: 512MiB, when_full: drop_oldest }',
        'aggregate: { windows: [] }',
        'http: { listen: "off" }',
        'outputs:',
        '  archive:',
        '    type: timescaledb',
        `    url: ${url}`,
        '    layout: narrow',
        '    table: sensor_data',
        '    batch_size: 4000',
        '',
      ].join('\n'),
    );
    const imported = sluice(['import', '-c', cfgFile, '--precision', 'ms', join(dir, 'backlog.lp')]);
    expect(imported.status, imported.stderr).toBe(0);
    const total = points.length * 5;
    const count = async () => Number((await q<{ n: string }>(url, 'SELECT count(*) AS n FROM sensor_data').catch(() => [{ n: '0' }]))[0].n);

    const run = (): ChildProcess => {
      const child = spawn(process.execPath, [CLI, 'run', '-c', cfgFile], { stdio: ['ignore', 'pipe', 'pipe'] });
      db.cleanup.push(() => {
        if (child.exitCode === null) child.kill('SIGKILL');
      });
      return child;
    };
    const first = run();
    // Kill once some deliveries are recorded in the cursor, with more in flight.
    const cursorSent = () => {
      try {
        const ring = SqliteRing.open({ ...ringOptions(join(dir, 'data')), readonly: true });
        try {
          return ring.outputStatus('archive').sent_points;
        } finally {
          ring.close();
        }
      } catch {
        return 0;
      }
    };
    const seen = await until(async () => {
      const n = await count();
      return n > 0 && n < total * 0.7 && cursorSent() > 0 ? n : false;
    }, 30_000, 'the first recorded deliveries');
    first.kill('SIGKILL');
    await new Promise((r) => first.once('exit', r));
    const afterKill = await count();
    expect(afterKill).toBeGreaterThanOrEqual(seen);
    expect(afterKill).toBeLessThan(total);
    // The cursor survived the kill: the restart resumes, it does not start over.
    const status = JSON.parse(sluice(['status', '-c', cfgFile, '--json']).stdout) as { outputs: Record<string, { sent_points: number; backlog_points: number }> };
    expect(status.outputs.archive.sent_points).toBeGreaterThan(0);
    expect(status.outputs.archive.backlog_points).toBeLessThan(points.length);

    const second = run();
    await until(async () => (await count()) >= total, 60_000, 'every value');
    second.kill('SIGTERM');
    const code = await new Promise((r) => second.once('exit', r));
    expect(code).toBe(0);
    const [{ n, d }] = await q<{ n: string; d: string }>(url, 'SELECT count(*) AS n, count(DISTINCT (measurement, field, tags, time)) AS d FROM sensor_data');
    expect(Number(n)).toBe(total);
    expect(Number(d)).toBe(total);
    await expectAllRows(url, points);
    const final = JSON.parse(sluice(['status', '-c', cfgFile, '--json']).stdout) as { outputs: Record<string, { sent_points: number; backlog_points: number; rejected_points: number }> };
    expect(final.outputs.archive).toMatchObject({ backlog_points: 0, rejected_points: 0 });
  });
});
