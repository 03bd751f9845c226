// What the store says about itself (`sluice status`, /api/status, /metrics): totals per tier from the
// running totals the triggers keep (open.ts), drops by reason, each output's cursor, bytes against
// the cap, and the runway until the cap at the recent ingest rate.
import type { Cursors } from './cursors.js';
import type { Quarantine } from './quarantine.js';
import type { OutputStatus, StoreStatus, TierStatus } from './roles.js';
import type { Space } from './space.js';
import { fileSize, type ChunkTable } from './table.js';

/** Chunks looked at for a tier's oldest time: the earliest-ending ones (what eviction removes first). */
const OLDEST_PROBE_CHUNKS = 64;
/** The ingest rate behind the runway: the last 10 minutes. */
const RUNWAY_WINDOW_S = 600;

type TierTotals = { tier: number; chunks: number; rows: number; vals: number; oldest: number | null; newest: number | null };

export class StatusReport {
  constructor(
    private readonly table: ChunkTable,
    private readonly cursors: Cursors,
    private readonly space: Space,
    private readonly quarantine: Quarantine,
    /** Whether tier_totals is kept by this store's triggers (else a read-only look at an older store counts). */
    private readonly totalsKept: boolean,
  ) {}

  status(): StoreStatus {
    const table = this.table;
    const tiers = this.tierTotals();
    const raw = tiers.find((t) => t.tier === 0);
    const totals = { chunks: raw?.chunks ?? 0, points: raw?.rows ?? 0, vals: raw?.vals ?? 0, oldest: raw?.oldest ?? null, newest: raw?.newest ?? null };
    const series = table.sql('SELECT count(*) FROM series').pluck().get() as number;
    const dropped: Record<string, number> = {};
    const droppedValues: Record<string, number> = {};
    for (const d of table.sql('SELECT reason, points, vals FROM drops ORDER BY reason').all() as { reason: string; points: number; vals: number }[]) {
      dropped[d.reason] = d.points;
      droppedValues[d.reason] = d.vals;
    }
    const outputs: Record<string, OutputStatus> = {};
    for (const output of this.cursors.outputs()) outputs[output] = this.cursors.outputStatus(output);
    return {
      points: totals.points,
      values: totals.vals,
      series,
      chunks: totals.chunks,
      store_bytes: this.storeBytes(),
      capacity_bytes: table.settings.maxBytes,
      used_bytes: this.space.usedBytes(),
      oldest_ms: totals.oldest === null ? null : Math.floor(totals.oldest / 1000),
      newest_ms: totals.newest === null ? null : Math.floor(totals.newest / 1000),
      when_full: table.settings.whenFull,
      dropped,
      dropped_values: droppedValues,
      outputs,
      tiers: tierStatus(tiers),
      runway_s: this.runwaySeconds(tiers.reduce((n, t) => n + t.vals, 0)),
      quarantine: this.quarantine.status(),
    };
  }

  /** Database, WAL and shared-memory files as they are on disk. */
  storeBytes(): number {
    const file = this.table.file;
    return fileSize(file) + fileSize(file + '-wal') + fileSize(file + '-shm');
  }

  /**
   * Chunks, rows and values per tier, with the tier's time span: from the running totals when this
   * store keeps them (a read-only look at an older store counts). The newest time is exact (an index);
   * the oldest is the oldest point of the earliest-ending chunks, exact unless chunks overlap widely.
   */
  private tierTotals(): TierTotals[] {
    const table = this.table;
    const counts = (
      this.totalsKept
        ? table.sql('SELECT tier, chunks, rows, vals FROM tier_totals WHERE chunks > 0 ORDER BY tier').all()
        : table.sql('SELECT tier, count(*) AS chunks, sum(rows) AS rows, sum(vals) AS vals FROM chunks GROUP BY tier ORDER BY tier').all()
    ) as { tier: number; chunks: number; rows: number; vals: number }[];
    const newest = table.sql('SELECT max(max_us) FROM chunks WHERE tier = ?').pluck();
    const oldest = table.sql(`SELECT min(min_us) FROM (SELECT min_us FROM chunks WHERE tier = ? ORDER BY max_us LIMIT ${OLDEST_PROBE_CHUNKS})`).pluck();
    return counts.map((c) => ({ ...c, oldest: oldest.get(c.tier) as number | null, newest: newest.get(c.tier) as number | null }));
  }

  private runwaySeconds(allValues: number): number | null {
    const sinceUs = (Date.now() - RUNWAY_WINDOW_S * 1000) * 1000;
    // Chunks written recently hold data stamped recently; live data is what fills the cap.
    const recent = this.table.sql('SELECT coalesce(sum(vals), 0) FROM chunks WHERE tier = 0 AND max_us >= ?').pluck().get(sinceUs) as number;
    if (recent === 0 || allValues === 0) return null;
    const used = this.space.usedBytes();
    const bytesPerValue = used / allValues;
    const free = this.space.dataBudgetBytes() - used;
    if (free <= 0) return null;
    return Math.round(free / ((recent / RUNWAY_WINDOW_S) * bytesPerValue));
  }
}

function tierStatus(rows: readonly TierTotals[]): Record<string, TierStatus> {
  const out: Record<string, TierStatus> = {};
  for (const r of rows) {
    out[r.tier === 0 ? 'raw' : tierName(r.tier)] = {
      rows: r.rows,
      values: r.vals,
      chunks: r.chunks,
      oldest_ms: r.oldest === null ? null : Math.floor(r.oldest / 1000),
      newest_ms: r.newest === null ? null : Math.floor(r.newest / 1000),
    };
  }
  return out;
}

/** `60000` → `1m`: the name a window goes by in status and config. */
export function tierName(windowMs: number): string {
  const units: [string, number][] = [['d', 86_400_000], ['h', 3_600_000], ['m', 60_000], ['s', 1000]];
  for (const [u, ms] of units) if (windowMs % ms === 0) return `${windowMs / ms}${u}`;
  return `${windowMs}ms`;
}
