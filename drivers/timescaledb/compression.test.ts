// The timescaledb output and TimescaleDB compression, against a real PostgreSQL 15 (no TimescaleDB here):
// - TimescaleDB refuses CREATE UNIQUE INDEX (even IF NOT EXISTS) on a hypertable with compression
//   enabled, SQLSTATE 0A000. The stand-in for that refusal is real PostgreSQL refusing the same
//   statement: an event trigger on ddl_command_start for CREATE INDEX raising 0A000 with TimescaleDB's
//   message. With the key there, delivery goes on; without it, the output pauses once, loudly.
// - TimescaleDB 2.16.0–2.18.0 loses the rows after one that conflicts with a compressed row under
//   ON CONFLICT DO NOTHING (timescale/timescaledb#7672). The guard's decision is unit-tested, and the
//   row-exact insert it switches to runs against PostgreSQL: a replay mixing stored and new rows adds
//   exactly the new ones. The database "with TimescaleDB 2.17.2" is a stand-in: the extension version
//   the output reads is replaced, and timescaledb_information.hypertables is a view the test creates.
import { describe, expect, it } from 'vitest';
import pgLib from 'pg';
import type { Point } from '../../src/core/point.js';
import { CaptureLogger, engine, makePoints, ringOptions, ringWith, until } from '../../test/helpers/sync.js';
import { SqliteRing } from '../../src/store/ring.js';
import type { TimescaledbOutputConfig } from './schema.js';
import { createTableSql, rowExactInsertSql, timeBounds, TimescaledbOutput, type CatalogReads } from './timescaledb.js';
import { hypertableInfo, needsRowExactInsert, parseVersion, schemaError } from './target.js';

import { usePostgres } from './testing/fixture.js';

const db = usePostgres('c');

async function q<R extends pgLib.QueryResultRow = Record<string, unknown>>(url: string, sql: string): Promise<R[]> {
  const client = new pgLib.Client({ connectionString: url });
  await client.connect();
  try {
    return (await client.query<R>(sql)).rows;
  } finally {
    await client.end();
  }
}

function config(url: string): TimescaledbOutputConfig {
  return { type: 'timescaledb', url, layout: 'narrow', table: 'sensor_data', table_template: '{measurement}', new_columns: 'add', resolution: 'raw', batch_size: 5000, flush_interval: 200, timeout: 5000 };
}

function start(ring: SqliteRing, url: string, catalog: Partial<CatalogReads> = {}, settings = {}, compressionRecheckMs?: number) {
  const log = new CaptureLogger();
  const output = new TimescaledbOutput(config(url), { id: 'up', log, agentId: 'test' }, { catalog, compressionRecheckMs });
  const sync = engine(output, ring, { log, settings });
  db.cleanup.push(() => sync.stop());
  return { sync, output, log };
}

const drained = (ring: SqliteRing) => () => ring.outputStatus('up').backlog_points === 0;

// The stand-in for TimescaleDB's refusal; the sequence counts the refusals (nextval survives the abort).
const REFUSE_CREATE_INDEX = `
CREATE SEQUENCE refusals;
CREATE FUNCTION refuse_index_on_compressed() RETURNS event_trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM nextval('refusals');
  RAISE EXCEPTION 'operation not supported on hypertables that have compression enabled' USING ERRCODE = '0A000';
END $$;
CREATE EVENT TRIGGER stand_in_for_timescaledb_compression ON ddl_command_start WHEN TAG IN ('CREATE INDEX') EXECUTE FUNCTION refuse_index_on_compressed();`;

const refusals = async (url: string) => Number((await q<{ n: string }>(url, "SELECT CASE WHEN is_called THEN last_value ELSE 0 END AS n FROM refusals"))[0].n);

async function counts(url: string): Promise<{ n: number; d: number }> {
  const [r] = await q<{ n: string; d: string }>(url, 'SELECT count(*) AS n, count(DISTINCT (measurement, field, tags, time)) AS d FROM sensor_data');
  return { n: Number(r.n), d: Number(r.d) };
}

describe('the unique key on a table where CREATE UNIQUE INDEX is refused (stand-in for a compressed hypertable)', () => {
  it('with the key already there, the check skips creation and delivery goes on', async () => {
    const url = await db.newDatabase();
    const sql = createTableSql('sensor_data');
    await q(url, sql.table);
    await q(url, sql.index);
    await q(url, REFUSE_CREATE_INDEX);
    const points = makePoints(4, 50);
    const ring = ringWith(points);
    db.cleanup.push(() => ring.close());
    const { sync, log } = start(ring, url);
    await sync.start();
    await until(drained(ring), 15_000, 'drained');
    expect(await counts(url)).toEqual({ n: points.length * 5, d: points.length * 5 });
    expect(await refusals(url)).toBe(0);
    expect(sync.stats()).toMatchObject({ paused: null, retries: 0 });
    expect(log.lines.filter((l) => l.level === 'warn' || l.level === 'error')).toEqual([]);
  });

  it('an existing unique key of another name, columns in another order, is used as it is', async () => {
    const url = await db.newDatabase();
    await q(url, createTableSql('sensor_data').table);
    await q(url, 'CREATE UNIQUE INDEX my_key ON sensor_data (time, tags, field, measurement)');
    await q(url, REFUSE_CREATE_INDEX);
    const ring = ringWith(makePoints(2, 20));
    db.cleanup.push(() => ring.close());
    const { sync } = start(ring, url);
    await sync.start();
    await until(drained(ring), 15_000, 'drained');
    expect(await refusals(url)).toBe(0);
    expect((await q<{ indexname: string }>(url, "SELECT indexname FROM pg_indexes WHERE tablename = 'sensor_data'")).map((r) => r.indexname)).toEqual(['my_key']);
  });

  it('without the key and creation refused: paused once as a configuration error naming the statement, no retry loop, data kept', async () => {
    const url = await db.newDatabase();
    await q(url, createTableSql('sensor_data').table);
    await q(url, REFUSE_CREATE_INDEX);
    const ring = ringWith(makePoints(2, 10));
    db.cleanup.push(() => ring.close());
    // Paused outputs try again every minute (the default); a loop would try again within milliseconds.
    const { sync, log } = start(ring, url, {}, { pausedRetryMs: 60_000 });
    await sync.start();
    await until(() => sync.stats().paused === 'fatal', 10_000, 'paused');
    await new Promise((r) => setTimeout(r, 1500));
    expect(await refusals(url)).toBe(1);
    const stats = sync.stats();
    expect(stats).toMatchObject({ paused: 'fatal', retries: 0 });
    expect(stats.lastError).toMatch(/SQLSTATE 0A000: operation not supported on hypertables that have compression enabled/);
    expect(stats.lastError).toContain('CREATE UNIQUE INDEX IF NOT EXISTS "sensor_data_sluice_key" ON "sensor_data" (measurement, field, tags, time)');
    const loud = log.lines.filter((l) => l.level === 'error');
    expect(loud).toHaveLength(1);
    expect(loud[0].msg).toMatch(/^OUTPUT PAUSED: the upstream refuses our configuration/);
    expect(loud[0].obj).toMatchObject({ status: '0A000', category: 'fatal' });
    expect(log.text()).not.toMatch(/write failed/);
    expect(ring.outputStatus('up').backlog_points).toBe(20);
    expect((await counts(url)).n).toBe(0);
  });

  it('an index of the key name that is not the key: paused, naming it, rather than writing without a key', async () => {
    const url = await db.newDatabase();
    await q(url, createTableSql('sensor_data').table);
    await q(url, 'CREATE INDEX sensor_data_sluice_key ON sensor_data (measurement, time)');
    const ring = ringWith(makePoints(2, 10));
    db.cleanup.push(() => ring.close());
    const { sync } = start(ring, url);
    await sync.start();
    await until(() => sync.stats().paused === 'fatal', 10_000, 'paused');
    expect(sync.stats().lastError).toMatch(/no unique index on \(measurement, field, tags, time\).*sensor_data_sluice_key already exists/);
    expect((await counts(url)).n).toBe(0);
  });
});

describe('schema statements the database refuses', () => {
  it.each([
    ['0A000', 'fatal'],
    ['42P01', 'fatal'],
    ['23505', 'fatal'],
    ['42501', 'auth'],
    ['57014', 'retry'],
    ['40P01', 'retry'],
    ['08006', 'retry'],
    ['53300', 'throttle'],
    ['ECONNRESET', 'retry'],
  ])('SQLSTATE %s → %s', (code, category) => {
    const err = Object.assign(new Error('refused'), { code });
    const e = schemaError(err, 'CREATE UNIQUE INDEX IF NOT EXISTS x\n  ON t (a)');
    expect(e.category).toBe(category);
    expect(e.message).toContain('CREATE UNIQUE INDEX IF NOT EXISTS x ON t (a)');
    expect(e.message).not.toMatch(/write failed/);
  });
});

describe('the ON CONFLICT guard (timescale/timescaledb#7672)', () => {
  it.each([
    [null, true, true, false],
    ['2.17.2', true, true, true],
    ['2.17.2', true, false, false],
    ['2.17.2', false, false, false],
    ['2.16.0', true, true, true],
    ['2.18.0', true, true, true],
    ['2.18.0-dev', true, true, true],
    ['2.18.1', true, true, false],
    ['2.19.3', true, true, false],
    ['3.0.0', true, true, false],
    ['2.11.2', true, true, true],
    ['not a version', true, true, true],
  ] as const)('TimescaleDB %s, hypertable %s, compression %s → row-exact %s', (version, hypertable, compressionEnabled, rowExact) => {
    expect(needsRowExactInsert({ timescaledbVersion: version, hypertable, compressionEnabled })).toBe(rowExact);
  });

  it('the time bounds of a row-exact insert hold every row: whole milliseconds outward, ±infinity beyond ISO years', () => {
    expect(timeBounds(1_700_000_000_000_001, 1_700_000_000_999_999)).toEqual(['2023-11-14T22:13:20.000Z', '2023-11-14T22:13:21.000Z']);
    expect(timeBounds(-1_000_001, -1)).toEqual(['1969-12-31T23:59:58.999Z', '1970-01-01T00:00:00.000Z']);
    expect(timeBounds(-7e16, 3e17)).toEqual(['-infinity', 'infinity']);
  });

  it('reads versions as TimescaleDB spells them', () => {
    expect(parseVersion('2.17.2')).toEqual([2, 17, 2]);
    expect(parseVersion('2.18.0-dev')).toEqual([2, 18, 0]);
    expect(parseVersion('2.9')).toEqual([2, 9, 0]);
    expect(parseVersion('dev')).toBeNull();
  });
});

// A stand-in for TimescaleDB 2.x's view, with the columns the output reads.
const STAND_IN_HYPERTABLES = (compression: boolean) => `
CREATE SCHEMA timescaledb_information;
CREATE VIEW timescaledb_information.hypertables AS
  SELECT 'public'::name AS hypertable_schema, 'sensor_data'::name AS hypertable_name, ${compression} AS compression_enabled;`;

const asTimescaledb = (version: string): Partial<CatalogReads> => ({ timescaledbVersion: () => Promise.resolve(version) });

describe('row-exact replays, against PostgreSQL', () => {
  it('a replay mixing stored and new rows (first stored, second new, …) adds exactly the new ones', async () => {
    const url = await db.newDatabase();
    await q(url, STAND_IN_HYPERTABLES(true));
    const points = makePoints(3, 40);
    // Every other point was delivered before (the first of the replay among them).
    const before = ringWith(points.filter((_, i) => i % 2 === 0));
    db.cleanup.push(() => before.close());
    const first = start(before, url);
    await first.sync.start();
    await until(drained(before), 15_000, 'first half');
    await first.sync.stop();
    expect(first.output.counters()).toMatchObject({ row_exact_statements: 0 });

    const ring = ringWith(points);
    db.cleanup.push(() => ring.close());
    const { sync, output, log } = start(ring, url, asTimescaledb('2.17.2'));
    await sync.start();
    await until(drained(ring), 15_000, 'replay');
    expect(output.targetInfo()).toEqual({ timescaledbVersion: '2.17.2', hypertable: true, compressionEnabled: true });
    const newRows = Math.floor(points.length / 2) * 5;
    expect(output.counters()).toMatchObject({ rows_inserted: newRows, rows_already_present: points.length * 5 - newRows });
    expect(output.counters().row_exact_statements).toBeGreaterThan(0);
    expect(await counts(url)).toEqual({ n: points.length * 5, d: points.length * 5 });
    await expectEveryValue(url, points);
    expect(log.lines.filter((l) => l.level === 'warn').map((l) => l.msg)).toEqual([expect.stringMatching(/timescale\/timescaledb#7672.*inserting only rows not already there/)]);
  });

  it('a fixed release, or no compression, keeps the plain ON CONFLICT statement', async () => {
    for (const [version, compression] of [
      ['2.18.1', true],
      ['2.17.2', false],
    ] as const) {
      const url = await db.newDatabase();
      await q(url, STAND_IN_HYPERTABLES(compression));
      const ring = ringWith(makePoints(2, 10));
      db.cleanup.push(() => ring.close());
      const { sync, output } = start(ring, url, asTimescaledb(version));
      await sync.start();
      await until(drained(ring), 15_000, 'drained');
      expect(output.counters()).toMatchObject({ row_exact_statements: 0, rows_inserted: 100, hypertable: 1 });
      await sync.stop();
    }
  });

  it('compression enabled while the output runs: it switches to row-exact inserts at the next look', async () => {
    const url = await db.newDatabase();
    await q(url, `CREATE TABLE stand_in_compression (on_ boolean NOT NULL); INSERT INTO stand_in_compression VALUES (false);
      CREATE SCHEMA timescaledb_information;
      CREATE VIEW timescaledb_information.hypertables AS
        SELECT 'public'::name AS hypertable_schema, 'sensor_data'::name AS hypertable_name, on_ AS compression_enabled FROM stand_in_compression;`);
    const ring = SqliteRing.open(ringOptions());
    db.cleanup.push(() => ring.close());
    const { sync, output, log } = start(ring, url, asTimescaledb('2.17.2'), {}, 300);
    await sync.start();
    await ring.write(makePoints(2, 5));
    await until(drained(ring), 15_000, 'first points');
    expect(output.counters()).toMatchObject({ row_exact_statements: 0, rows_inserted: 50 });
    await q(url, 'UPDATE stand_in_compression SET on_ = true');
    await new Promise((r) => setTimeout(r, 400));
    await ring.write(makePoints(2, 5, 1_800_000_000_000));
    await until(drained(ring), 15_000, 'second points');
    expect(output.counters()).toMatchObject({ row_exact_statements: 1, rows_inserted: 100 });
    expect(output.targetInfo()!.compressionEnabled).toBe(true);
    expect(log.lines.some((l) => l.level === 'warn' && /timescale\/timescaledb#7672/.test(l.msg))).toBe(true);
  });

  it('the row-exact statement: keys repeated within one statement are stored once, the first value kept', async () => {
    // The ring merges a repeated key before it leaves the store, so the statement is run by hand here.
    const url = await db.newDatabase();
    await q(url, createTableSql('sensor_data').table);
    await q(url, createTableSql('sensor_data').index);
    const client = new pgLib.Client({ connectionString: url });
    await client.connect();
    db.cleanup.push(() => client.end());
    const row = (us: number, value: number) => ({ us, value });
    const run = async (rows: { us: number; value: number }[]) => {
      const n = rows.length;
      const params = [
        `{${rows.map((r) => r.us).join(',')}}`,
        `{${Array(n).fill('"m"').join(',')}}`,
        `{${Array(n).fill('"{\\"a\\": \\"1\\"}"').join(',')}}`,
        `{${Array(n).fill('"v"').join(',')}}`,
        `{${rows.map((r) => r.value).join(',')}}`,
        `{${Array(n).fill('NULL').join(',')}}`,
        `{${Array(n).fill('NULL').join(',')}}`,
        `{${Array(n).fill('NULL').join(',')}}`,
      ];
      const us = rows.map((r) => r.us);
      return (await client.query(rowExactInsertSql('sensor_data'), [...params, ...timeBounds(Math.min(...us), Math.max(...us))])).rowCount;
    };
    expect(await run([row(1_000_000, 1), row(1_000_000, 2), row(2_000_000, 1)])).toBe(2);
    // Stored first, new second, stored, new: exactly the two new ones.
    expect(await run([row(1_000_000, 9), row(3_000_000, 3), row(2_000_000, 9), row(4_000_000, 4)])).toBe(2);
    expect(await q(url, "SELECT (extract(epoch from time))::int AS s, value, tags FROM sensor_data ORDER BY time")).toEqual([
      { s: 1, value: 1, tags: { a: '1' } },
      { s: 2, value: 1, tags: { a: '1' } },
      { s: 3, value: 3, tags: { a: '1' } },
      { s: 4, value: 4, tags: { a: '1' } },
    ]);
  });
});

describe('TimescaleDB-only statements degrade to a clear error', () => {
  it('a timescaledb extension without timescaledb_information.hypertables: paused, naming the view and the version needed', async () => {
    const url = await db.newDatabase();
    const ring = ringWith(makePoints(1, 5));
    db.cleanup.push(() => ring.close());
    const { sync, log } = start(ring, url, asTimescaledb('1.7.5'));
    await sync.start();
    await until(() => sync.stats().paused === 'fatal', 10_000, 'paused');
    expect(sync.stats().lastError).toMatch(/SQLSTATE 42P01: relation "timescaledb_information.hypertables" does not exist.*needs TimescaleDB 2\.0 or later/);
    expect(log.text()).not.toMatch(/write failed/);
    expect(ring.outputStatus('up').backlog_points).toBe(5);
  });

  it('the hypertable query against the stand-in view, schema-qualified or not', async () => {
    const url = await db.newDatabase();
    await q(url, STAND_IN_HYPERTABLES(true));
    const client = new pgLib.Client({ connectionString: url });
    await client.connect();
    db.cleanup.push(() => client.end());
    expect(await hypertableInfo(client, 'sensor_data')).toEqual({ hypertable: true, compressionEnabled: true });
    expect(await hypertableInfo(client, 'public.sensor_data')).toEqual({ hypertable: true, compressionEnabled: true });
    expect(await hypertableInfo(client, 'other.sensor_data')).toEqual({ hypertable: false, compressionEnabled: false });
  });
});

async function expectEveryValue(url: string, points: Point[]): Promise<void> {
  const rows = await q<{ us: string; sensor: string; field: string }>(url, "SELECT (extract(epoch from time) * 1000000)::bigint::text AS us, tags->>'sensor' AS sensor, field FROM sensor_data");
  const stored = new Set(rows.map((r) => `${r.us}|${r.sensor}|${r.field}`));
  const missing = points.flatMap((p) => Object.keys(p.fields).map((f) => `${p.timeUs}|${p.tags.sensor}|${f}`)).filter((k) => !stored.has(k));
  expect(missing).toEqual([]);
}
