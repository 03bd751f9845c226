// The byte cap at work: the WAL held to its budget (capacity.ts says how the cap is shared), what the
// data pages use, and room made for a write as `when_full` says (eviction.ts says how).
import { SMALL_WAL_BYTES, planCapacity, type CapacityPlan } from './capacity.js';
import type { Cursors } from './cursors.js';
import { makeRoom, type EvictionHost } from './eviction.js';
import type { Quarantine } from './quarantine.js';
import type { Rollups } from './rollups.js';
import { fileSize, type ChunkMeta, type ChunkTable } from './table.js';

export class Space {
  readonly plan: CapacityPlan;
  private readonly host: EvictionHost;

  constructor(
    private readonly table: ChunkTable,
    rollups: Rollups,
    private readonly cursors: Cursors,
    quarantine: Quarantine,
  ) {
    this.plan = planCapacity(table.settings.maxBytes, table.pageSize);
    const stmt = table.stmt;
    this.host = {
      whenFull: table.settings.whenFull,
      rollupWindowsMs: table.settings.rollupWindowsMs,
      pageSize: table.pageSize,
      dataBudgetBytes: () => this.dataBudgetBytes(),
      usedBytes: () => table.usedBytes(),
      oldestChunks: (tier, limit) => (tier === null ? stmt.oldestAny.all(limit) : stmt.oldestChunks.all(tier, limit)) as ChunkMeta[],
      rollUpBefore: (seriesId, untilUs, rawGoes) => rollups.rollUpBefore(seriesId, untilUs, rawGoes),
      remove: (victim) => this.remove(victim),
      addDrop: (reason, points, values) => stmt.addDrop!.run(reason, points, values),
      oldestQuarantined: (limit) => quarantine.oldest(limit),
      evictQuarantined: (id) => quarantine.evict(id),
    };
  }

  applyWalBudget(): void {
    this.table.db.pragma(`wal_autocheckpoint = ${this.plan.checkpointPages}`);
    this.table.db.pragma(`journal_size_limit = ${this.plan.walBudgetBytes}`);
  }

  /** Bytes the database file may hold (see capacity.ts). */
  dataBudgetBytes(): number {
    return this.plan.dataBudgetBytes;
  }

  usedBytes(): number {
    return this.table.usedBytes();
  }

  /** Inside a write transaction: room for `incomingBytes` as `when_full` says (see eviction.ts). */
  makeRoom(incomingBytes: number): boolean {
    return makeRoom(this.host, incomingBytes);
  }

  /** Deletes a chunk that leaves the store other than by delivery, telling outputs that had not received it. */
  remove(victim: ChunkMeta): void {
    this.cursors.countUnsent(victim);
    this.table.stmt.deleteChunk!.run(victim.id);
  }

  checkpointIfLarge(): void {
    if (fileSize(this.table.file + '-wal') > this.plan.walBudgetBytes) this.checkpointNow();
  }

  /**
   * Before a large rewrite (a compaction merge) under a small WAL budget: start on an empty WAL so
   * that the rewrite alone is what the WAL holds (see capacity.ts).
   */
  emptyWalIfSmall(): void {
    if (this.plan.walBudgetBytes < SMALL_WAL_BYTES && fileSize(this.table.file + '-wal') > 0) this.checkpointNow();
  }

  checkpointNow(): void {
    try {
      this.table.db.pragma('wal_checkpoint(TRUNCATE)');
    } catch {
      // A reader holding an old snapshot blocks truncation; the next commit tries again.
    }
  }
}
