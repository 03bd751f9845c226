// The rollup tiers over the chunk table: raw writes mark the windows they touch dirty (rollup_dirty),
// a pass recomputes closed dirty windows into chunks of the window's tier, and eviction rolls a
// chunk's windows up before the chunk goes. Every tier is computed from raw data while it exists (so
// a query answers the same from rollups as from raw); below a series' rolled-up mark, where raw data
// has been replaced, a tier builds on the tier below, and late points merge into the stored states.
import type { RowGroup } from '../core/chunk.js';
import { mergeState } from '../core/aggregate.js';
import { groupValueCount } from './builder.js';
import { decodeChunk, encodeChunk } from './codec/index.js';
import { clipGroup, type ChunkReader } from './reader.js';
import { aggregateRaw, aggregateRollup, statesToGroup, type WindowStates } from './rollup.js';
import { SupersededWindows } from './supersede.js';
import { LEVEL_OPEN, LEVEL_SEALED, type ChunkTable } from './table.js';

export class Rollups {
  private readonly superseded: SupersededWindows | undefined;
  private readonly tiers: readonly number[];

  constructor(
    private readonly table: ChunkTable,
    private readonly reader: ChunkReader,
  ) {
    this.tiers = table.settings.rollupWindowsMs;
    const maxRows = table.settings.maxChunkRows;
    this.superseded = table.readonly ? undefined : new SupersededWindows(table.db, (rows) => (rows >= maxRows ? LEVEL_SEALED : LEVEL_OPEN));
  }

  /** Whether any rollup window is configured. */
  get enabled(): boolean {
    return this.tiers.length > 0;
  }

  /**
   * A window added to `aggregate.windows` since the last open has no rollups of the data already
   * stored: mark all of it dirty for the new tiers, once. `explicit`: the caller named the windows
   * (else the store's recorded ones are kept).
   */
  markNewTiers(explicit: boolean): void {
    if (explicit === false) return;
    const table = this.table;
    const known = table.sql("SELECT value FROM meta WHERE key = 'rollup_windows_ms'").pluck().get() as string | undefined;
    const before = new Set(known === undefined ? [] : (JSON.parse(known) as number[]));
    const added = this.tiers.filter((w) => !before.has(w));
    table.transaction(() => {
      if (added.length > 0 && known !== undefined) {
        // Ids first: better-sqlite3 cannot write while a statement is still iterating.
        const ids = table.sql('SELECT id FROM chunks WHERE tier = 0').pluck().all() as number[];
        const chunkOf = table.sql('SELECT series_id, data FROM chunks WHERE id = ?');
        for (const id of ids) {
          const c = chunkOf.get(id) as { series_id: number; data: Uint8Array };
          const times = decodeChunk(c.data, new Set()).timesUs;
          for (const w of added) this.markRange(w, c.series_id, times[0], times[times.length - 1]);
        }
      }
      table.sql("INSERT OR REPLACE INTO meta(key, value) VALUES ('rollup_windows_ms', ?)").run(JSON.stringify(this.tiers));
    });
  }

  /**
   * Records the windows of every tier that these raw points fall in as needing (re)computation: one
   * range per chunk and tier (a window in the range without data simply yields nothing).
   */
  markDirty(seriesId: number, group: RowGroup): void {
    if (this.tiers.length === 0) return;
    const timesUs = group.timesUs;
    const first = timesUs[0];
    const last = timesUs[timesUs.length - 1];
    const rolledUntil = this.rolledUpUntil(seriesId);
    if (first < rolledUntil) this.mergeLate(seriesId, group, rolledUntil);
    for (const [ti, windowMs] of this.tiers.entries()) {
      const from = ti === 0 ? Math.max(first, rolledUntil) : first;
      if (from <= last) this.markRange(windowMs, seriesId, from, last);
    }
  }

  private markRange(windowMs: number, seriesId: number, firstUs: number, lastUs: number): void {
    const windowUs = windowMs * 1000;
    this.table.stmt.markDirty!.run(windowMs, seriesId, Math.floor(firstUs / windowUs) * windowUs, Math.floor(lastUs / windowUs) * windowUs);
  }

  /**
   * Computes the rollup windows marked dirty by writes: every tier straight from raw data (so a
   * query answers the same from rollups as from raw), or from the tier below for windows whose raw
   * data has already been replaced by rollups. Windows still open (ending after `nowUs`) wait, unless
   * `untilUs` asks for everything starting at or before it (eviction does, before deleting raw data).
   * Returns the number of windows written.
   */
  rollUp(opts: { nowUs?: number; untilUs?: number; seriesId?: number; maxSeries?: number; budgetMs?: number } = {}): number {
    const tiers = this.tiers;
    const table = this.table;
    if (table.readonly || tiers.length === 0) return 0;
    const now = opts.nowUs ?? Date.now() * 1000;
    const maxChunkRows = table.settings.maxChunkRows;
    let written = 0;
    // Between series, not inside one: a series' dirty ranges are taken out and recomputed together.
    const deadline = performance.now() + (opts.budgetMs ?? Infinity);
    const run = () => {
      for (let ti = 0; ti < tiers.length; ti++) {
        const tier = tiers[ti];
        const windowUs = tier * 1000;
        const lastStart = Math.floor((opts.untilUs ?? now - windowUs) / windowUs) * windowUs;
        const seriesIds =
          opts.seriesId === undefined
            ? (table.sql('SELECT DISTINCT series_id FROM rollup_dirty WHERE tier = ? AND from_us <= ? LIMIT ?').pluck().all(tier, lastStart, opts.maxSeries ?? -1) as number[])
            : [opts.seriesId];
        for (const seriesId of seriesIds) {
          if (performance.now() > deadline) return;
          const ranges = this.reader.dirtyRanges(seriesId, tier, -Number.MAX_SAFE_INTEGER, lastStart + 1);
          if (ranges.length === 0) continue;
          // Take the ranges out; what lies beyond lastStart (windows still open) goes back in.
          const rows = table.sql('SELECT from_us AS a, to_us AS b FROM rollup_dirty WHERE tier = ? AND series_id = ? AND from_us <= ?').all(tier, seriesId, lastStart) as { a: number; b: number }[];
          table.sql('DELETE FROM rollup_dirty WHERE tier = ? AND series_id = ? AND from_us <= ?').run(tier, seriesId, lastStart);
          for (const r of rows) if (r.b > lastStart) table.stmt.markDirty!.run(tier, seriesId, lastStart + windowUs, r.b);
          const rolledUntil = this.rolledUpUntil(seriesId);
          for (const [first, last] of ranges) {
            // Batches of windows bound the memory a long import's rollups take.
            for (let lo = first; lo <= last; lo += maxChunkRows * windowUs) {
              const hi = Math.min(last, lo + (maxChunkRows - 1) * windowUs);
              written += this.rollUpWindows(seriesId, ti, lo, hi, rolledUntil);
            }
          }
        }
      }
    };
    table.transaction(run);
    return written;
  }

  /**
   * Before chunks up to `untilUs` go: every window they touch is rolled up in the tiers above them;
   * `rawGoes`: raw data up to there is replaced by the rollups from now on.
   */
  rollUpBefore(seriesId: number, untilUs: number, rawGoes: boolean): void {
    this.rollUp({ seriesId, untilUs });
    if (!rawGoes) return;
    const windowUs = this.tiers[0] * 1000;
    const until = (Math.floor(untilUs / windowUs) + 1) * windowUs;
    this.table.sql('UPDATE series SET rolled_up_until_us = max(coalesce(rolled_up_until_us, ?), ?) WHERE id = ?').run(until, until, seriesId);
  }

  /**
   * Recomputes the windows of tier `ti` starting in [firstUs, lastUs] of one series: the finest tier
   * from raw data (late points into rolled-up windows were merged when written), coarser tiers from
   * raw too (so a query answers the same from rollups as from raw) except below the rolled-up mark,
   * where they build on the tier below.
   */
  private rollUpWindows(seriesId: number, ti: number, firstUs: number, lastUs: number, rolledUntil: number): number {
    const tiers = this.tiers;
    const tier = tiers[ti];
    const windowUs = tier * 1000;
    const states: WindowStates = new Map();
    const split = ti === 0 ? firstUs : Math.min(Math.max(firstUs, Math.floor(rolledUntil / windowUs) * windowUs + (rolledUntil % windowUs === 0 ? 0 : windowUs)), lastUs + windowUs);
    if (split > firstUs) {
      for (const g of this.reader.seriesGroups(seriesId, tiers[ti - 1], firstUs, split)) aggregateRollup(g, windowUs, states);
    }
    if (split <= lastUs) {
      for (const g of this.reader.seriesGroups(seriesId, 0, split, lastUs + windowUs)) aggregateRaw(g, windowUs, states);
    }
    if (states.size === 0) return 0;
    const group = statesToGroup(states);
    this.superseded!.removeFrom(seriesId, tier, group);
    this.table.stmt.insertChunk!.run(seriesId, group.timesUs[0], group.timesUs[group.timesUs.length - 1], group.timesUs.length, groupValueCount(group), 0, encodeChunk(group), tier);
    return group.timesUs.length;
  }

  /**
   * Raw data of a series before this time (a window boundary of the finest tier) has been replaced by
   * rollups: windows before it are complete in the rollups and only ever gain late points.
   */
  private rolledUpUntil(seriesId: number): number {
    const v = this.table.sql('SELECT rolled_up_until_us FROM series WHERE id = ?').pluck().get(seriesId) as number | null | undefined;
    return v ?? -Infinity;
  }

  /** Late points for windows whose raw data is gone: merged into the stored window states at once. */
  private mergeLate(seriesId: number, group: RowGroup, rolledUntil: number): void {
    const tier = this.tiers[0];
    const windowUs = tier * 1000;
    const late = clipGroup(group, -Number.MAX_SAFE_INTEGER, rolledUntil);
    const states: WindowStates = new Map();
    aggregateRaw(late, windowUs, states);
    const starts = new Set(states.keys());
    const existing: WindowStates = new Map();
    for (const g of this.reader.seriesGroups(seriesId, tier, Math.min(...starts), Math.max(...starts) + windowUs)) aggregateRollup(g, windowUs, existing, starts);
    for (const [start, fields] of states) {
      for (const [field, state] of existing.get(start) ?? []) {
        const mine = fields.get(field);
        if (mine) mergeState(mine, state);
        else fields.set(field, state);
      }
    }
    const merged = statesToGroup(states);
    this.superseded!.removeFrom(seriesId, tier, merged);
    this.table.stmt.insertChunk!.run(seriesId, merged.timesUs[0], merged.timesUs[merged.timesUs.length - 1], merged.timesUs.length, groupValueCount(merged), 0, encodeChunk(merged), tier);
  }
}
