// Making room under the cap, as `buffer.when_full` says. Runs inside the write transaction that needs
// the room, so an eviction and the write it makes room for commit together or not at all.
//
// drop_oldest deletes the oldest chunks of any tier; drop_newest refuses the write; rollup replaces the
// oldest raw chunks by their rollups (each chunk only once its windows are rolled up in every tier)
// and, when no raw data is left to replace, drops rollups, the finest tier first, so a coarse tier
// outlives the finer ones. Victims are taken in batches just large enough for the bytes the write is
// short of: rolling a batch up once rather than chunk by chunk writes one rollup chunk per tier per
// eviction instead of one per evicted chunk. Quarantined points (quarantine.ts) go last, once no chunk
// of any tier is left to evict, counted as `quarantine_evicted`.

/** A chunk as eviction sees it: enough to choose, count and roll up, without its data. */
export interface EvictionCandidate {
  id: number;
  series_id: number;
  max_us: number;
  rows: number;
  vals: number;
  tier: number;
  /** Length of the encoded chunk. */
  bytes: number;
}

export type EvictionReason = 'dropped_oldest' | 'rolled_up' | 'dropped_rollups' | 'quarantine_evicted';

/** What the ring lends eviction: its measures and the steps it takes on a chunk. */
export interface EvictionHost {
  readonly whenFull: 'rollup' | 'drop_oldest' | 'drop_newest';
  readonly rollupWindowsMs: readonly number[];
  readonly pageSize: number;
  dataBudgetBytes(): number;
  /** Bytes in pages that hold data (free pages not counted: SQLite reuses them first). */
  usedBytes(): number;
  /** The earliest-ending chunks of a tier (null: of any tier), earliest first. */
  oldestChunks(tier: number | null, limit: number): EvictionCandidate[];
  /** Rolls up every window of a series up to `untilUs` in every tier; `rawGoes`: its raw data up to there leaves. */
  rollUpBefore(seriesId: number, untilUs: number, rawGoes: boolean): void;
  /** Deletes a chunk, telling outputs that had not received it. */
  remove(victim: EvictionCandidate): void;
  addDrop(reason: EvictionReason, points: number, values: number): void;
  /** Quarantined points (quarantine.ts), oldest first: evicted last, once no chunk is left. */
  oldestQuarantined(limit: number): { id: number; rows: number; vals: number; bytes: number }[];
  evictQuarantined(id: number): void;
}

/** Chunks looked at per batch; a batch takes only as many as the bytes still missing need. */
const CANDIDATES_PER_BATCH = 64;
/** A stored chunk's cost beyond its data: row header, rowid and four index entries. */
export const CHUNK_OVERHEAD_BYTES = 48;

/**
 * Inside a write transaction: ensures `incomingBytes` (encoded chunks and their overhead) fit under
 * the cap, evicting when the policy allows. False when the policy is to refuse the write.
 */
export function makeRoom(host: EvictionHost, incomingBytes: number): boolean {
  const budget = host.dataBudgetBytes();
  // B-tree pages are rarely full; a factor keeps the estimate on the safe side of the cap.
  const needed = Math.ceil(incomingBytes * 1.25) + 2 * host.pageSize;
  if (host.usedBytes() + needed <= budget) return true;
  if (host.whenFull === 'drop_newest') return false;
  const rollup = host.whenFull === 'rollup' && host.rollupWindowsMs.length > 0;
  // A page's worth below the need, so the next small write does not evict again at once.
  const target = budget - needed - host.pageSize;
  const order: (number | null)[] = rollup ? [0, ...host.rollupWindowsMs] : [null];
  for (const tier of order) {
    for (let used = host.usedBytes(); used > target; used = host.usedBytes()) {
      const batch = takeBatch(host.oldestChunks(tier, CANDIDATES_PER_BATCH), used - target);
      if (batch.length === 0) break;
      evict(host, batch, rollup);
    }
  }
  for (let used = host.usedBytes(); used > target; used = host.usedBytes()) {
    const batch = takeBatch(host.oldestQuarantined(CANDIDATES_PER_BATCH), used - target);
    if (batch.length === 0) break;
    let points = 0;
    let values = 0;
    for (const q of batch) {
      host.evictQuarantined(q.id);
      points += q.rows;
      values += q.vals;
    }
    host.addDrop('quarantine_evicted', points, values);
  }
  return host.usedBytes() + needed <= budget || host.usedBytes() === 0;
}

/** The first candidates whose bytes add up to `missingBytes` (at least one). */
function takeBatch<C extends { bytes: number }>(candidates: C[], missingBytes: number): C[] {
  let freed = 0;
  let n = 0;
  while (n < candidates.length && freed < missingBytes) freed += candidates[n++].bytes + CHUNK_OVERHEAD_BYTES;
  return candidates.slice(0, n);
}

function evict(host: EvictionHost, batch: EvictionCandidate[], rollup: boolean): void {
  if (rollup) {
    // Per series, up to the latest end among its victims: one pass covers the whole batch.
    const untilBySeries = new Map<number, { untilUs: number; rawGoes: boolean }>();
    for (const v of batch) {
      const prev = untilBySeries.get(v.series_id);
      untilBySeries.set(v.series_id, { untilUs: Math.max(prev?.untilUs ?? -Infinity, v.max_us), rawGoes: (prev?.rawGoes ?? false) || v.tier === 0 });
    }
    for (const [seriesId, { untilUs, rawGoes }] of untilBySeries) host.rollUpBefore(seriesId, untilUs, rawGoes);
  }
  const byReason = new Map<EvictionReason, { points: number; values: number }>();
  for (const v of batch) {
    host.remove(v);
    const reason: EvictionReason = !rollup ? 'dropped_oldest' : v.tier === 0 ? 'rolled_up' : 'dropped_rollups';
    const counts = byReason.get(reason) ?? { points: 0, values: 0 };
    counts.points += v.rows;
    counts.values += v.vals;
    byReason.set(reason, counts);
  }
  for (const [reason, c] of byReason) host.addDrop(reason, c.points, c.values);
}
