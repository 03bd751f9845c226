// What the output learns about its table before writing, and how it runs its schema statements.
//
// Schema statements (CREATE TABLE, create_hypertable, CREATE UNIQUE INDEX, the catalog reads) are not
// writes: when the database refuses one for good, retrying cannot help, so the output pauses as a
// configuration error naming the statement and its SQLSTATE. TimescaleDB refuses CREATE UNIQUE INDEX on
// a hypertable with compression enabled (0A000) even when the index is there, so the key is looked up
// in pg_catalog first and only created when it is missing.
import type pg from 'pg';
import { OutputError } from '../../src/core/component.js';

/** The columns of the unique key a replay collides with. */
export const KEY_COLUMNS = ['measurement', 'field', 'tags', 'time'] as const;

export interface TargetInfo {
  /** extversion of the timescaledb extension in the table's database, or null without it. */
  timescaledbVersion: string | null;
  hypertable: boolean;
  compressionEnabled: boolean;
}

/**
 * The first TimescaleDB release whose INSERT … ON CONFLICT DO NOTHING keeps going after a row that
 * conflicts with a compressed row. From 2.16.0 to 2.18.0 such a row ends the statement: the rows after
 * it are neither inserted nor reported (timescale/timescaledb#7672, fixed by #7673 in 2.18.1).
 */
export const ON_CONFLICT_FIXED_IN: readonly [number, number, number] = [2, 18, 1];

/** major.minor.patch of an extversion ("2.17.2", "2.18.0-dev"), or null when it has another shape. */
export function parseVersion(version: string): [number, number, number] | null {
  const m = /^(\d+)\.(\d+)(?:\.(\d+))?/.exec(version.trim());
  return m ? [Number(m[1]), Number(m[2]), Number(m[3] ?? 0)] : null;
}

function olderThan(v: readonly number[], than: readonly number[]): boolean {
  for (let i = 0; i < than.length; i++) if (v[i] !== than[i]) return v[i] < than[i];
  return false;
}

/**
 * Whether replays must be inserted row-exact: only the rows not already there, found with an anti-join
 * on the unique key, so no row of the statement meets ON CONFLICT against a compressed row. Versions
 * before 2.16 lack the bug but had others around unique checks in compressed chunks; the anti-join is
 * correct on every version, so every release before the fix gets it. An extversion of an unknown shape
 * gets it too: the safe statement costs time, the other one rows.
 */
export function needsRowExactInsert(target: TargetInfo): boolean {
  if (target.timescaledbVersion === null || !target.hypertable || !target.compressionEnabled) return false;
  const v = parseVersion(target.timescaledbVersion);
  return v === null || olderThan(v, ON_CONFLICT_FIXED_IN);
}

/** Whether the version is one where enabling compression later would need the guard (so it is re-checked). */
export function versionNeedsGuard(version: string | null): boolean {
  return needsRowExactInsert({ timescaledbVersion: version, hypertable: true, compressionEnabled: true });
}

/** A statement as one line for logs and errors. */
export function statementText(sql: string, maxChars = 240): string {
  const line = sql.replace(/\s+/g, ' ').trim();
  return line.length > maxChars ? line.slice(0, maxChars - 1) + '…' : line;
}

const SQLSTATE = /^[0-9A-Z]{5}$/;

/**
 * A failed schema statement as an engine category. A lost connection, a lock or statement timeout, a
 * serialization failure or an overloaded server pass; anything else the database said about the
 * statement itself holds until someone changes the database, so it pauses the output.
 */
export function schemaError(err: unknown, sql: string): OutputError {
  if (err instanceof OutputError) return err;
  const e = err as Error & { code?: string };
  const code = e.code ?? '';
  const statement = statementText(sql);
  if (!SQLSTATE.test(code)) {
    const unreached = /^(ECONNREFUSED|ENOTFOUND|EAI_AGAIN|EHOSTUNREACH|ENETUNREACH)$/.test(code);
    return new OutputError(`schema statement interrupted (${code ? code + ': ' : ''}${e.message}); trying again: ${statement}`, 'retry', { unreached, status: code || undefined }, { cause: err });
  }
  const said = `SQLSTATE ${code}: ${e.message}`;
  if (code.startsWith('08') || code.startsWith('53') || ['40001', '40P01', '55P03', '57014', '57P01', '57P02', '57P03'].includes(code)) {
    return new OutputError(`schema statement interrupted (${said}); trying again: ${statement}`, code.startsWith('53') ? 'throttle' : 'retry', { status: code }, { cause: err });
  }
  if (code.startsWith('28') || code === '42501') {
    return new OutputError(`the database refuses our privileges for a schema statement (${said}): ${statement}`, 'auth', { status: code }, { cause: err });
  }
  const hint =
    code === '0A000'
      ? '; TimescaleDB refuses a unique index on a hypertable with compression enabled: create the index sluice needs before enabling compression (drivers/timescaledb/README.md)'
      : '';
  return new OutputError(`the database refuses a schema statement (${said}): ${statement}${hint}`, 'fatal', { status: code }, { cause: err });
}

/** Runs a schema statement; a failure comes back classed by schemaError. */
export async function schemaStep<R extends pg.QueryResultRow = Record<string, unknown>>(client: pg.ClientBase, sql: string, values?: unknown[]): Promise<pg.QueryResult<R>> {
  try {
    return await client.query<R>(sql, values);
  } catch (err) {
    throw schemaError(err, sql);
  }
}

export const EXTENSION_VERSION_SQL = "SELECT extversion FROM pg_catalog.pg_extension WHERE extname = 'timescaledb'";

export async function timescaledbVersion(client: pg.ClientBase): Promise<string | null> {
  const res = await schemaStep<{ extversion: string }>(client, EXTENSION_VERSION_SQL);
  return res.rows[0]?.extversion ?? null;
}

// timescaledb_information.hypertables has these columns from TimescaleDB 2.0 on.
export const HYPERTABLE_SQL = `SELECT compression_enabled FROM timescaledb_information.hypertables
WHERE hypertable_schema = coalesce($1, current_schema()) AND hypertable_name = $2`;

/** Whether the table is a hypertable and has compression enabled (TimescaleDB only). */
export async function hypertableInfo(client: pg.ClientBase, table: string | { schema: string | undefined; name: string }): Promise<{ hypertable: boolean; compressionEnabled: boolean }> {
  const [schema, name] = typeof table !== 'string' ? [table.schema ?? null, table.name] : table.includes('.') ? table.split('.') : [null, table];
  let res: pg.QueryResult<{ compression_enabled: boolean }>;
  try {
    res = await client.query<{ compression_enabled: boolean }>(HYPERTABLE_SQL, [schema, name]);
  } catch (err) {
    const e = schemaError(err, HYPERTABLE_SQL);
    if (e.category !== 'fatal') throw e;
    throw new OutputError(`${e.message}; sluice reads it to know whether compression is enabled and needs TimescaleDB 2.0 or later`, 'fatal', e.details, { cause: err });
  }
  const row = res.rows[0];
  return { hypertable: row !== undefined, compressionEnabled: row?.compression_enabled === true };
}

// Every index of the table, and whether it is a unique key on exactly the given columns: valid, not
// partial, no expressions (INCLUDE columns do not count as key columns).
const INDEXES_SQL = `SELECT c.relname AS name,
  i.indisunique AND i.indisvalid AND i.indpred IS NULL AND i.indexprs IS NULL AND i.indnkeyatts = cardinality($2::text[])
  AND (SELECT array_agg(a.attname::text ORDER BY a.attname::text COLLATE "C")
       FROM unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, n)
       JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
       WHERE k.n <= i.indnkeyatts) = $2::text[] AS is_key
FROM pg_catalog.pg_index i JOIN pg_catalog.pg_class c ON c.oid = i.indexrelid
WHERE i.indrelid = $1::regclass`;

export interface KeyIndex {
  /** Name of a unique index on the key columns, or null. */
  key: string | null;
  /** Names of the table's other indexes. */
  others: string[];
}

export async function keyIndex(client: pg.ClientBase, quotedTable: string, columns: readonly string[] = KEY_COLUMNS): Promise<KeyIndex> {
  const sorted = [...columns].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  const res = await schemaStep<{ name: string; is_key: boolean | null }>(client, INDEXES_SQL, [quotedTable, sorted]);
  const key = res.rows.find((r) => r.is_key === true)?.name ?? null;
  return { key, others: res.rows.filter((r) => r.is_key !== true).map((r) => r.name) };
}
