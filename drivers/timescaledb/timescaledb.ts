// The `timescaledb` output: the wide layout (wide.ts, a table per measurement) or the narrow one
// (narrow.ts, one row per value). `layout` picks one; unset, an existing table of the narrow shape
// (`table`, default sensor_data) keeps the narrow layout, said so in the log, and anything else gets
// the wide one. The choice is made once, on the first connect, from the catalog.
import type { Output, OutputBatch, OutputContext, WriteResult } from '../../src/core/component.js';
import { NarrowOutput, type TimescaledbOutputOptions } from './narrow.js';
import type { TimescaledbOutputConfig } from './schema.js';
import type { TargetInfo } from './target.js';
import { WideOutput } from './wide.js';

export { COLUMNS, createTableSql, insertSql, keyIndexName, MAX_STATEMENT_BYTES, quoteTable, rowExactInsertSql, timeBounds, type CatalogReads, type TimescaledbOutputOptions } from './narrow.js';

export const DEFAULT_NARROW_TABLE = 'sensor_data';

/** The columns that make a table narrow (time, measurement, tags, field and the value columns). */
const NARROW_MARKERS = ['measurement', 'tags', 'field', 'value'];

export class TimescaledbOutput implements Output {
  private impl: NarrowOutput | WideOutput | undefined;

  constructor(
    private readonly config: TimescaledbOutputConfig,
    private readonly ctx: OutputContext,
    private readonly options: TimescaledbOutputOptions = {},
  ) {}

  /** The layout in use, once connected. */
  layout(): 'wide' | 'narrow' | undefined {
    return this.impl === undefined ? undefined : this.impl instanceof WideOutput ? 'wide' : 'narrow';
  }

  async connect(): Promise<void> {
    this.impl ??= await this.choose();
    await this.impl.connect();
  }

  encode(batch: OutputBatch): unknown {
    return this.impl instanceof NarrowOutput ? this.impl.encode(batch) : undefined;
  }

  async write(batch: OutputBatch, signal?: AbortSignal, encoded?: unknown): Promise<WriteResult> {
    if (this.impl === undefined) await this.connect();
    return this.impl!.write(batch, signal, encoded);
  }

  async close(): Promise<void> {
    await this.impl?.close();
  }

  counters(): Record<string, number> {
    return this.impl?.counters() ?? {};
  }

  /** Narrow: what the output knows of its table. Wide: of `table` (a measurement's table name). */
  targetInfo(table?: string): Readonly<TargetInfo> | undefined {
    if (this.impl instanceof NarrowOutput) return this.impl.targetInfo();
    return table === undefined ? undefined : this.impl?.targetInfo(table);
  }

  private async choose(): Promise<NarrowOutput | WideOutput> {
    const table = this.config.table ?? DEFAULT_NARROW_TABLE;
    const narrow = () => new NarrowOutput({ ...this.config, table }, this.ctx, this.options);
    if (this.config.layout === 'narrow') return narrow();
    const wide = new WideOutput(this.config, this.ctx, this.options);
    if (this.config.layout === 'wide') return wide;
    const [schema, bare] = table.includes('.') ? table.split('.') : [null, table];
    let columns: string[];
    try {
      const res = await wide.connection().query<{ column_name: string }>(
        'SELECT column_name FROM information_schema.columns WHERE table_schema = coalesce($1, current_schema()) AND table_name = $2',
        [schema, bare],
      );
      columns = res.rows.map((r) => r.column_name);
    } catch (err) {
      await wide.close();
      // Not reached, or refused: the engine retries connect (or pauses), and the layout is chosen then.
      const { classifyPgError } = await import('./pool.js');
      throw classifyPgError(err, () => undefined);
    }
    if (NARROW_MARKERS.every((c) => columns.includes(c))) {
      await wide.close();
      this.ctx.log.info({ table }, `table ${table} has the narrow shape (one row per value): keeping the narrow layout; set layout: wide for a table per measurement`);
      if (this.config.compression) this.ctx.log.warn({ table }, 'compression applies to the wide layout only: not set on the narrow table');
      return narrow();
    }
    this.ctx.log.info({ table_template: this.config.table_template }, 'wide layout: a table per measurement, a column per tag and per field');
    return wide;
  }
}
