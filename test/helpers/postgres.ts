// A real PostgreSQL 15 (Debian's postgresql-15) on loopback for tests and benchmarks: initdb into a temp
// dir, run as the `postgres` user when we are root (PostgreSQL refuses to run as root; node's spawn
// switches uid/gid itself, so the server is our direct child and gets our signals), unix socket in the
// temp dir, a free port on 127.0.0.1, trust authentication. Fails loudly when it is not installed.
import { execFileSync, type ChildProcess } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { freePort } from './influxdb.js';
import { spawnPeer, stopPeer, waitReady } from './peer.js';

export const PG_BIN = process.env.SLUICE_PG_BIN ?? '/usr/lib/postgresql/15/bin';

export interface PostgresServer {
  /** postgres://postgres@127.0.0.1:PORT/postgres */
  readonly url: string;
  readonly port: number;
  readonly dir: string;
  /** Runs one statement on a short-lived connection. */
  query<R extends pg.QueryResultRow = Record<string, unknown>>(sql: string, params?: unknown[]): Promise<R[]>;
  stop(): Promise<void>;
  start(): Promise<void>;
  /** Stops the server and deletes its data. */
  close(): Promise<void>;
}

const live = new Set<ChildProcess>();
process.once('exit', () => {
  for (const p of live) p.kill('SIGKILL');
});

function postgresUid(): { uid: number; gid: number } {
  const uid = Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).trim());
  const gid = Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).trim());
  return { uid, gid };
}

export interface PostgresOptions {
  /**
   * false (tests): fsync and synchronous_commit off, for speed; the tests kill the agent, not the
   * database. true (benchmarks): the server's durable defaults.
   */
  durable?: boolean;
}

export async function startPostgres(options: PostgresOptions = {}): Promise<PostgresServer> {
  for (const bin of ['initdb', 'postgres']) {
    if (!existsSync(join(PG_BIN, bin))) {
      throw new Error(`${join(PG_BIN, bin)} not found: install Debian's postgresql-15 package, or set SLUICE_PG_BIN`);
    }
  }
  const root = process.getuid?.() === 0;
  const ids = root ? postgresUid() : undefined;
  const dir = mkdtempSync(join(tmpdir(), 'sluice-pg-'));
  const data = join(dir, 'data');
  const sock = join(dir, 'sock');
  mkdirSync(sock);
  if (ids) {
    chmodSync(dir, 0o755);
    chownSync(dir, ids.uid, ids.gid);
    chownSync(sock, ids.uid, ids.gid);
  }
  const asPostgres = { ...(ids ?? {}), cwd: dir, env: { PATH: process.env.PATH ?? '/usr/bin:/bin', LANG: 'C.UTF-8' } };
  try {
    execFileSync(join(PG_BIN, 'initdb'), ['-D', data, '-A', 'trust', '-U', 'postgres', '--no-sync', '-E', 'UTF8', '--locale=C.UTF-8'], { ...asPostgres, stdio: 'pipe' });
  } catch (err) {
    throw new Error(`initdb failed: ${(err as { stderr?: Buffer }).stderr?.toString() ?? String(err)}`);
  }
  const port = await freePort();
  const url = `postgres://postgres@127.0.0.1:${port}/postgres`;
  const settings = ['-c', 'listen_addresses=127.0.0.1', '-c', 'max_connections=50', '-c', 'shared_buffers=128MB'];
  if (!options.durable) settings.push('-c', 'fsync=off', '-c', 'synchronous_commit=off', '-c', 'full_page_writes=off');
  let child: ChildProcess | undefined;
  let stderr = '';

  const query = async <R extends pg.QueryResultRow>(sql: string, params?: unknown[]): Promise<R[]> => {
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    try {
      return (await client.query<R>(sql, params)).rows;
    } finally {
      await client.end();
    }
  };

  const start = async (): Promise<void> => {
    stderr = '';
    child = spawnPeer(join(PG_BIN, 'postgres'), ['-D', data, '-p', String(port), '-k', sock, ...settings], { ...asPostgres, stdio: ['ignore', 'ignore', 'pipe'] });
    live.add(child);
    const proc = child;
    proc.once('exit', () => live.delete(proc));
    proc.stderr?.on('data', (d: Buffer) => {
      stderr = (stderr + d.toString()).slice(-4000);
    });
    await waitReady(proc, 'postgres', async () => (await query('SELECT 1')).length === 1, () => stderr);
  };

  const stop = async (): Promise<void> => {
    const proc = child;
    child = undefined;
    // SIGINT: fast shutdown (disconnects clients), as `pg_ctl stop -m fast`.
    await stopPeer(proc, 'SIGINT', 15_000);
  };

  await start();
  return {
    url,
    port,
    dir,
    query,
    start,
    stop,
    async close() {
      await stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
