// A real InfluxDB 1.6.7 (Debian's `influxd`) on loopback for tests and benchmarks: a temp config with
// free ports, data in a temp dir, reporting off. It can be stopped and started again on the same ports
// and data (an outage), and it fails loudly when influxd is not installed: tests never skip.
import type { ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const INFLUXD = process.env.SLUICE_INFLUXD ?? '/usr/bin/influxd';

export interface InfluxdbServer {
  /** Base url, e.g. http://127.0.0.1:PORT */
  readonly url: string;
  readonly port: number;
  readonly dir: string;
  /** Stops the server (SIGTERM, then waits). Data stays for start(). */
  stop(): Promise<void>;
  /** Starts it again on the same ports and data. */
  start(): Promise<void>;
  /** Runs an InfluxQL statement; returns the parsed JSON. */
  query(q: string, db?: string): Promise<QueryResult>;
  /** Rows of the first series of the first statement, as objects keyed by column. */
  rows(q: string, db: string): Promise<Record<string, unknown>[]>;
  /** POSTs line protocol to /write. */
  write(db: string, body: string, precision?: string): Promise<{ status: number; body: string }>;
  /** Stops the server and deletes its data. */
  close(): Promise<void>;
}

export interface QueryResult {
  results: { statement_id: number; error?: string; series?: { name: string; tags?: Record<string, string>; columns: string[]; values: unknown[][] }[] }[];
}

import { freePort } from './http.js';
import { spawnPeer, stopPeer, waitReady } from './peer.js';

export { freePort };

export function httpRequest(url: string, method: string, body?: string | Buffer, headers: Record<string, string> = {}): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (d: Buffer) => chunks.push(d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
}

const live = new Set<ChildProcess>();
process.once('exit', () => {
  for (const p of live) p.kill('SIGKILL');
});

/** The admin the helper creates when started with `auth: true`. */
export const INFLUX_ADMIN = { username: 'admin', password: 'admin-secret-pw' };

export async function startInfluxdb(options: { log?: boolean; auth?: boolean } = {}): Promise<InfluxdbServer> {
  if (!existsSync(INFLUXD)) {
    throw new Error(`influxd not found at ${INFLUXD}: install Debian's influxdb package (apt-get install influxdb), or set SLUICE_INFLUXD`);
  }
  const dir = mkdtempSync(join(tmpdir(), 'sluice-influxd-'));
  const [rpcPort, httpPort] = [await freePort(), await freePort()];
  const config = join(dir, 'influxd.conf');
  writeFileSync(
    config,
    [
      'reporting-disabled = true',
      `bind-address = "127.0.0.1:${rpcPort}"`,
      '[meta]',
      `  dir = "${join(dir, 'meta')}"`,
      '[data]',
      `  dir = "${join(dir, 'data')}"`,
      `  wal-dir = "${join(dir, 'wal')}"`,
      '  query-log-enabled = false',
      '[http]',
      `  bind-address = "127.0.0.1:${httpPort}"`,
      '  log-enabled = false',
      `  auth-enabled = ${options.auth ? 'true' : 'false'}`,
      '[monitor]',
      '  store-enabled = false',
      '[continuous_queries]',
      '  enabled = false',
      '',
    ].join('\n'),
  );
  const url = `http://127.0.0.1:${httpPort}`;
  const auth: Record<string, string> = options.auth
    ? { authorization: 'Basic ' + Buffer.from(`${INFLUX_ADMIN.username}:${INFLUX_ADMIN.password}`).toString('base64') }
    : {};
  let child: ChildProcess | undefined;
  let stderr = '';

  const start = async (): Promise<void> => {
    stderr = '';
    child = spawnPeer(INFLUXD, ['-config', config], { stdio: ['ignore', options.log ? 'inherit' : 'ignore', 'pipe'] });
    live.add(child);
    child.stderr?.on('data', (d: Buffer) => {
      stderr = (stderr + d.toString()).slice(-4000);
    });
    const proc = child;
    proc.once('exit', () => live.delete(proc));
    await waitReady(proc, 'influxd', async () => (await httpRequest(`${url}/ping`, 'GET')).status === 204, () => stderr);
  };

  const stop = async (): Promise<void> => {
    const proc = child;
    child = undefined;
    await stopPeer(proc, 'SIGTERM', 10_000);
  };

  const query = async (q: string, db?: string): Promise<QueryResult> => {
    const params = new URLSearchParams({ q, epoch: 'u' });
    if (db) params.set('db', db);
    const r = await httpRequest(`${url}/query`, 'POST', params.toString(), { 'content-type': 'application/x-www-form-urlencoded', ...auth });
    if (r.status !== 200) throw new Error(`query ${q}: ${r.status} ${r.body}`);
    return JSON.parse(r.body) as QueryResult;
  };

  await start();
  if (options.auth) {
    // The first admin may be created without credentials; everything after needs them.
    const params = new URLSearchParams({ q: `CREATE USER ${INFLUX_ADMIN.username} WITH PASSWORD '${INFLUX_ADMIN.password}' WITH ALL PRIVILEGES` });
    const r = await httpRequest(`${url}/query`, 'POST', params.toString(), { 'content-type': 'application/x-www-form-urlencoded' });
    if (r.status !== 200) throw new Error(`creating the admin user: ${r.status} ${r.body}`);
  }
  return {
    url,
    port: httpPort,
    dir,
    start,
    stop,
    query,
    async rows(q, db) {
      const res = await query(q, db);
      const r = res.results[0];
      if (r.error) throw new Error(`${q}: ${r.error}`);
      const out: Record<string, unknown>[] = [];
      for (const s of r.series ?? []) {
        for (const v of s.values) out.push({ ...s.tags, ...Object.fromEntries(s.columns.map((c, i) => [c, v[i]])) });
      }
      return out;
    },
    write: (db, body, precision = 'u') => httpRequest(`${url}/write?db=${encodeURIComponent(db)}&precision=${precision}`, 'POST', body, auth),
    async close() {
      await stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
