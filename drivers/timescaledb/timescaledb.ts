// The `timescaledb` output: one row per value in a narrow table with a unique key, written with one
// INSERT ... SELECT FROM unnest(arrays) ... ON CONFLICT DO NOTHING per batch, so a replayed batch adds
// nothing. It creates the table when missing, as a hypertable when the timescaledb extension is
// installed, and works on plain PostgreSQL otherwise.
//
// Why unnest rather than COPY: COPY needs pg-copy-streams (a dependency) and cannot say ON CONFLICT DO
// NOTHING (it would need a staging table and a second statement). Eight array parameters are parsed
// once per batch and the plan is prepared once per connection, which keeps a single connection above
// 100k values/s on this kind of hardware (see bench/outputs.mjs).
import { readFileSync } from 'node:fs';
import pg from 'pg';
import { OutputError, type Output, type OutputBatch, type OutputContext, type WriteResult } from '../../src/core/component.js';
import type { TimescaledbOutputConfig } from './schema.js';
import { valueRows, type ValueRows } from './rows.js';

export const MAX_STATEMENT_BYTES = 64 * 1024 * 1024;

/** Columns the table must have (name → PostgreSQL type as information_schema spells it). */
export const COLUMNS: Readonly<Record<string, string>> = {
  time: 'timestamp with time zone',
  measurement: 'text',
  tags: 'jsonb',
  field: 'text',
  value: 'double precision',
  value_int: 'bigint',
  value_text: 'text',
  value_bool: 'boolean',
};

/** A quoted, optionally schema-qualified identifier ("schema"."table"). The schema's pattern already bars quotes. */
export function quoteTable(name: string): string {
  return name
    .split('.')
    .map((p) => '"' + p.replace(/"/g, '""') + '"')
    .join('.');
}

export function createTableSql(table: string): string[] {
  const t = quoteTable(table);
  const bare = table.split('.').pop()!;
  return [
    `CREATE TABLE IF NOT EXISTS ${t} (
  time        timestamptz      NOT NULL,
  measurement text COLLATE "C" NOT NULL,
  tags        jsonb            NOT NULL,
  field       text COLLATE "C" NOT NULL,
  value       double precision,
  value_int   bigint,
  value_text  text,
  value_bool  boolean
)`,
    // The key a replay collides with. (measurement, field, tags, time) also serves the usual query:
    // one field of one measurement, some series, a time range; a series' rows sit together, so a
    // backlog drained series by series inserts with good locality. Names compare byte-wise (COLLATE
    // "C"): they are identifiers, and a locale collation would make every index comparison costly.
    `CREATE UNIQUE INDEX IF NOT EXISTS "${bare.replace(/"/g, '""')}_sluice_key" ON ${t} (measurement, field, tags, time)`,
  ];
}

export function insertSql(table: string): string {
  return `INSERT INTO ${quoteTable(table)} (time, measurement, tags, field, value, value_int, value_text, value_bool)
SELECT timestamptz 'epoch' + u.t * interval '1 microsecond', u.m, u.g, u.f, u.v, u.i, u.s, u.b
FROM unnest($1::int8[], $2::text[], $3::jsonb[], $4::text[], $5::float8[], $6::int8[], $7::text[], $8::bool[]) AS u(t, m, g, f, v, i, s, b)
ON CONFLICT DO NOTHING`;
}

export class TimescaledbOutput implements Output {
  private pool: pg.Pool | undefined;
  private ready = false;
  private hypertable = false;
  private readonly insert: string;
  private readonly statementName: string;
  private readonly counts = { rows_inserted: 0, rows_already_present: 0 };

  constructor(
    private readonly config: TimescaledbOutputConfig,
    private readonly ctx: OutputContext,
    /** Connections: the engine's concurrency plus its live slot. */
    private readonly maxConnections = 5,
  ) {
    this.insert = insertSql(config.table);
    this.statementName = `sluice_insert_${config.table.replace(/\W/g, '_')}`;
  }

  async connect(): Promise<void> {
    if (!this.pool) this.pool = this.makePool();
    this.ready = false;
    await this.ensureTable();
  }

  /** The CPU part of a write: the batch as the INSERT's array parameters (run ahead by the engine). */
  encode(batch: OutputBatch): ValueRows {
    return valueRows(batch);
  }

  async write(batch: OutputBatch, signal?: AbortSignal, encoded?: unknown): Promise<WriteResult> {
    const pool = this.pool;
    if (!pool) throw new OutputError('not connected', 'retry');
    if (signal?.aborted) throw new OutputError('write aborted', 'retry');
    if (!this.ready) await this.ensureTable();
    const rows = (encoded as ValueRows | undefined) ?? valueRows(batch);
    if (rows.rows === 0) return { rejectedPoints: 0, bytes: 0 };
    // Statements stay well below PostgreSQL's 1 GB message limit, and a connection's memory with them.
    if (rows.bytes > MAX_STATEMENT_BYTES && batch.points > 1) throw new OutputError(`statement of ${rows.bytes} bytes is above ${MAX_STATEMENT_BYTES}`, 'split');
    let client: pg.PoolClient;
    try {
      client = await pool.connect();
    } catch (err) {
      throw this.classify(err);
    }
    // Giving up on abort means dropping the connection (pg cannot cancel a statement in flight): the
    // statement may still commit server-side, which ON CONFLICT DO NOTHING makes harmless on replay.
    let dropped = false;
    const onAbort = () => {
      dropped = true;
      client.release(new Error('write aborted'));
    };
    signal?.addEventListener('abort', onAbort, { once: true });
    try {
      const res = await client.query({ name: this.statementName, text: this.insert, values: rows.params });
      const inserted = res.rowCount ?? 0;
      this.counts.rows_inserted += inserted;
      this.counts.rows_already_present += rows.rows - inserted;
      return { rejectedPoints: 0, bytes: rows.bytes };
    } catch (err) {
      if (dropped) throw new OutputError('write aborted', 'retry', {}, { cause: err });
      throw this.classify(err);
    } finally {
      signal?.removeEventListener('abort', onAbort);
      if (!dropped) client.release();
    }
  }

  /** Resolves once every connection is closed: pg-pool's end() resolves before its clients' sockets close. */
  async close(): Promise<void> {
    const pool = this.pool;
    this.pool = undefined;
    if (!pool) return;
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

  counters(): Record<string, number> {
    return { ...this.counts, hypertable: this.hypertable ? 1 : 0 };
  }

  private makePool(): pg.Pool {
    const { config } = this;
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
      max: this.maxConnections,
      connectionTimeoutMillis: config.timeout,
      idleTimeoutMillis: 30_000,
      // The server cancels a statement that outlives the request timeout, so a retry never races it for long.
      statement_timeout: config.timeout,
      application_name: 'sluice',
    });
    // An idle connection that breaks (server restart) is dropped and replaced on the next write.
    pool.on('error', (err) => this.ctx.log.debug({ err: err.message }, 'idle connection closed'));
    return pool;
  }

  /** Creates the table if missing (a hypertable when TimescaleDB is there) and checks its columns. */
  private async ensureTable(): Promise<void> {
    const pool = this.pool;
    if (!pool) throw new OutputError('not connected', 'retry');
    let client: pg.PoolClient;
    try {
      client = await pool.connect();
    } catch (err) {
      throw this.classify(err);
    }
    try {
      await client.query('BEGIN');
      // Two gateways starting at once must not race CREATE TABLE IF NOT EXISTS.
      await client.query('SELECT pg_advisory_xact_lock(hashtext($1))', [`sluice:${this.config.table}`]);
      const [create, index] = createTableSql(this.config.table);
      await client.query(create);
      const ext = await client.query("SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'");
      this.hypertable = (ext.rowCount ?? 0) > 0;
      if (this.hypertable) {
        await client.query("SELECT create_hypertable($1::regclass, 'time', if_not_exists => TRUE, migrate_data => TRUE)", [quoteTable(this.config.table)]);
      }
      await client.query(index);
      await client.query('COMMIT');
      const [schema, table] = this.config.table.includes('.') ? this.config.table.split('.') : [null, this.config.table];
      const cols = await client.query<{ column_name: string; data_type: string }>(
        `SELECT column_name, data_type FROM information_schema.columns
         WHERE table_name = $1 AND table_schema = coalesce($2, current_schema())`,
        [table, schema],
      );
      const have = new Map(cols.rows.map((r) => [r.column_name, r.data_type]));
      const wrong = Object.entries(COLUMNS).filter(([name, type]) => have.get(name) !== type);
      if (wrong.length > 0) {
        throw new OutputError(
          `table ${this.config.table} exists with another shape: needs ${wrong.map(([n, t]) => `${n} ${t}`).join(', ')}; use another table name or migrate it`,
          'fatal',
        );
      }
      this.ready = true;
      this.ctx.log.debug({ table: this.config.table, hypertable: this.hypertable }, 'timescaledb table ready');
    } catch (err) {
      await client.query('ROLLBACK').catch(() => undefined);
      throw this.classify(err);
    } finally {
      client.release();
    }
  }

  /** PostgreSQL's SQLSTATE classes and node's socket errors, as engine categories. */
  private classify(err: unknown): OutputError {
    if (err instanceof OutputError) return err;
    const e = err as Error & { code?: string; severity?: string };
    const code = e.code ?? '';
    const message = `${code ? code + ': ' : ''}${e.message}`;
    if (/^(ECONNREFUSED|ENOTFOUND|EAI_AGAIN|EHOSTUNREACH|ENETUNREACH)$/.test(code)) {
      return new OutputError(`cannot reach the database (${message})`, 'retry', { unreached: true, status: code }, { cause: err });
    }
    if (code === '42P01') {
      // The table went away (dropped by hand): create it again before the next write.
      this.ready = false;
      return new OutputError(`table missing (${message}); creating it again`, 'retry', { status: code }, { cause: err });
    }
    if (code.startsWith('28') || code === '42501') return new OutputError(`credentials or privileges refused (${message})`, 'auth', { status: code }, { cause: err });
    if (code === '3D000' || code === '3F000' || code === '42703' || code === '42804') {
      return new OutputError(`the database refuses our configuration (${message})`, 'fatal', { status: code }, { cause: err });
    }
    if (code.startsWith('53') || code === '57P03') return new OutputError(`the database is overloaded (${message})`, 'throttle', { status: code }, { cause: err });
    if (code.startsWith('22') || code.startsWith('23') || code === '54000') {
      // A value the database will never take (a NUL in a string, an index row too large): bisect to it.
      return new OutputError(`the database refused a value (${message})`, 'reject', { status: code }, { cause: err });
    }
    if (code === '57014') return new OutputError(`statement timed out (${message})`, 'retry', { timeout: true, status: code }, { cause: err });
    return new OutputError(`write failed (${message})`, 'retry', { status: code || undefined }, { cause: err });
  }
}
