// The narrow layout of the `timescaledb` output: one row per value in a narrow table with a unique key, written with one
// INSERT ... SELECT FROM unnest(arrays) ... ON CONFLICT DO NOTHING per batch, so a replayed batch adds
// nothing. It creates the table when missing, as a hypertable when the timescaledb extension is
// installed, and works on plain PostgreSQL otherwise. On a compressed hypertable of a TimescaleDB
// release with the ON CONFLICT bug (target.ts) it inserts only the rows not already there.
//
// Why unnest rather than COPY: COPY needs pg-copy-streams (a dependency) and cannot say ON CONFLICT DO
// NOTHING (it would need a staging table and a second statement). Eight array parameters are parsed
// once per batch and the plan is prepared once per connection, which keeps a single connection above
// 100k values/s on this kind of hardware (see bench/outputs.mjs).
import pg from 'pg';
import { OutputError, type Output, type OutputBatch, type OutputContext, type WriteResult } from '../../src/core/component.js';
import type { TimescaledbOutputConfig } from './schema.js';
import { abortableQuery, classifyPgError, endPool, makePool } from './pool.js';
import { valueRows, type ValueRows } from './rows.js';
import { KEY_COLUMNS, hypertableInfo, keyIndex, needsRowExactInsert, schemaStep, statementText, timescaledbVersion, versionNeedsGuard, type TargetInfo } from './target.js';

export const MAX_STATEMENT_BYTES = 64 * 1024 * 1024;

/**
 * How often a hypertable without compression is looked at again on a TimescaleDB release that needs the
 * row-exact guard: a user may enable compression while sluice runs.
 */
export const COMPRESSION_RECHECK_MS = 60_000;

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

export function keyIndexName(table: string): string {
  return table.split('.').pop()! + '_sluice_key';
}

export function createTableSql(table: string): { table: string; index: string } {
  const t = quoteTable(table);
  return {
    table: `CREATE TABLE IF NOT EXISTS ${t} (
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
    index: `CREATE UNIQUE INDEX IF NOT EXISTS "${keyIndexName(table).replace(/"/g, '""')}" ON ${t} (${KEY_COLUMNS.join(', ')})`,
  };
}

const COLUMN_LIST = 'time, measurement, tags, field, value, value_int, value_text, value_bool';
const UNNEST = `FROM unnest($1::int8[], $2::text[], $3::jsonb[], $4::text[], $5::float8[], $6::int8[], $7::text[], $8::bool[]) AS u(t, m, g, f, v, i, s, b)`;
const TIME = `timestamptz 'epoch' + u.t * interval '1 microsecond'`;

export function insertSql(table: string): string {
  return `INSERT INTO ${quoteTable(table)} (${COLUMN_LIST})
SELECT ${TIME}, u.m, u.g, u.f, u.v, u.i, u.s, u.b
${UNNEST}
ON CONFLICT DO NOTHING`;
}

/**
 * The row-exact insert: only rows whose key is not in the table yet reach the INSERT, so none of them
 * meets ON CONFLICT against a stored (possibly compressed) row. ON CONFLICT DO NOTHING stays for keys
 * repeated within the batch and for a concurrent writer. The names compare in the columns' "C"
 * collation. $9 and $10 bound the batch's times: without them TimescaleDB plans the anti-join over
 * every chunk and decompresses the whole hypertable for each statement; with them it reads the chunks
 * and compressed batches of the batch's time range only.
 */
export function rowExactInsertSql(table: string): string {
  const t = quoteTable(table);
  return `INSERT INTO ${t} (${COLUMN_LIST})
SELECT ${TIME}, u.m, u.g, u.f, u.v, u.i, u.s, u.b
${UNNEST}
WHERE NOT EXISTS (
  SELECT 1 FROM ${t} AS x
  WHERE x.measurement = u.m COLLATE "C" AND x.field = u.f COLLATE "C" AND x.tags = u.g AND x.time = ${TIME}
    AND x.time BETWEEN $9::timestamptz AND $10::timestamptz
)
ON CONFLICT DO NOTHING`;
}

/**
 * Bounds that hold every time of the batch, as timestamptz literals: whole milliseconds outward, or
 * ±infinity beyond what a Date can spell (a bound only narrows the rows the anti-join reads).
 */
export function timeBounds(minTimeUs: number, maxTimeUs: number): [string, string] {
  // PostgreSQL reads ISO years 0001–9999 only (toISOString spells others +010000 or -000001).
  const iso = (ms: number): string | null => {
    const d = new Date(ms);
    const year = d.getUTCFullYear();
    return Number.isNaN(d.getTime()) || year < 1 || year > 9999 ? null : d.toISOString();
  };
  return [iso(Math.floor(minTimeUs / 1000)) ?? '-infinity', iso(Math.ceil(maxTimeUs / 1000)) ?? 'infinity'];
}

/** Catalog reads a test may replace, to stand in for a database with the timescaledb extension. */
export interface CatalogReads {
  timescaledbVersion(client: pg.ClientBase): Promise<string | null>;
}

export interface TimescaledbOutputOptions {
  /** Connections: the engine's concurrency plus its live slot. */
  maxConnections?: number;
  catalog?: Partial<CatalogReads>;
  compressionRecheckMs?: number;
}

/** The config of a narrow output, its table resolved. */
export type NarrowConfig = TimescaledbOutputConfig & { table: string };

export class NarrowOutput implements Output {
  private pool: pg.Pool | undefined;
  private ready = false;
  private target: TargetInfo = { timescaledbVersion: null, hypertable: false, compressionEnabled: false };
  private targetReadMs = 0;
  private recheck: Promise<void> | undefined;
  private readonly insert: string;
  private readonly rowExactInsert: string;
  private readonly statementName: string;
  private readonly counts = { rows_inserted: 0, rows_already_present: 0, row_exact_statements: 0 };
  private readonly catalog: CatalogReads;
  private readonly maxConnections: number;
  private readonly compressionRecheckMs: number;

  constructor(
    private readonly config: NarrowConfig,
    private readonly ctx: OutputContext,
    options: TimescaledbOutputOptions = {},
  ) {
    this.insert = insertSql(config.table);
    this.rowExactInsert = rowExactInsertSql(config.table);
    this.statementName = `sluice_insert_${config.table.replace(/\W/g, '_')}`;
    this.catalog = { timescaledbVersion, ...options.catalog };
    this.maxConnections = options.maxConnections ?? 5;
    this.compressionRecheckMs = options.compressionRecheckMs ?? COMPRESSION_RECHECK_MS;
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
    await this.recheckCompression(pool);
    const rowExact = needsRowExactInsert(this.target);
    const res = await abortableQuery(
      pool,
      {
        name: rowExact ? `${this.statementName}_exact` : this.statementName,
        text: rowExact ? this.rowExactInsert : this.insert,
        values: rowExact ? [...rows.params, ...timeBounds(rows.minTimeUs, rows.maxTimeUs)] : rows.params,
      },
      signal,
      (err) => this.classify(err),
    );
    const inserted = res.rowCount ?? 0;
    this.counts.rows_inserted += inserted;
    this.counts.rows_already_present += rows.rows - inserted;
    if (rowExact) this.counts.row_exact_statements++;
    return { rejectedPoints: 0, bytes: rows.bytes };
  }

  async close(): Promise<void> {
    const pool = this.pool;
    this.pool = undefined;
    if (pool) await endPool(pool);
  }

  counters(): Record<string, number> {
    return { ...this.counts, hypertable: this.target.hypertable ? 1 : 0 };
  }

  /** What the output knows of its table: TimescaleDB version, hypertable, compression. */
  targetInfo(): Readonly<TargetInfo> {
    return this.target;
  }

  private makePool(): pg.Pool {
    return makePool(this.config, this.maxConnections, this.ctx);
  }

  /**
   * Creates the table if missing (a hypertable when TimescaleDB is there), makes sure the unique key
   * exists, and checks the columns. Each statement runs only when needed: TimescaleDB refuses even an
   * `IF NOT EXISTS` unique index on a hypertable with compression enabled.
   */
  private async ensureTable(): Promise<void> {
    const pool = this.pool;
    if (!pool) throw new OutputError('not connected', 'retry');
    let client: pg.PoolClient;
    try {
      client = await pool.connect();
    } catch (err) {
      throw this.classify(err);
    }
    const table = quoteTable(this.config.table);
    try {
      await schemaStep(client, 'BEGIN');
      // Two gateways starting at once must not race CREATE TABLE IF NOT EXISTS.
      await schemaStep(client, 'SELECT pg_advisory_xact_lock(hashtext($1))', [`sluice:${this.config.table}`]);
      const sql = createTableSql(this.config.table);
      await schemaStep(client, sql.table);
      const version = await this.catalog.timescaledbVersion(client);
      let target: TargetInfo = { timescaledbVersion: version, hypertable: false, compressionEnabled: false };
      if (version !== null) {
        target = { timescaledbVersion: version, ...(await hypertableInfo(client, this.config.table)) };
        if (!target.hypertable) {
          await schemaStep(client, "SELECT create_hypertable($1::regclass, 'time', if_not_exists => TRUE, migrate_data => TRUE)", [table]);
          target = { timescaledbVersion: version, ...(await hypertableInfo(client, this.config.table)) };
        }
      }
      if ((await keyIndex(client, table)).key === null) {
        await schemaStep(client, sql.index);
        const after = await keyIndex(client, table);
        if (after.key === null) {
          throw new OutputError(
            `table ${this.config.table} has no unique index on (${KEY_COLUMNS.join(', ')}) and \`${statementText(sql.index)}\` did not create one: ` +
              `a relation named ${keyIndexName(this.config.table)} already exists (${after.others.join(', ') || 'in the schema'}); rename it, or create the unique index yourself`,
            'fatal',
          );
        }
      }
      await schemaStep(client, 'COMMIT');
      const [schema, bare] = this.config.table.includes('.') ? this.config.table.split('.') : [null, this.config.table];
      const cols = await schemaStep<{ column_name: string; data_type: string }>(
        client,
        `SELECT column_name, data_type FROM information_schema.columns
         WHERE table_name = $1 AND table_schema = coalesce($2, current_schema())`,
        [bare, schema],
      );
      const have = new Map(cols.rows.map((r) => [r.column_name, r.data_type]));
      const wrong = Object.entries(COLUMNS).filter(([name, type]) => have.get(name) !== type);
      if (wrong.length > 0) {
        throw new OutputError(
          `table ${this.config.table} exists with another shape: needs ${wrong.map(([n, t]) => `${n} ${t}`).join(', ')}; use another table name or migrate it`,
          'fatal',
        );
      }
      this.noteTarget(target);
      this.ready = true;
      this.ctx.log.debug({ table: this.config.table, ...target }, 'timescaledb table ready');
    } catch (err) {
      await client.query('ROLLBACK').catch(() => undefined);
      throw this.classify(err);
    } finally {
      client.release();
    }
  }

  private noteTarget(target: TargetInfo): void {
    const guardBefore = needsRowExactInsert(this.target);
    this.target = target;
    this.targetReadMs = Date.now();
    if (needsRowExactInsert(target) && !guardBefore) {
      this.ctx.log.warn(
        { table: this.config.table, timescaledb: target.timescaledbVersion },
        'hypertable with compression enabled on a TimescaleDB release whose ON CONFLICT DO NOTHING can lose rows (timescale/timescaledb#7672, fixed in 2.18.1): inserting only rows not already there',
      );
    }
  }

  /** On a release that needs the guard, looks at compression again now and then: it may be enabled at any time. */
  private async recheckCompression(pool: pg.Pool): Promise<void> {
    const t = this.target;
    if (!t.hypertable || t.compressionEnabled || !versionNeedsGuard(t.timescaledbVersion)) return;
    if (Date.now() - this.targetReadMs < this.compressionRecheckMs) return;
    this.recheck ??= (async () => {
      let client: pg.PoolClient;
      try {
        client = await pool.connect();
      } catch (err) {
        throw this.classify(err);
      }
      try {
        this.noteTarget({ timescaledbVersion: t.timescaledbVersion, ...(await hypertableInfo(client, this.config.table)) });
      } finally {
        client.release();
      }
    })().finally(() => {
      this.recheck = undefined;
    });
    await this.recheck;
  }

  private classify(err: unknown): OutputError {
    return classifyPgError(err, () => {
      // The table went away (dropped by hand): create it again before the next write.
      this.ready = false;
    });
  }
}
