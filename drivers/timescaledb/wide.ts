// The wide layout of the `timescaledb` output: a table per measurement (table_template, schema), a
// text column per tag and a typed column per field, one row per point, a unique key on (tags…, time)
// and one INSERT ... SELECT FROM unnest(arrays) ... ON CONFLICT DO NOTHING per table and batch, so a
// replay adds nothing. Columns are added as tags and fields first appear (or those points rejected,
// new_columns: reject); a field whose type does not fit its column rejects those points, naming both.
import type pg from 'pg';
import { OutputError, type Output, type OutputBatch, type OutputContext, type WriteResult } from '../../src/core/component.js';
import type { TimescaledbOutputConfig } from './schema.js';
import { abortableQuery, classifyPgError, endPool, makePool } from './pool.js';
import { hypertableInfo, needsRowExactInsert, schemaStep, timescaledbVersion, versionNeedsGuard, type TargetInfo } from './target.js';
import { addColumns, createTable, quoteName, readColumns, type TableName } from './wide-ddl.js';
import { checkPlan, planBatch, wideInsertSql, wideRows, type TableColumns, type TablePlan } from './wide-rows.js';
import { MAX_STATEMENT_BYTES, timeBounds, type TimescaledbOutputOptions } from './narrow.js';

export const COMPRESSION_RECHECK_MS = 60_000;

interface KnownTable {
  columns: TableColumns;
  target: TargetInfo;
  readMs: number;
}

export class WideOutput implements Output {
  private pool: pg.Pool | undefined;
  private version: string | null | undefined;
  private readonly tables = new Map<string, KnownTable>();
  private readonly counts = { rows_inserted: 0, rows_already_present: 0, row_exact_statements: 0, columns_added: 0, tables_created: 0 };
  private readonly versionOf: (client: pg.ClientBase) => Promise<string | null>;
  private readonly maxConnections: number;
  private readonly compressionRecheckMs: number;

  constructor(
    private readonly config: TimescaledbOutputConfig,
    private readonly ctx: OutputContext,
    options: TimescaledbOutputOptions = {},
  ) {
    this.versionOf = options.catalog?.timescaledbVersion ?? timescaledbVersion;
    this.maxConnections = options.maxConnections ?? 5;
    this.compressionRecheckMs = options.compressionRecheckMs ?? COMPRESSION_RECHECK_MS;
  }

  /** The pool, for the layout check before connect (timescaledb.ts). */
  connection(): pg.Pool {
    this.pool ??= makePool(this.config, this.maxConnections, this.ctx);
    return this.pool;
  }

  async connect(): Promise<void> {
    const pool = this.connection();
    this.tables.clear();
    await this.withClient(pool, async (client) => {
      this.version = await this.versionOf(client);
    });
    if (this.config.compression && this.version === null) {
      throw new OutputError(
        'compression is configured but the database has no timescaledb extension (plain PostgreSQL cannot compress): install TimescaleDB (CREATE EXTENSION timescaledb) or remove `compression`',
        'fatal',
      );
    }
  }

  tableName(measurement: string): TableName {
    return { schema: this.config.schema, name: this.config.table_template.split('{measurement}').join(measurement) };
  }

  async write(batch: OutputBatch, signal?: AbortSignal): Promise<WriteResult> {
    const pool = this.pool;
    if (!pool || this.version === undefined) throw new OutputError('not connected', 'retry');
    if (signal?.aborted) throw new OutputError('write aborted', 'retry');
    const plans = planBatch(batch, (m) => this.tableName(m).name);
    const rejected = new Map<number, string>();
    const ready: [TablePlan, KnownTable][] = [];
    for (const plan of plans.values()) {
      const known = await this.prepare(pool, plan, rejected, signal);
      if (known) ready.push([plan, known]);
    }
    if (rejected.size > 0) {
      // Nothing is written: the engine counts these and sends the rest again (component.ts).
      const reasons = [...new Set(rejected.values())];
      throw new OutputError(`${rejected.size} points refused: ${reasons.slice(0, 3).join('; ')}${reasons.length > 3 ? ` (and ${reasons.length - 3} more reasons)` : ''}`, 'reject', {
        rejected: [...rejected.keys()].sort((a, b) => a - b),
        reason: rejectReason(reasons),
      });
    }
    let bytes = 0;
    for (const [plan, known] of ready) bytes += await this.insert(pool, plan, known, signal);
    return { rejectedPoints: 0, bytes };
  }

  async close(): Promise<void> {
    const pool = this.pool;
    this.pool = undefined;
    if (pool) await endPool(pool);
  }

  counters(): Record<string, number> {
    return { ...this.counts, hypertables: [...this.tables.values()].filter((t) => t.target.hypertable).length };
  }

  /** What the output knows of a table (after a write to it). */
  targetInfo(table: string): Readonly<TargetInfo> | undefined {
    return this.tables.get(table)?.target;
  }

  /** The table as it must be for the plan's points: created, columns added; the points it cannot take go to `rejected`. */
  private async prepare(pool: pg.Pool, plan: TablePlan, rejected: Map<number, string>, signal: AbortSignal | undefined): Promise<KnownTable | null> {
    let known = this.tables.get(plan.table);
    if (known !== undefined) {
      const check = checkPlan(plan, known.columns, this.config.new_columns === 'add');
      if (check.newTags.length > 0 || check.newFields.size > 0) known = undefined;
    }
    known ??= await this.evolve(pool, plan, signal);
    // Whatever still has no column (new_columns: reject), or does not fit its column, is refused.
    const check = checkPlan(plan, known.columns, false);
    for (const [i, why] of check.rejected) rejected.set(i, why);
    return check.rejected.size < countPoints(plan) ? known : null;
  }

  /**
   * Under the table's advisory lock (two gateways may start at once): reads the table, creates it from
   * the plan's points or adds their new columns (new_columns: add), and reads it again.
   */
  private async evolve(pool: pg.Pool, plan: TablePlan, signal: AbortSignal | undefined): Promise<KnownTable> {
    const t = this.tableName(plan.measurement);
    const add = this.config.new_columns === 'add';
    return this.withClient(
      pool,
      async (client) => {
      try {
        await schemaStep(client, 'BEGIN');
        await schemaStep(client, 'SELECT pg_advisory_xact_lock(hashtext($1))', [`sluice:${quoteName(t)}`]);
        let have = await readColumns(client, t);
        if (have === null) {
          // A new table takes the columns of its first points, whatever new_columns says.
          const check = checkPlan(plan, { columns: new Map(), tags: new Set() }, true);
          await createTable(client, t, { tags: check.newTags, fields: check.newFields, hypertable: this.version !== null, compression: this.config.compression });
          this.counts.tables_created++;
          this.ctx.log.info({ table: quoteName(t), tags: check.newTags, fields: Object.fromEntries(check.newFields), hypertable: this.version !== null }, 'created a wide table');
          have = await readColumns(client, t);
        } else if (add) {
          const check = checkPlan(plan, have, true);
          if (check.newTags.length > 0 || check.newFields.size > 0) {
            await addColumns(client, t, have, check.newTags, check.newFields);
            this.counts.columns_added += check.newTags.length + check.newFields.size;
            this.ctx.log.info({ table: quoteName(t), tags: check.newTags, fields: Object.fromEntries(check.newFields) }, 'added columns');
            have = await readColumns(client, t);
          }
        }
        let target: TargetInfo = { timescaledbVersion: this.version ?? null, hypertable: false, compressionEnabled: false };
        if (this.version) target = { timescaledbVersion: this.version, ...(await hypertableInfo(client, t)) };
        await schemaStep(client, 'COMMIT');
        if (have === null) throw new OutputError(`table ${quoteName(t)} is missing right after CREATE TABLE`, 'retry');
        const known: KnownTable = { columns: have, target, readMs: Date.now() };
        this.noteTarget(plan.table, known);
        return known;
      } catch (err) {
        await client.query('ROLLBACK').catch(() => undefined);
        throw err;
      }
      },
      signal,
    );
  }

  private noteTarget(table: string, known: KnownTable): void {
    const before = this.tables.get(table);
    this.tables.set(table, known);
    if (needsRowExactInsert(known.target) && !(before && needsRowExactInsert(before.target))) {
      this.ctx.log.warn(
        { table, timescaledb: known.target.timescaledbVersion },
        'hypertable with compression enabled on a TimescaleDB release whose ON CONFLICT DO NOTHING can lose rows (timescale/timescaledb#7672, fixed in 2.18.1): inserting only rows not already there',
      );
    }
  }

  private async insert(pool: pg.Pool, plan: TablePlan, known: KnownTable, signal: AbortSignal | undefined): Promise<number> {
    const rows = wideRows(plan, known.columns, new Map());
    if (rows.rows === 0) return 0;
    if (rows.bytes > MAX_STATEMENT_BYTES && rows.rows > 1) throw new OutputError(`statement of ${rows.bytes} bytes is above ${MAX_STATEMENT_BYTES}`, 'split');
    await this.recheckCompression(pool, plan, known);
    const rowExact = needsRowExactInsert(known.target);
    const t = quoteName(this.tableName(plan.measurement));
    const res = await abortableQuery(
      pool,
      { text: wideInsertSql(t, rows, rowExact), values: rowExact ? [...rows.params, ...timeBounds(rows.minTimeUs, rows.maxTimeUs)] : rows.params },
      signal,
      (err) => this.classify(err, plan.table),
    );
    const inserted = res.rowCount ?? 0;
    this.counts.rows_inserted += inserted;
    this.counts.rows_already_present += rows.rows - inserted;
    if (rowExact) this.counts.row_exact_statements++;
    return rows.bytes;
  }

  /** On a release that needs the guard, looks at compression again now and then: it may be enabled at any time. */
  private async recheckCompression(pool: pg.Pool, plan: TablePlan, known: KnownTable): Promise<void> {
    const t = known.target;
    if (!t.hypertable || t.compressionEnabled || !versionNeedsGuard(t.timescaledbVersion)) return;
    if (Date.now() - known.readMs < this.compressionRecheckMs) return;
    await this.withClient(pool, async (client) => {
      const info = await hypertableInfo(client, this.tableName(plan.measurement));
      this.noteTarget(plan.table, { ...known, target: { timescaledbVersion: t.timescaledbVersion, ...info }, readMs: Date.now() });
    });
  }

  /**
   * Runs `fn` on a pooled connection. When `signal` aborts (the engine gives up on the write, or stops),
   * the connection is dropped: a statement waiting on a lock, such as another gateway's table creation,
   * cannot hold the write past its timeout, and the server rolls the transaction back.
   */
  private async withClient<R>(pool: pg.Pool, fn: (client: pg.PoolClient) => Promise<R>, signal?: AbortSignal): Promise<R> {
    if (signal?.aborted) throw new OutputError('write aborted', 'retry');
    let client: pg.PoolClient;
    try {
      client = await pool.connect();
    } catch (err) {
      throw this.classify(err, null);
    }
    let dropped = false;
    let onAbort = (): void => undefined;
    const aborted = new Promise<never>((_, reject) => {
      onAbort = () => {
        dropped = true;
        client.release(new Error('write aborted'));
        reject(new OutputError('write aborted', 'retry'));
      };
    });
    aborted.catch(() => undefined);
    signal?.addEventListener('abort', onAbort, { once: true });
    try {
      return await Promise.race([fn(client), aborted]);
    } catch (err) {
      if (dropped) throw new OutputError('write aborted', 'retry', {}, { cause: err });
      throw this.classify(err, null);
    } finally {
      signal?.removeEventListener('abort', onAbort);
      if (!dropped) client.release();
    }
  }

  private classify(err: unknown, table: string | null): OutputError {
    if ((err as { code?: string }).code === '42703') {
      // A column dropped by hand since the catalog was read: read it again (and add the column) next time.
      if (table !== null) this.tables.delete(table);
      return new OutputError(`a column went missing (${(err as Error).message}); reading the table again`, 'retry', { status: '42703' }, { cause: err });
    }
    return classifyPgError(err, () => {
      // A table dropped by hand, or a column: read the catalog again (and create) before the next write.
      if (table !== null) this.tables.delete(table);
      else this.tables.clear();
    });
  }
}

function countPoints(plan: TablePlan): number {
  let n = 0;
  for (const p of plan.parts) n += p.timesUs.length;
  return n;
}

/** The quarantine's name for why points did not fit the table (the first reason decides). */
function rejectReason(reasons: readonly string[]): string {
  const why = reasons[0] ?? '';
  if (/ but column .* is /.test(why)) return 'field_type_conflict';
  if (/new_columns: reject/.test(why)) return 'unknown_column';
  return 'schema_mismatch';
}
