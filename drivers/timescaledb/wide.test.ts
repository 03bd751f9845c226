// The wide layout against a real PostgreSQL 15 (Debian's, started on loopback by the test): a table per
// measurement shaped as its users query it, columns added as tags and fields appear, a field that
// changes type rejected (the rest delivered), compression refused clearly on plain PostgreSQL, an
// existing narrow table kept, rollups, and the real agent killed with SIGKILL mid-drain and restarted.
import { spawn, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import pgLib from 'pg';
import { describe, expect, it } from 'vitest';
import { serializePoint } from '../../src/core/line-protocol.js';
import { Unsigned, type Point } from '../../src/core/point.js';
import { SqliteRing, type SqliteRing as Ring } from '../../src/store/ring.js';
import { RingSource, RollupSource } from '../../src/sync/source.js';
import { CLI, sluice } from '../../test/helpers/cli.js';
import { CaptureLogger, engine, makePoints, ringOptions, ringWith, until } from '../../test/helpers/sync.js';
import { tmpDir } from '../../test/helpers/tmp.js';
import { usePostgres } from './testing/fixture.js';
import { createTableSql } from './narrow.js';
import type { TimescaledbOutputConfig } from './schema.js';
import { TimescaledbOutput } from './timescaledb.js';

const db = usePostgres('w');

function config(url: string, extra: Partial<TimescaledbOutputConfig> = {}): TimescaledbOutputConfig {
  return { type: 'timescaledb', url, table_template: '{measurement}', new_columns: 'add', resolution: 'raw', batch_size: 5000, flush_interval: 200, timeout: 5000, ...extra };
}

async function q<R extends Record<string, unknown>>(url: string, sql: string, params: unknown[] = []): Promise<R[]> {
  const client = new pgLib.Client({ connectionString: url });
  await client.connect();
  try {
    return (await client.query<R>(sql, params)).rows;
  } finally {
    await client.end();
  }
}

function start(ring: Ring, cfg: TimescaledbOutputConfig, id = 'up') {
  const log = new CaptureLogger();
  const output = new TimescaledbOutput(cfg, { id, log, agentId: 'test' });
  const sync = engine(output, ring, { id, log, source: new RingSource(ring, id) });
  db.cleanup.push(() => sync.stop());
  return { sync, output, log };
}

const drained = (ring: Ring, id = 'up') => () => ring.outputStatus(id).backlog_points === 0;

async function columnsOf(url: string, table: string): Promise<string[]> {
  const cols = await q<{ column_name: string; data_type: string; is_nullable: string }>(
    url,
    'SELECT column_name, data_type, is_nullable FROM information_schema.columns WHERE table_name = $1 ORDER BY column_name',
    [table],
  );
  return cols.map((c) => `${c.column_name} ${c.data_type}${c.is_nullable === 'NO' ? ' not null' : ''}`);
}

async function indexesOf(url: string, table: string): Promise<string[]> {
  return (await q<{ indexdef: string }>(url, 'SELECT indexdef FROM pg_indexes WHERE tablename = $1', [table])).map((r) => r.indexdef);
}

/** A makePoints point as the row it must have become (numbers as PostgreSQL's text). */
function rowOf(p: Point): string {
  const f = p.fields as { temp: number; count: bigint; raw: Unsigned; on: boolean; state: string };
  return [p.timeUs, p.tags.area, p.tags.sensor, f.count, f.on, f.raw.value, f.state, f.temp].join('|');
}

const PLANT_ROWS = `SELECT (extract(epoch from time) * 1000000)::bigint::text AS us, area, sensor, count::text, "on"::text AS on_, raw::text, state, temp::text FROM plant`;

async function plantRows(url: string): Promise<string[]> {
  const rows = await q<{ us: string; area: string; sensor: string; count: string; on_: string; raw: string; state: string; temp: string }>(url, PLANT_ROWS);
  return rows.map((r) => [r.us, r.area, r.sensor, r.count, r.on_ === 'true', r.raw, r.state, Number(r.temp)].join('|'));
}

async function expectPlant(url: string, points: Point[]): Promise<void> {
  const stored = await plantRows(url);
  const have = new Set(stored);
  expect(points.map(rowOf).filter((r) => !have.has(r)).slice(0, 5)).toEqual([]);
  expect(stored.length).toBe(points.length);
}

describe('timescaledb output, wide layout, against PostgreSQL 15', () => {
  it('the default for a new database: a table per measurement, a column per tag (text) and per field (typed), the key on (tags…, time)', async () => {
    const url = await db.newDatabase();
    const points = makePoints(4, 50);
    const edge: Point[] = [
      { measurement: 'edge', tags: { zone: 'é✓', 'we"ird': 'q\\uo,te' }, fields: { big: new Unsigned(2n ** 64n - 1n), s: 'line\nbreak "q" \\', nan: NaN }, timeUs: -1_000_001 },
      { measurement: 'edge', tags: { zone: 'z2' }, fields: { big: new Unsigned(5n), s: 'second' }, timeUs: -1_000_001 },
    ];
    const ring = ringWith([...points, ...edge]);
    db.cleanup.push(() => ring.close());
    const { sync, output, log } = start(ring, config(url));
    await sync.start();
    await until(drained(ring), 30_000, 'drained');
    expect(output.layout()).toBe('wide');
    expect(log.lines.some((l) => /wide layout/.test(l.msg))).toBe(true);
    expect(await columnsOf(url, 'plant')).toEqual([
      'area text not null',
      'count bigint',
      'on boolean',
      'raw numeric',
      'sensor text not null',
      'state text',
      'temp double precision',
      'time timestamp with time zone not null',
    ]);
    expect(await indexesOf(url, 'plant')).toEqual(['CREATE UNIQUE INDEX plant_sluice_key ON public.plant USING btree (area, sensor, "time")']);
    // What a user of the table writes, with no pivot.
    const s1 = await q<{ time: Date; temp: number }>(url, "SELECT time, temp FROM plant WHERE sensor = 's001' ORDER BY time");
    const want = points.filter((p) => p.tags.sensor === 's001');
    expect(s1.map((r) => [r.time.getTime() * 1000, r.temp])).toEqual(want.map((p) => [p.timeUs, p.fields.temp]));
    await expectPlant(url, points);
    const e = await q<{ zone: string; weird: string; big: string; s: string; nan: number | null }>(url, 'SELECT zone, "we""ird" AS weird, big::text, s, nan FROM edge ORDER BY zone');
    // A point without a tag stores '' in its column (documented), which keeps the key free of NULLs.
    expect(e).toEqual([
      { zone: 'z2', weird: '', big: '5', s: 'second', nan: null },
      { zone: 'é✓', weird: 'q\\uo,te', big: '18446744073709551615', s: 'line\nbreak "q" \\', nan: NaN },
    ]);
    expect(output.counters()).toMatchObject({ hypertables: 0, tables_created: 2, rows_inserted: points.length + 2 });
    expect(ring.outputStatus('up')).toMatchObject({ sent_points: points.length + 2, rejected_points: 0 });
  });

  it('new tags and fields mid-stream: columns added, the key extended, old rows keep their identity; a replay adds nothing', async () => {
    const url = await db.newDatabase();
    const ring = SqliteRing.open(ringOptions());
    db.cleanup.push(() => ring.close());
    const { sync, output } = start(ring, config(url));
    await sync.start();
    const first: Point[] = Array.from({ length: 20 }, (_, i) => ({ measurement: 'plant', tags: { device: 'd1' }, fields: { temperature: 20 + i / 10 }, timeUs: (1_700_000_000_000 + i * 1000) * 1000 }));
    await ring.write(first);
    await until(drained(ring), 20_000, 'first points');
    const later: Point[] = Array.from({ length: 20 }, (_, i) => ({
      measurement: 'plant',
      tags: { device: 'd1', line: 'L2' },
      fields: { temperature: 30 + i / 10, humidity: BigInt(40 + i) },
      // The same times as the first points: another series (line L2), so new rows.
      timeUs: (1_700_000_000_000 + i * 1000) * 1000,
    }));
    await ring.write(later);
    await until(drained(ring), 20_000, 'later points');
    expect(await columnsOf(url, 'plant')).toEqual(['device text not null', 'humidity bigint', 'line text not null', 'temperature double precision', 'time timestamp with time zone not null']);
    expect(await indexesOf(url, 'plant')).toEqual(['CREATE UNIQUE INDEX plant_sluice_key ON public.plant USING btree (device, line, "time")']);
    expect(output.counters()).toMatchObject({ columns_added: 2, rows_inserted: 40 });
    const rows = await q<{ line: string; n: string; h: string | null }>(url, 'SELECT line, count(*)::text AS n, max(humidity)::text AS h FROM plant GROUP BY line ORDER BY line');
    expect(rows).toEqual([
      { line: '', n: '20', h: null },
      { line: 'L2', n: '20', h: '59' },
    ]);
    await sync.stop();
    // Another output id over the same ring sends everything again, old points (no `line`) included.
    const again = start(ring, config(url), 'again');
    await again.sync.start();
    await until(drained(ring, 'again'), 20_000, 'replayed');
    expect(again.output.counters()).toMatchObject({ rows_inserted: 0, rows_already_present: 40 });
    expect((await q<{ n: string }>(url, 'SELECT count(*)::text AS n FROM plant'))[0].n).toBe('40');
  });

  it('a field that changes type: those points quarantined, naming the column and both types; the rest delivered', async () => {
    const url = await db.newDatabase();
    const ring = SqliteRing.open(ringOptions());
    db.cleanup.push(() => ring.close());
    const { sync, log } = start(ring, config(url));
    await sync.start();
    await ring.write(makePoints(2, 10));
    await until(drained(ring), 20_000, 'first points');
    const next = makePoints(2, 10, 1_800_000_000_000);
    const bad = [3, 7, 8];
    for (const i of bad) next[i] = { ...next[i], fields: { ...next[i].fields, temp: 'hot' } };
    await ring.write(next);
    await until(drained(ring), 20_000, 'second points');
    expect(ring.outputStatus('up')).toMatchObject({ sent_points: 20 + 20 - bad.length, rejected_points: bad.length });
    const reject = log.lines.find((l) => /refused points for good/.test(l.msg));
    expect(String(reject?.obj.reason)).toMatch(/field "temp" is string \(text\) but column temp of table plant is double precision/);
    await expectPlant(url, [...makePoints(2, 10), ...next.filter((_, i) => !bad.includes(i))]);
    expect(sync.stats().paused).toBeFalsy();
    // Not gone: kept in the quarantine under the conflict's reason, with PostgreSQL's column named.
    const kept = ring.quarantineStatus().up;
    expect(kept).toMatchObject({ points: bad.length, reasons: { field_type_conflict: { points: bad.length } } });
    expect(kept.reasons.field_type_conflict.last_message).toMatch(/column temp of table plant is double precision/);
  });

  it('new_columns: reject: points with a tag or field the table has no column for are rejected, the rest delivered', async () => {
    const url = await db.newDatabase();
    const ring = SqliteRing.open(ringOptions());
    db.cleanup.push(() => ring.close());
    const { sync, log } = start(ring, config(url, { new_columns: 'reject' }));
    await sync.start();
    await ring.write([{ measurement: 'plant', tags: { device: 'd1' }, fields: { temperature: 1 }, timeUs: 1_000_000 }]);
    await until(drained(ring), 20_000, 'first point (creates the table)');
    await ring.write([
      { measurement: 'plant', tags: { device: 'd1' }, fields: { temperature: 2 }, timeUs: 2_000_000 },
      { measurement: 'plant', tags: { device: 'd1' }, fields: { temperature: 3, humidity: 50 }, timeUs: 3_000_000 },
      { measurement: 'plant', tags: { device: 'd2', line: 'x' }, fields: { temperature: 4 }, timeUs: 4_000_000 },
    ]);
    await until(drained(ring), 20_000, 'second points');
    expect(ring.outputStatus('up')).toMatchObject({ sent_points: 2, rejected_points: 2 });
    expect(await columnsOf(url, 'plant')).toEqual(['device text not null', 'temperature double precision', 'time timestamp with time zone not null']);
    expect(String(log.lines.find((l) => /refused points for good/.test(l.msg))?.obj.reason)).toMatch(/table plant has no column for (field "humidity"|tag "line") \(new_columns: reject\)/);
  });

  it('compression on plain PostgreSQL: paused as a configuration error that says why, data kept', async () => {
    const url = await db.newDatabase();
    const ring = ringWith(makePoints(2, 10));
    db.cleanup.push(() => ring.close());
    const { sync, log } = start(ring, config(url, { compression: { segment_by: ['sensor'], after: 7 * 86_400_000 } }));
    await sync.start();
    await until(() => sync.stats().paused === 'fatal', 10_000, 'paused');
    expect(ring.outputStatus('up').backlog_points).toBe(20);
    expect(log.lines.some((l) => l.level === 'error' && /PAUSED/.test(l.msg) && /no timescaledb extension/.test(String(l.obj.err)))).toBe(true);
    expect(await q(url, "SELECT 1 FROM information_schema.tables WHERE table_name = 'plant'")).toEqual([]);
  });

  it('an existing narrow table (layout unset): kept, said so in the log, written as before', async () => {
    const url = await db.newDatabase();
    const sql = createTableSql('readings');
    await q(url, sql.table);
    await q(url, sql.index);
    const points = makePoints(2, 10);
    const ring = ringWith(points);
    db.cleanup.push(() => ring.close());
    const { sync, output, log } = start(ring, config(url, { table: 'readings' }));
    await sync.start();
    await until(drained(ring), 20_000, 'drained');
    expect(output.layout()).toBe('narrow');
    expect(log.lines.some((l) => /table readings has the narrow shape.*keeping the narrow layout/.test(l.msg))).toBe(true);
    expect((await q<{ n: string }>(url, 'SELECT count(*)::text AS n FROM readings'))[0].n).toBe(String(points.length * 5));
    expect(await q(url, "SELECT 1 FROM information_schema.tables WHERE table_name = 'plant'")).toEqual([]);
  });

  it('resolution 1m: one row per window, a column per <field>_<fn>', async () => {
    const url = await db.newDatabase();
    const ring = SqliteRing.open({ ...ringOptions(), rollupWindowsMs: [60_000] });
    db.cleanup.push(() => ring.close());
    const base = 1_700_000_040_000; // a minute boundary in ms
    await ring.write(Array.from({ length: 180 }, (_, i) => ({ measurement: 'r', tags: { s: 'x' }, fields: { v: i }, timeUs: (base + i * 1000) * 1000 })));
    ring.commit();
    ring.rollUp();
    const log = new CaptureLogger();
    const output = new TimescaledbOutput(config(url, { resolution: 60_000 }), { id: 'agg', log, agentId: 'test' });
    const sync = engine(output, ring, { id: 'agg', log, source: new RollupSource(ring, 'agg', 60_000, ['mean', 'max', 'count']) });
    db.cleanup.push(() => sync.stop());
    await sync.start();
    await until(async () => Number((await q<{ n: string }>(url, 'SELECT count(*)::text AS n FROM r').catch(() => [{ n: '0' }]))[0].n) >= 2, 20_000, 'rollups');
    expect(await columnsOf(url, 'r')).toEqual(['s text not null', 'time timestamp with time zone not null', 'v_count bigint', 'v_max double precision', 'v_mean double precision']);
    const rows = await q<{ time: Date; v_mean: number; v_max: number; v_count: string }>(url, 'SELECT time, v_mean, v_max, v_count FROM r ORDER BY time LIMIT 2');
    expect(rows).toEqual([
      { time: new Date(base), v_mean: 29.5, v_max: 59, v_count: '60' },
      { time: new Date(base + 60_000), v_mean: 89.5, v_max: 119, v_count: '60' },
    ]);
  });

  it('TimescaleDB before 2.18.1 with compression (a stand-in): the insert is row-exact; a replay mixing stored and new rows adds exactly the new ones', async () => {
    const url = await db.newDatabase();
    // Stand-ins, as in compression.test.ts: the extension version the output reads is replaced, and
    // create_hypertable and timescaledb_information.hypertables are what this test creates.
    await q(url, `CREATE FUNCTION create_hypertable(regclass, text, if_not_exists boolean DEFAULT false, migrate_data boolean DEFAULT false) RETURNS void LANGUAGE plpgsql AS $$ BEGIN END $$`);
    await q(url, 'CREATE SCHEMA timescaledb_information');
    await q(url, "CREATE VIEW timescaledb_information.hypertables AS SELECT 'public'::name AS hypertable_schema, 'plant'::name AS hypertable_name, true AS compression_enabled");
    const all = makePoints(4, 50);
    const dir = tmpDir();
    const ring = ringWith(all.slice(0, 100), ringOptions(dir));
    db.cleanup.push(() => ring.close());
    const run = (id: string) => {
      const log = new CaptureLogger();
      const output = new TimescaledbOutput(config(url), { id, log, agentId: 'test' }, { catalog: { timescaledbVersion: () => Promise.resolve('2.17.2') } });
      const sync = engine(output, ring, { id, log, source: new RingSource(ring, id) });
      db.cleanup.push(() => sync.stop());
      return { output, sync, log };
    };
    const first = run('up');
    await first.sync.start();
    await until(drained(ring), 20_000, 'first half');
    expect(first.output.targetInfo('plant')).toEqual({ timescaledbVersion: '2.17.2', hypertable: true, compressionEnabled: true });
    expect(first.log.lines.some((l) => l.level === 'warn' && /timescale\/timescaledb#7672/.test(l.msg))).toBe(true);
    await first.sync.stop();
    await ring.write(all.slice(100));
    const again = run('again');
    await again.sync.start();
    await until(drained(ring, 'again'), 20_000, 'replay of everything');
    expect(again.output.counters()).toMatchObject({ rows_inserted: 100, rows_already_present: 100 });
    expect(again.output.counters().row_exact_statements).toBeGreaterThan(0);
    await expectPlant(url, all);
  });

  it('the agent killed with SIGKILL mid-drain, then restarted: no row twice, every point present', async () => {
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
        '    batch_size: 1000',
        // Paced, so the kill lands mid-drain: unpaced, a fast machine delivered 70 % of the backlog
        // between two looks at the cursor and the wait for a partial delivery never ended.
        '    max_rate: 5000',
        '',
      ].join('\n'),
    );
    const imported = sluice(['import', '-c', cfgFile, '--precision', 'ms', join(dir, 'backlog.lp')]);
    expect(imported.status, imported.stderr).toBe(0);
    const total = points.length;
    const count = async () => Number((await q<{ n: string }>(url, 'SELECT count(*) AS n FROM plant').catch(() => [{ n: '0' }]))[0].n);
    const run = (): ChildProcess => {
      const child = spawn(process.execPath, [CLI, 'run', '-c', cfgFile], { stdio: ['ignore', 'pipe', 'pipe'] });
      db.cleanup.push(() => {
        if (child.exitCode === null) child.kill('SIGKILL');
      });
      return child;
    };
    const cursorSent = () => {
      try {
        const r = SqliteRing.open({ ...ringOptions(join(dir, 'data')), readonly: true });
        try {
          return r.outputStatus('archive').sent_points;
        } finally {
          r.close();
        }
      } catch {
        return 0;
      }
    };
    const first = run();
    const seen = await until(async () => {
      const n = await count();
      return n > 0 && n < total * 0.7 && cursorSent() > 0 ? n : false;
    }, 30_000, 'the first recorded deliveries');
    first.kill('SIGKILL');
    await new Promise((r) => first.once('exit', r));
    const afterKill = await count();
    expect(afterKill).toBeGreaterThanOrEqual(seen);
    expect(afterKill).toBeLessThan(total);
    const second = run();
    await until(async () => (await count()) >= total, 60_000, 'every point');
    second.kill('SIGTERM');
    expect(await new Promise((r) => second.once('exit', r))).toBe(0);
    const [{ n, d }] = await q<{ n: string; d: string }>(url, 'SELECT count(*) AS n, count(DISTINCT (sensor, area, time)) AS d FROM plant');
    expect([Number(n), Number(d)]).toEqual([total, total]);
    await expectPlant(url, points);
    const final = JSON.parse(sluice(['status', '-c', cfgFile, '--json']).stdout) as { outputs: Record<string, { backlog_points: number; rejected_points: number }> };
    expect(final.outputs.archive).toMatchObject({ backlog_points: 0, rejected_points: 0 });
  });
});
