// The schema statements of the wide layout: a table per measurement (a hypertable when TimescaleDB is
// there, with compression when configured), columns added as tags and fields first appear, and the
// unique key on (tag columns…, time) kept equal to the tag columns.
//
// Tag columns are `text NOT NULL DEFAULT ''`: a point without a tag stores '' (line protocol has no
// empty tag values, so '' means "absent"), which keeps the key free of NULLs (NULLs never collide, so a
// replay would add rows again), and a tag column added later gives the rows already there '' — their
// key stays unique, and they keep their identity for a replay. A new tag column rebuilds the key (drop
// and create in the schema transaction). The tag columns are read back from the catalog as the text
// NOT NULL columns other than time.
import type pg from 'pg';
import { OutputError } from '../../src/core/component.js';
import { keyIndex, schemaStep, statementText } from './target.js';
import { quoteIdent, type TableColumns } from './wide-rows.js';

export interface TableName {
  schema: string | undefined;
  name: string;
}

export function quoteName(t: TableName): string {
  return (t.schema !== undefined ? quoteIdent(t.schema) + '.' : '') + quoteIdent(t.name);
}

const COLUMNS_SQL = `SELECT column_name, data_type, is_nullable FROM information_schema.columns
WHERE table_schema = coalesce($1, current_schema()) AND table_name = $2`;

/** The table's columns, or null when it does not exist. */
export async function readColumns(client: pg.ClientBase, t: TableName): Promise<TableColumns | null> {
  const res = await schemaStep<{ column_name: string; data_type: string; is_nullable: string }>(client, COLUMNS_SQL, [t.schema ?? null, t.name]);
  if (res.rows.length === 0) return null;
  const columns = new Map<string, string>();
  const tags = new Set<string>();
  for (const r of res.rows) {
    if (r.column_name === 'time') continue;
    columns.set(r.column_name, r.data_type);
    if (r.data_type === 'text' && r.is_nullable === 'NO') tags.add(r.column_name);
  }
  if (!res.rows.some((r) => r.column_name === 'time' && r.data_type === 'timestamp with time zone')) {
    throw new OutputError(`table ${t.name} exists without a "time timestamptz" column: it is not a wide sluice table; use another table_template or schema`, 'fatal');
  }
  return { columns, tags };
}

function keyName(t: TableName): string {
  // PostgreSQL cuts names at 63 bytes: the suffix stays, the table part is shortened.
  let base = t.name;
  while (Buffer.byteLength(base + '_sluice_key') > 63) base = base.slice(0, -1);
  return base + '_sluice_key';
}

/** Makes the unique key exactly (tags…, time): creates it, or replaces a key over fewer tags. */
export async function ensureKey(client: pg.ClientBase, t: TableName, tags: readonly string[], previousTags: readonly string[] | null): Promise<void> {
  const table = quoteName(t);
  const want = [...tags, 'time'];
  if ((await keyIndex(client, table, want)).key !== null) return;
  if (previousTags !== null) {
    const old = (await keyIndex(client, table, [...previousTags, 'time'])).key;
    if (old !== null) await schemaStep(client, `DROP INDEX ${t.schema !== undefined ? quoteIdent(t.schema) + '.' : ''}${quoteIdent(old)}`);
  }
  const sql = `CREATE UNIQUE INDEX IF NOT EXISTS ${quoteIdent(keyName(t))} ON ${table} (${want.map(quoteIdent).join(', ')})`;
  await schemaStep(client, sql);
  if ((await keyIndex(client, table, want)).key === null) {
    throw new OutputError(
      `table ${t.name} has no unique index on (${want.join(', ')}) and \`${statementText(sql)}\` did not create one: a relation named ${keyName(t)} already exists; rename it, or create the unique index yourself`,
      'fatal',
    );
  }
}

export interface CreateOptions {
  tags: readonly string[];
  fields: ReadonlyMap<string, string>;
  hypertable: boolean;
  compression: { segment_by: readonly string[]; after: number } | undefined;
}

/** Creates a table for its first points; the caller holds the table's advisory lock in a transaction. */
export async function createTable(client: pg.ClientBase, t: TableName, o: CreateOptions): Promise<void> {
  const table = quoteName(t);
  const tags = [...new Set([...o.tags, ...(o.compression?.segment_by ?? [])])].sort();
  const cols = [
    '"time" timestamptz NOT NULL',
    ...tags.map((k) => `${quoteIdent(k)} text NOT NULL DEFAULT ''`),
    ...[...o.fields].map(([f, type]) => `${quoteIdent(f)} ${type}`),
  ];
  await schemaStep(client, `CREATE TABLE IF NOT EXISTS ${table} (\n  ${cols.join(',\n  ')}\n)`);
  if (o.hypertable) await schemaStep(client, "SELECT create_hypertable($1::regclass, 'time', if_not_exists => TRUE, migrate_data => TRUE)", [table]);
  await ensureKey(client, t, tags, null);
  if (o.hypertable && o.compression) {
    // After the key: TimescaleDB refuses a unique index on a hypertable with compression enabled.
    const segmentBy = o.compression.segment_by.map(quoteIdent).join(', ');
    await schemaStep(client, `ALTER TABLE ${table} SET (timescaledb.compress, timescaledb.compress_orderby = '"time" DESC'${segmentBy ? `, timescaledb.compress_segmentby = '${segmentBy.replace(/'/g, "''")}'` : ''})`);
    await schemaStep(client, 'SELECT add_compression_policy($1::regclass, $2::interval, if_not_exists => TRUE)', [table, `${o.compression.after} milliseconds`]);
  }
}

/** Adds columns (IF NOT EXISTS: another gateway may have added them) and extends the key for new tags. */
export async function addColumns(client: pg.ClientBase, t: TableName, have: TableColumns, newTags: readonly string[], newFields: ReadonlyMap<string, string>): Promise<void> {
  const table = quoteName(t);
  const adds = [...newTags.map((k) => `ADD COLUMN IF NOT EXISTS ${quoteIdent(k)} text NOT NULL DEFAULT ''`), ...[...newFields].map(([f, type]) => `ADD COLUMN IF NOT EXISTS ${quoteIdent(f)} ${type}`)];
  if (adds.length === 0) return;
  await schemaStep(client, `ALTER TABLE ${table} ${adds.join(', ')}`);
  if (newTags.length > 0) {
    const after = await readColumns(client, t);
    await ensureKey(client, t, [...(after?.tags ?? [])].sort(), [...have.tags].sort());
  }
}
