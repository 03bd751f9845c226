// The quarantine cycle against a real PostgreSQL 15: a value the database will not store (a CHECK
// constraint the points break) is refused → kept in the quarantine with PostgreSQL's words → listed
// and exported by the CLI while the store is open in the "agent" (this test's ring and sync engine) →
// retried before the fix (refused again, counted once) → retried after the constraint is dropped →
// delivered, the quarantine empty and the output's counts those of a clean delivery.
import pgLib from 'pg';
import { describe, expect, it } from 'vitest';
import { parseLine } from '../../src/core/line-protocol.js';
import type { Point } from '../../src/core/point.js';
import { SqliteRing } from '../../src/store/ring.js';
import { RingSource } from '../../src/sync/source.js';
import { sluice } from '../../test/helpers/cli.js';
import { CaptureLogger, engine, ringOptions, until } from '../../test/helpers/sync.js';
import { tmpDir } from '../../test/helpers/tmp.js';
import { usePostgres } from './testing/fixture.js';
import type { TimescaledbOutputConfig } from './schema.js';
import { TimescaledbOutput } from './timescaledb.js';

const db = usePostgres('q');

async function q<R extends Record<string, unknown>>(url: string, sql: string): Promise<R[]> {
  const client = new pgLib.Client({ connectionString: url });
  await client.connect();
  try {
    return (await client.query<R>(sql)).rows;
  } finally {
    await client.end();
  }
}

const point = (temperature: number, second: number): Point => ({ measurement: 'plant', tags: { device: 'd1' }, fields: { temperature }, timeUs: second * 1_000_000 });

function cli(args: string[]): unknown {
  const r = sluice(args);
  expect(r.stderr).toBe('');
  expect(r.status).toBe(0);
  return args.includes('export') ? r.stdout : JSON.parse(r.stdout);
}

describe('quarantine: refused → listed → exported → retried → delivered (PostgreSQL 15)', () => {
  it('keeps the refused points with the reason, and delivers them once the upstream takes them', async () => {
    const url = await db.newDatabase();
    const dataDir = tmpDir();
    const ring = SqliteRing.open(ringOptions(dataDir));
    db.cleanup.push(() => ring.close());
    const log = new CaptureLogger();
    const cfg: TimescaledbOutputConfig = { type: 'timescaledb', url, table_template: '{measurement}', new_columns: 'add', resolution: 'raw', batch_size: 5000, flush_interval: 100, timeout: 5000 };
    const sync = engine(new TimescaledbOutput(cfg, { id: 'up', log, agentId: 'test' }), ring, { id: 'up', log, source: new RingSource(ring, 'up') });
    db.cleanup.push(() => sync.stop());
    await sync.start();
    const drained = () => ring.outputStatus('up').backlog_points === 0;

    await ring.write([point(20, 1), point(21, 2)]);
    await until(drained, 20_000, 'the table created');
    await q(url, 'ALTER TABLE plant ADD CONSTRAINT sane CHECK (temperature < 100)');
    const bad = [point(150, 10), point(151, 11), point(152, 12)];
    await ring.write([point(22, 9), ...bad, point(23, 13)]);
    await until(drained, 20_000, 'the second batch settled');

    // Refused: counted as rejected, kept with PostgreSQL's reason.
    expect(ring.outputStatus('up')).toMatchObject({ sent_points: 4, rejected_points: 3 });
    const held = ring.status().quarantine.up;
    expect(held).toMatchObject({ points: 3, values: 3, oldest_ms: 10_000, newest_ms: 12_000 });
    expect(Object.keys(held.reasons)).toEqual(['value_refused']);
    expect(held.reasons.value_refused.last_message).toMatch(/violates check constraint "sane"/);
    expect(log.lines.some((l) => /kept in the quarantine/.test(l.msg))).toBe(true);

    // Listed and exported by the CLI while the store is open here.
    const listed = cli(['quarantine', 'list', '--data-dir', dataDir, '--json']) as Record<string, { points: number; reasons: Record<string, { points: number }> }>;
    expect(listed.up.points).toBe(3);
    expect(listed.up.reasons.value_refused.points).toBe(3);
    const exported = (cli(['quarantine', 'export', '--data-dir', dataDir, '--output', 'up']) as string).trim().split('\n');
    expect(exported.map((line) => parseLine(line, 'ns'))).toEqual(bad);

    // Retried before the fix: refused again and back in the quarantine, counted once.
    expect(cli(['quarantine', 'retry', '--data-dir', dataDir, '--output', 'up'])).toEqual({ output: 'up', reason: null, retried_points: 3 });
    await until(() => drained() && ring.status().quarantine.up?.points === 3, 20_000, 'refused again');
    expect(ring.outputStatus('up')).toMatchObject({ sent_points: 4, rejected_points: 3 });

    // The upstream fixed: retried, delivered, nothing left in the quarantine.
    await q(url, 'ALTER TABLE plant DROP CONSTRAINT sane');
    expect(cli(['quarantine', 'retry', '--data-dir', dataDir, '--output', 'up', '--reason', 'value_refused'])).toMatchObject({ retried_points: 3 });
    await until(() => drained() && ring.outputStatus('up').sent_points === 7, 20_000, 'delivered after the fix');
    expect(ring.outputStatus('up')).toMatchObject({ sent_points: 7, rejected_points: 0 });
    expect(ring.status().quarantine).toEqual({});
    const rows = await q<{ s: number; temperature: number }>(url, 'SELECT extract(epoch FROM time)::int AS s, temperature FROM plant ORDER BY time');
    expect(rows).toEqual([1, 2, 9, 10, 11, 12, 13].map((s) => ({ s, temperature: { 1: 20, 2: 21, 9: 22, 10: 150, 11: 151, 12: 152, 13: 23 }[s] })));
    expect(cli(['quarantine', 'list', '--data-dir', dataDir, '--json'])).toEqual({});
    const unknown = sluice(['quarantine', 'retry', '--data-dir', dataDir, '--output', 'nobody']);
    expect([unknown.status, unknown.stderr]).toEqual([64, 'sluice: no output "nobody" in this store (outputs: up)\n']);
    expect(sluice(['quarantine', 'export', '--data-dir', dataDir]).stderr).toBe('sluice: quarantine export needs --output ID\n');
  }, 90_000);
});
