import { it } from 'vitest';
import pg from 'pg';
import { startPostgres } from './helpers/postgres.js';
import { makePoints, ringWith } from './helpers/sync.js';
import { valueRows, quoteElement } from '../drivers/timescaledb/rows.js';

it('profile pg variants', async () => {
  const srv = await startPostgres();
  const points = makePoints(50, 1200);
  const ring = ringWith(points);
  ring.registerOutput('x');
  const batches = [];
  for (let l = ring.lease('x', { maxPoints: 4000, order: 'oldest' }); l; l = ring.lease('x', { maxPoints: 4000, order: 'oldest' })) batches.push(valueRows({ parts: l.chunks.map((c) => ({ seriesKey: c.seriesKey, group: c.group })), points: l.points }));
  const c = new pg.Client({ connectionString: srv.url });
  await c.connect();
  const variants: Record<string, string> = {
    A: 'measurement, field, tags, time',
    B: 'measurement, field, time, tags',
  };
  for (const [name, idx] of Object.entries(variants)) {
    await c.query('DROP TABLE IF EXISTS t');
    await c.query('CREATE TABLE t (time timestamptz NOT NULL, measurement text NOT NULL, tags jsonb NOT NULL, field text NOT NULL, value double precision, value_int bigint, value_text text, value_bool boolean)');
    await c.query(`CREATE UNIQUE INDEX t_key ON t (${idx})`);
    const sql = `INSERT INTO t SELECT timestamptz 'epoch' + u.t * interval '1 microsecond', u.m, u.g, u.f, u.v, u.i, u.s, u.b FROM unnest($1::int8[], $2::text[], $3::jsonb[], $4::text[], $5::float8[], $6::int8[], $7::text[], $8::bool[]) AS u(t, m, g, f, v, i, s, b) ON CONFLICT DO NOTHING`;
    let t = performance.now(); let rows = 0;
    for (const b of batches) { await c.query({ name: 'ins' + name, text: sql, values: b.params }); rows += b.rows; }
    console.log(name, Math.round(rows / (performance.now() - t) * 1000), 'rows/s');
  }
  // no index at all
  await c.query('DROP TABLE IF EXISTS t');
  await c.query('CREATE TABLE t (time timestamptz NOT NULL, measurement text NOT NULL, tags jsonb NOT NULL, field text NOT NULL, value double precision, value_int bigint, value_text text, value_bool boolean)');
  let t = performance.now(); let rows = 0;
  for (const b of batches) { await c.query({ name: 'insN', text: `INSERT INTO t SELECT timestamptz 'epoch' + u.t * interval '1 microsecond', u.m, u.g, u.f, u.v, u.i, u.s, u.b FROM unnest($1::int8[], $2::text[], $3::jsonb[], $4::text[], $5::float8[], $6::int8[], $7::text[], $8::bool[]) AS u(t, m, g, f, v, i, s, b)`, values: b.params }); rows += b.rows; }
  console.log('noindex', Math.round(rows / (performance.now() - t) * 1000), 'rows/s');
  // text instead of jsonb for tags
  await c.query('DROP TABLE IF EXISTS t');
  await c.query('CREATE TABLE t (time timestamptz NOT NULL, measurement text NOT NULL, tags text NOT NULL, field text NOT NULL, value double precision, value_int bigint, value_text text, value_bool boolean)');
  await c.query(`CREATE UNIQUE INDEX t_key ON t (measurement, field, tags, time)`);
  t = performance.now(); rows = 0;
  for (const b of batches) { await c.query({ name: 'insT', text: `INSERT INTO t SELECT timestamptz 'epoch' + u.t * interval '1 microsecond', u.m, u.g, u.f, u.v, u.i, u.s, u.b FROM unnest($1::int8[], $2::text[], $3::text[], $4::text[], $5::float8[], $6::int8[], $7::text[], $8::bool[]) AS u(t, m, g, f, v, i, s, b) ON CONFLICT DO NOTHING`, values: b.params }); rows += b.rows; }
  console.log('text tags', Math.round(rows / (performance.now() - t) * 1000), 'rows/s');
  // select only (parse cost)
  t = performance.now(); rows = 0;
  for (const b of batches) { await c.query({ name: 'sel', text: `SELECT count(*) FROM unnest($1::int8[], $2::text[], $3::jsonb[], $4::text[], $5::float8[], $6::int8[], $7::text[], $8::bool[]) AS u(t, m, g, f, v, i, s, b)`, values: b.params }); rows += b.rows; }
  console.log('parse only', Math.round(rows / (performance.now() - t) * 1000), 'rows/s');
  await c.end();
  ring.close();
  await srv.close();
}, 300000);
