// Every output driver with its upstream, for the output contract. influxdb runs twice (api v1 against a
// real InfluxDB 1.6.7, api v2 against the named fake of the v2 API, test/helpers/fake-influx-v2.ts);
// timescaledb against a real PostgreSQL 15. A driver in OUTPUT_DRIVERS without a rig here fails
// test/contracts/coverage.test.ts.
import { createServer, type Server, type Socket } from 'node:net';
import pg from 'pg';
import { OUTPUT_DRIVERS } from '../../drivers/index.js';
import { seriesKey } from '../../src/core/line-protocol.js';
import { Unsigned, type FieldValue } from '../../src/core/point.js';
import { FakeInfluxV2 } from '../helpers/fake-influx-v2.js';
import { freePort } from '../helpers/http.js';
import { INFLUX_ADMIN, startInfluxdb, type InfluxdbServer } from '../helpers/influxdb.js';
import { startPostgres, type PostgresServer } from '../helpers/postgres.js';
import { quoteName } from '../../drivers/timescaledb/wide-ddl.js';
import { quoteIdent } from '../../drivers/timescaledb/wide-rows.js';
import { outputConfig } from './configs.js';
import type { ContractOutputDriver, OutputRig, Stall } from './output-contract.js';
import { serverSideOf } from './resources.js';

function driver(type: string): ContractOutputDriver {
  const d = OUTPUT_DRIVERS.find((x) => x.type === type);
  if (!d) throw new Error(`no output driver of type ${type} in OUTPUT_DRIVERS`);
  return d;
}

/** Generous request timeout: in the mid-request check the abort, not the timeout, must end the write. */
const TIMEOUT = 'timeout: 30s';

/**
 * A FAKE upstream that accepts connections and reads requests but never answers: a server that hangs
 * mid-request, which influxd cannot be made to do on demand. Used only for the mid-request abort check.
 */
async function silentServer(): Promise<{ port: number; server: Server; close(): Promise<void> }> {
  const sockets = new Set<Socket>();
  const server = createServer((s) => {
    sockets.add(s);
    s.on('data', () => undefined);
    s.on('error', () => undefined);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const port = (server.address() as { port: number }).port;
  return {
    port,
    server,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

function influxV1Rig(): OutputRig {
  let influx: InfluxdbServer | undefined;
  let n = 0;
  let deadPort = 0;
  const auth = [`username: ${INFLUX_ADMIN.username}`, `password: ${INFLUX_ADMIN.password}`];
  const v1 = (url: string, database: string, extra: string[] = auth) => outputConfig('influxdb', [`url: ${url}`, 'api: v1', `database: ${database}`, TIMEOUT, ...extra]);
  return {
    name: 'influxdb api v1 against InfluxDB 1.6.7',
    driver: driver('influxdb'),
    async setup() {
      influx = await startInfluxdb({ auth: true });
      deadPort = await freePort();
    },
    async teardown() {
      await influx?.close();
    },
    async target() {
      const db = `c${++n}`;
      await influx!.query(`CREATE DATABASE ${db}`);
      return {
        config: v1(influx!.url, db),
        async readBack() {
          const res = await influx!.query('SELECT * FROM contract GROUP BY *', db);
          const out: string[] = [];
          for (const s of res.results[0]?.series ?? []) {
            const key = seriesKey(s.name, s.tags ?? {});
            for (const row of s.values) {
              s.columns.forEach((c, i) => {
                const v = row[i];
                if (c !== 'time' && v !== null) out.push(`${key} ${String(row[0])} ${c}=${typeof v}:${typeof v === 'string' ? v : JSON.stringify(v)}`);
              });
            }
          }
          return out.sort();
        },
      };
    },
    // 1.x has no unsigned type (the driver sends it as an integer) and answers in JSON numbers.
    canonical: (v: FieldValue) => (typeof v === 'bigint' || v instanceof Unsigned ? `number:${Number(v instanceof Unsigned ? v.value : v)}` : `${typeof v}:${String(v)}`),
    deadConfig: () => v1(`http://127.0.0.1:${deadPort}`, 'nowhere'),
    async refusals() {
      const db = `c${++n}`;
      await influx!.query(`CREATE DATABASE ${db}`);
      return [
        { what: 'a wrong password', config: v1(influx!.url, db, [`username: ${INFLUX_ADMIN.username}`, 'password: not-the-password']), category: 'auth' as const },
        { what: 'an unknown database', config: v1(influx!.url, 'no_such_database'), category: 'fatal' as const },
      ];
    },
    async stall(): Promise<Stall> {
      const silent = await silentServer();
      return { config: v1(`http://127.0.0.1:${silent.port}`, 'any'), hang: () => Promise.resolve(), end: () => silent.close() };
    },
  };
}
function influxV2Rig(): OutputRig {
  let fake: FakeInfluxV2 | undefined;
  const targets: FakeInfluxV2[] = [];
  let deadPort = 0;
  const v2 = (url: string, bucket: string, token = 'fake-token', org = 'acme') => outputConfig('influxdb', [`url: ${url}`, 'api: v2', `org: ${org}`, `bucket: ${bucket}`, `token: ${token}`, TIMEOUT]);
  return {
    name: 'influxdb api v2 against the fake v2 API (test/helpers/fake-influx-v2.ts)',
    driver: driver('influxdb'),
    async setup() {
      fake = await FakeInfluxV2.start();
      deadPort = await freePort();
    },
    async teardown() {
      for (const f of [fake, ...targets.splice(0)]) await f?.close();
    },
    // The fake serves one bucket: each target is a fake of its own, so two targets never share points.
    async target() {
      const f = await FakeInfluxV2.start();
      targets.push(f);
      return {
        config: v2(f.url, f.bucket),
        readBack() {
          const out: string[] = [];
          for (const [k, fields] of f.points) {
            const [key, time] = k.split('\n');
            for (const [name, v] of Object.entries(fields)) out.push(`${key} ${time} ${name}=${canonicalV2(v)}`);
          }
          return Promise.resolve(out.sort());
        },
      };
    },
    canonical: canonicalV2,
    deadConfig: () => v2(`http://127.0.0.1:${deadPort}`, 'edge'),
    refusals: () =>
      Promise.resolve([
        { what: 'a wrong token', config: v2(fake!.url, fake!.bucket, 'wrong-token'), category: 'auth' as const },
        { what: 'an unknown bucket', config: v2(fake!.url, 'no_such_bucket'), category: 'fatal' as const },
      ]),
    stall() {
      const f = fake!;
      return Promise.resolve({
        config: v2(f.url, f.bucket),
        hang: () => {
          f.faults.push({ kind: 'delay', ms: 20_000 });
          return Promise.resolve();
        },
        end: () => {
          f.faults.length = 0;
          return Promise.resolve();
        },
      });
    },
    ignore: (h) => [fake, ...targets].some((f) => f !== undefined && serverSideOf(Number(new URL(f.url).port))(h)),
  };
}

function canonicalV2(v: FieldValue): string {
  return v instanceof Unsigned ? `unsigned:${v.value}` : `${typeof v}:${String(v)}`;
}

function timescaledbRig(layout: 'narrow' | 'wide'): OutputRig {
  let server: PostgresServer | undefined;
  let n = 0;
  let deadPort = 0;
  const url = (db: string, user = 'postgres') => `postgres://${user}@127.0.0.1:${server!.port}/${db}`;
  // Narrow: one table for every measurement; wide: a table per measurement (the contract's is `contract`).
  const ts = (u: string) => outputConfig('timescaledb', [`url: ${u}`, layout === 'narrow' ? 'table: contract_data' : 'table_template: "{measurement}"', `layout: ${layout}`, TIMEOUT]);
  return {
    name: `timescaledb (${layout}) against PostgreSQL 15`,
    driver: driver('timescaledb'),
    async setup() {
      server = await startPostgres();
      deadPort = await freePort();
    },
    async teardown() {
      await server?.close();
    },
    async target() {
      const db = `c${++n}`;
      await server!.query(`CREATE DATABASE ${db}`);
      return {
        config: ts(url(db)),
        async readBack() {
          const client = new pg.Client({ connectionString: url(db) });
          await client.connect();
          try {
            return layout === 'narrow' ? await readNarrow(client) : await readWide(client, 'contract');
          } finally {
            await client.end();
          }
        },
      };
    },
    // PostgreSQL's bigint holds integers and unsigned alike (the driver keeps the float beside them).
    canonical: (v: FieldValue) => (typeof v === 'bigint' || v instanceof Unsigned ? `integer:${v instanceof Unsigned ? v.value : v}` : `${typeof v}:${String(v)}`),
    deadConfig: () => ts(`postgres://postgres@127.0.0.1:${deadPort}/nowhere`),
    async refusals() {
      const db = `c${++n}`;
      await server!.query(`CREATE DATABASE ${db}`);
      return [
        { what: 'an unknown role', config: ts(url(db, 'no_such_role')), category: 'auth' as const },
        { what: 'an unknown database', config: ts(url('no_such_database')), category: 'fatal' as const },
      ];
    },
    async stall(): Promise<Stall> {
      const db = `c${++n}`;
      await server!.query(`CREATE DATABASE ${db}`);
      // A real hang on the write's path. Narrow: another session holds the table's lock, so the INSERT
      // waits for it. Wide: the table does not exist yet, so the first write waits for the advisory lock
      // under which gateways create a measurement's table, which another session holds.
      const locker = new pg.Client({ connectionString: url(db) });
      let locked = false;
      return {
        config: ts(url(db)),
        async hang() {
          await locker.connect();
          await locker.query('BEGIN');
          if (layout === 'narrow') await locker.query('LOCK TABLE contract_data IN ACCESS EXCLUSIVE MODE');
          else await locker.query('SELECT pg_advisory_xact_lock(hashtext($1))', [`sluice:${quoteName({ schema: undefined, name: 'contract' })}`]);
          locked = true;
        },
        async end() {
          if (locked) await locker.query('ROLLBACK').catch(() => undefined);
          await locker.end().catch(() => undefined);
        },
      };
    },
  };
}

async function readNarrow(client: pg.Client): Promise<string[]> {
  const { rows } = await client.query<{ us: string; measurement: string; tags: Record<string, string>; field: string; value: number | null; value_int: string | null; value_text: string | null; value_bool: boolean | null }>(
    `SELECT (extract(epoch FROM time) * 1000000)::int8::text AS us, measurement, tags, field, value, value_int::text, value_text, value_bool FROM contract_data`,
  );
  return rows
    .map((r) => {
      const v = r.value_bool !== null ? `boolean:${r.value_bool}` : r.value_int !== null ? `integer:${r.value_int}` : r.value_text !== null ? `string:${r.value_text}` : `number:${String(r.value)}`;
      return `${seriesKey(r.measurement, r.tags)} ${r.us} ${r.field}=${v}`;
    })
    .sort();
}

/** A wide table read back from the catalog: tags are its `text NOT NULL` columns, fields the other columns but time. */
async function readWide(client: pg.Client, table: string): Promise<string[]> {
  const columns = await client.query<{ column_name: string; data_type: string; is_nullable: string }>(
    'SELECT column_name, data_type, is_nullable FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = $1',
    [table],
  );
  const tags = columns.rows.filter((c) => c.data_type === 'text' && c.is_nullable === 'NO').map((c) => c.column_name);
  const fields = columns.rows.filter((c) => c.column_name !== 'time' && !tags.includes(c.column_name));
  const kind = (dataType: string) => (dataType === 'bigint' || dataType === 'numeric' ? 'integer' : dataType === 'boolean' ? 'boolean' : dataType === 'text' ? 'string' : 'number');
  const select = [...tags, ...fields.map((f) => f.column_name)].map((c) => `${quoteIdent(c)}::text AS ${quoteIdent(c)}`).join(', ');
  const { rows } = await client.query<Record<string, string | null>>(`SELECT (extract(epoch FROM time) * 1000000)::int8::text AS "time·us", ${select} FROM ${quoteIdent(table)}`);
  const out: string[] = [];
  for (const r of rows) {
    const key = seriesKey(table, Object.fromEntries(tags.filter((t) => r[t] !== '').map((t) => [t, r[t]!])));
    for (const f of fields) {
      const v = r[f.column_name];
      if (v === null) continue;
      // double precision as text is the shortest text that reads back to the same double.
      const text = kind(f.data_type) === 'boolean' ? String(v === 'true') : kind(f.data_type) === 'number' ? String(Number(v)) : v;
      out.push(`${key} ${r['time·us']} ${f.column_name}=${kind(f.data_type)}:${text}`);
    }
  }
  return out.sort();
}

/** One entry per rig; `type` is the driver type each covers. */
export const OUTPUT_RIGS: { type: string; make: () => OutputRig }[] = [
  { type: 'influxdb', make: influxV1Rig },
  { type: 'influxdb', make: influxV2Rig },
  { type: 'timescaledb', make: () => timescaledbRig('narrow') },
  { type: 'timescaledb', make: () => timescaledbRig('wide') },
];
