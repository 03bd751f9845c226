// What both layouts share: the connection pool and how PostgreSQL's errors become engine categories.
import { readFileSync } from 'node:fs';
import pg from 'pg';
import { OutputError, type OutputContext } from '../../src/core/component.js';
import type { TimescaledbOutputConfig } from './schema.js';

export function makePool(config: TimescaledbOutputConfig, maxConnections: number, ctx: OutputContext): pg.Pool {
  let ssl: pg.PoolConfig['ssl'];
  if (config.tls !== undefined) {
    let ca: Buffer | undefined;
    if (config.tls.ca !== undefined) {
      try {
        ca = readFileSync(config.tls.ca);
      } catch (err) {
        throw new OutputError(`cannot read tls.ca ${config.tls.ca}: ${(err as Error).message}`, 'fatal', {}, { cause: err });
      }
    }
    ssl = { ca, rejectUnauthorized: !config.tls.insecure_skip_verify };
  }
  const pool = new pg.Pool({
    connectionString: config.url,
    ssl,
    max: maxConnections,
    connectionTimeoutMillis: config.timeout,
    idleTimeoutMillis: 30_000,
    // The server cancels a statement that outlives the request timeout, so a retry never races it for long.
    statement_timeout: config.timeout,
    application_name: 'sluice',
  });
  // An idle connection that breaks (server restart) is dropped and replaced on the next write.
  pool.on('error', (err) => ctx.log.debug({ err: err.message }, 'idle connection closed'));
  return pool;
}

/**
 * PostgreSQL's SQLSTATE classes and node's socket errors, as engine categories. `tableMissing` runs when
 * a table went away (dropped by hand), so the output creates it again before the next write.
 */
export function classifyPgError(err: unknown, tableMissing: () => void): OutputError {
  if (err instanceof OutputError) return err;
  const e = err as Error & { code?: string; severity?: string };
  const code = e.code ?? '';
  const message = `${code ? code + ': ' : ''}${e.message}`;
  if (/^(ECONNREFUSED|ENOTFOUND|EAI_AGAIN|EHOSTUNREACH|ENETUNREACH)$/.test(code)) {
    return new OutputError(`cannot reach the database (${message})`, 'retry', { unreached: true, status: code }, { cause: err });
  }
  if (code === '42P01') {
    tableMissing();
    return new OutputError(`table missing (${message}); creating it again`, 'retry', { status: code }, { cause: err });
  }
  if (code.startsWith('28') || code === '42501') return new OutputError(`credentials or privileges refused (${message})`, 'auth', { status: code }, { cause: err });
  if (code === '3D000' || code === '3F000' || code === '42703' || code === '42804') {
    return new OutputError(`the database refuses our configuration (${message})`, 'fatal', { status: code }, { cause: err });
  }
  if (code.startsWith('53') || code === '57P03') return new OutputError(`the database is overloaded (${message})`, 'throttle', { status: code }, { cause: err });
  if (code.startsWith('22') || code.startsWith('23') || code === '54000') {
    // A value the database will never take (a NUL in a string, an index row too large): bisect to it.
    return new OutputError(`the database refused a value (${message})`, 'reject', { status: code, reason: 'value_refused' }, { cause: err });
  }
  if (code === '57014') return new OutputError(`statement timed out (${message})`, 'retry', { timeout: true, status: code }, { cause: err });
  return new OutputError(`write failed (${message})`, 'retry', { status: code || undefined }, { cause: err });
}

/** Resolves once every connection is closed: pg-pool's end() resolves before its clients' sockets close. */
export async function endPool(pool: pg.Pool): Promise<void> {
  let open = pool.totalCount;
  const allClosed = new Promise<void>((resolve) => {
    if (open === 0) resolve();
    pool.on('remove', () => {
      if (--open === 0) resolve();
    });
  });
  await pool.end();
  await allClosed;
}

/**
 * One statement on a connection of its own, given up when `signal` aborts. Giving up means dropping
 * the connection (pg cannot cancel a statement in flight): the statement may still commit on the
 * server, which ON CONFLICT DO NOTHING makes harmless on replay. `classify` maps a database error.
 */
export async function abortableQuery(pool: pg.Pool, query: pg.QueryConfig, signal: AbortSignal | undefined, classify: (err: unknown) => OutputError): Promise<pg.QueryResult> {
  if (signal?.aborted) throw new OutputError('write aborted', 'retry');
  let client: pg.PoolClient;
  try {
    client = await pool.connect();
  } catch (err) {
    throw classify(err);
  }
  let dropped = false;
  const onAbort = (): void => {
    dropped = true;
    client.release(new Error('write aborted'));
  };
  signal?.addEventListener('abort', onAbort, { once: true });
  try {
    return await client.query(query);
  } catch (err) {
    if (dropped) throw new OutputError('write aborted', 'retry', {}, { cause: err });
    throw classify(err);
  } finally {
    signal?.removeEventListener('abort', onAbort);
    if (!dropped) client.release();
  }
}
