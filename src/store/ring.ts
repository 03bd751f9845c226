// The ring: a durable, compressed, byte-capped store of points in one SQLite file (WAL mode).
//
// Written by hand because it is the product's core. Layout (the schema is in open.ts):
//   series(id, key, measurement)          one row per measurement + tag set (the line-protocol series key)
//   chunks(id, series_id, min_us, max_us, rows, vals, level, data)
//                                         compressed row groups (src/store/codec); id order is write order,
//                                         which is what output cursors follow
//   cursors(output, ranges, …)            per output: which chunk ids it has delivered
//   drops(reason, points, vals)           what left the store other than by delivery, by reason
//   meta(key, value)                      format version and creation time
//   commit_marks(scope, key, value)       inputs' records written with their points (src/store/marks.ts)
//
// This class is a façade: each concern over the chunk table is its own module, and the layers above
// see the store only through the roles in roles.ts (only the agent and the CLI hold a SqliteRing).
//   table.ts       the connection, prepared statements, series ids, chunk levels
//   open.ts        file checks, pragmas, schema, one-time migrations
//   commit.ts      the group commit: when a point is durable
//   space.ts       the byte cap: WAL budget, checkpoints, room made as `when_full` says
//                  (capacity.ts shares the cap out, eviction.ts chooses victims)
//   compaction.ts  merging fresh chunks into large, then sealed, chunks
//   reader.ts      series and their rows in time order
//   rollups.ts     the rollup tiers (rollup.ts holds the window states, supersede.ts the rewrites)
//   cursors.ts     output cursors and leases
//   status.ts      totals, drops, outputs, runway
//   retention.ts   chunks past a tier's age limit
//   quarantine.ts  points an upstream refused for good, kept per output
//
// Durability: journal_mode=WAL with synchronous=FULL, so every commit fsyncs the WAL. kill -9 never
// loses a committed point; a power cut loses at most the points still waiting for their group commit
// (≤ commit_interval). NORMAL would let a power cut roll back commits up to the last checkpoint, an
// unbounded window that would break the MQTT acknowledgement promise; one fsync per commit interval is
// cheap.
import type { RowGroup } from '../core/chunk.js';
import type { CommitMark } from '../core/component.js';
import type { Point } from '../core/point.js';
import { groupValueCount } from './builder.js';
import { GroupCommit } from './commit.js';
import { Compactor } from './compaction.js';
import { Cursors } from './cursors.js';
import { CommitMarkTable } from './marks.js';
import { migrate, migrated, openStore, storedWindows } from './open.js';
import { settingsOf, type RingOptions } from './options.js';
import { ChunkReader } from './reader.js';
import { Quarantine, markDeliveredExcept } from './quarantine.js';
import { expire } from './retention.js';
import type {
  CommitEvent,
  CursorStore,
  GroupEntry,
  GroupWriter,
  Lease,
  LeaseOptions,
  Maintenance,
  OutputStatus,
  PointWriter,
  QuarantinedPart,
  QuarantineStatus,
  QuarantineStore,
  ScanFilter,
  SeriesGroup,
  SeriesInfo,
  StatusReader,
  StoreReader,
  StoreStatus,
} from './roles.js';
import { Rollups } from './rollups.js';
import { Space } from './space.js';
import { StatusReport } from './status.js';
import { ChunkTable } from './table.js';

export type { RingOptions } from './options.js';
export type { DropReason, Lease, LeasedChunk, OutputStatus, ScanFilter, SeriesGroup, StoreStatus, TierStatus, WhenFull } from './roles.js';
export { STORE_FILE, STORE_FORMAT } from './open.js';
export { mergePlan } from './compaction.js';
export { clipGroup } from './reader.js';
export { measurementOf } from './series-keys.js';
export { tierName } from './status.js';

export class SqliteRing implements PointWriter, GroupWriter, StoreReader, CursorStore, StatusReader, Maintenance, QuarantineStore {
  readonly file: string;
  private readonly table: ChunkTable;
  private readonly reader: ChunkReader;
  private readonly rollups: Rollups;
  private readonly cursors: Cursors;
  private readonly space: Space;
  private readonly commits: GroupCommit;
  private readonly compactor: Compactor;
  private readonly report: StatusReport;
  private readonly marks: CommitMarkTable;
  private readonly held: Quarantine;

  private constructor(table: ChunkTable, explicitWindows: boolean) {
    this.table = table;
    this.file = table.file;
    this.reader = new ChunkReader(table);
    this.rollups = new Rollups(table, this.reader);
    this.cursors = new Cursors(table);
    this.held = new Quarantine(table);
    this.space = new Space(table, this.rollups, this.cursors, this.held);
    this.marks = new CommitMarkTable(table.db, table.readonly);
    this.commits = new GroupCommit(table, this.space, this.rollups, this.marks);
    this.compactor = new Compactor(table, this.cursors, this.space);
    if (!table.readonly) {
      this.space.applyWalBudget();
      this.rollups.markNewTiers(explicitWindows);
      migrate(table);
    }
    this.report = new StatusReport(table, this.cursors, this.space, this.held, migrated(table, 'tier_totals'));
  }

  /** Opens (creating when writable and absent) the store in `dataDir`. Throws StoreOpenError with advice. */
  static open(options: RingOptions): SqliteRing {
    return openStore(options, (db, file) => {
      const table = new ChunkTable(db, file, options.readonly ?? false, settingsOf(options, () => storedWindows(db)));
      return new SqliteRing(table, options.rollupWindowsMs !== undefined);
    });
  }

  // ---------------------------------------------------------------- writing (commit.ts)

  write(points: readonly Point[], marks?: readonly CommitMark[]): Promise<void> {
    return this.commits.write(points, marks);
  }

  commit(): void {
    this.commits.commit();
  }

  writeGroups(entries: readonly GroupEntry[], points?: number, alsoInTransaction?: () => void): void {
    this.commits.writeGroups(entries, points, alsoInTransaction);
  }

  readMarks(scope: string): Map<number, string> {
    return this.marks.read(scope);
  }

  get onCommit(): ((event: CommitEvent) => void) | undefined {
    return this.commits.onCommit;
  }

  set onCommit(listener: ((event: CommitEvent) => void) | undefined) {
    this.commits.onCommit = listener;
  }

  // ---------------------------------------------------------------- reading (reader.ts)

  listSeries(measurement?: string): SeriesInfo[] {
    return this.reader.listSeries(measurement);
  }

  scan(filter?: ScanFilter): Generator<SeriesGroup> {
    return this.reader.scan(filter);
  }

  seriesGroups(seriesId: number, tier: number, fromUs?: number, toUs?: number, fields?: ReadonlySet<string>): Generator<RowGroup> {
    return this.reader.seriesGroups(seriesId, tier, fromUs, toUs, fields);
  }

  storedTiers(): number[] {
    return this.reader.storedTiers();
  }

  dirtyRanges(seriesId: number, tier: number, fromUs?: number, toUs?: number): [number, number][] {
    return this.reader.dirtyRanges(seriesId, tier, fromUs, toUs);
  }

  // ---------------------------------------------------------------- housekeeping

  compact(options?: { force?: boolean; maxSeries?: number; budgetMs?: number }): number {
    return this.compactor.compact(options);
  }

  rollUp(opts?: { nowUs?: number; untilUs?: number; seriesId?: number; maxSeries?: number; budgetMs?: number }): number {
    return this.rollups.rollUp(opts);
  }

  /**
   * Deletes chunks of `tier` whose newest time is before `beforeUs`, counted as `retention`. Raw data
   * is rolled up first (when rollups are configured), so retention of raw never loses a window.
   */
  expire(tier: number, beforeUs: number): number {
    return expire(this.table, this.rollups, this.space, tier, beforeUs);
  }

  // ---------------------------------------------------------------- outputs (cursors.ts)

  registerOutput(output: string, tier?: number): void {
    this.cursors.registerOutput(output, tier);
  }

  lease(output: string, opts: LeaseOptions): Lease | null {
    return this.cursors.lease(output, opts);
  }

  setLiveMark(output: string, chunkId: number | null): void {
    this.cursors.setLiveMark(output, chunkId);
  }

  pointsAfter(chunkId: number): number {
    return this.cursors.pointsAfter(chunkId);
  }

  settle(lease: Lease, result?: { rejectedPoints?: number; nowMs?: number }): void {
    this.cursors.settle(lease, result);
  }

  release(lease: Lease): void {
    this.cursors.release(lease);
  }

  lastChunkId(): number {
    return this.cursors.lastChunkId();
  }

  outputStatus(output: string): OutputStatus {
    return this.cursors.outputStatus(output);
  }

  // ---------------------------------------------------------------- quarantine (quarantine.ts)

  quarantine(output: string, parts: readonly { seriesKey: string; group: RowGroup }[], reason: string, message: string, nowMs = Date.now()): number {
    const encoded = this.held.encode(parts);
    if (encoded.parts.length === 0) return 0;
    const points = encoded.parts.reduce((n, p) => n + p.group.timesUs.length, 0);
    this.held.ensure();
    return this.table.transaction(() => {
      if (!this.space.makeRoom(encoded.bytes)) {
        const values = encoded.parts.reduce((n, p) => n + groupValueCount(p.group), 0);
        this.table.stmt.addDrop!.run('quarantine_full', points, values);
        return 0;
      }
      this.held.insert(output, reason, message, nowMs, encoded.parts);
      return points;
    });
  }

  quarantineStatus(): Record<string, QuarantineStatus> {
    return this.held.status();
  }

  quarantined(output: string, reason?: string): Generator<QuarantinedPart> {
    return this.held.parts(output, reason);
  }

  retryQuarantined(output: string, reason?: string): number {
    const tier = this.table.sql('SELECT tier FROM cursors WHERE output = ?').pluck().get(output) as number | undefined;
    if (tier === undefined) throw new Error(`no output ${JSON.stringify(output)} in this store`);
    return this.table.transaction(() => {
      const { entries, points } = this.held.take(output, reason);
      if (entries.length === 0) return 0;
      // Ids are handed out in order inside this one transaction: the new chunks are those past the last.
      const before = this.cursors.lastChunkId();
      this.commits.writeGroups(entries, points);
      markDeliveredExcept(this.table, output, before + 1, this.cursors.lastChunkId());
      // Pending again rather than refused: a point refused once more is counted once.
      this.table.sql('UPDATE cursors SET rejected_points = max(0, rejected_points - ?) WHERE output = ?').run(points, output);
      return points;
    });
  }

  dropQuarantined(output: string, reason?: string): number {
    return this.table.transaction(() => {
      const { points, values } = this.held.remove(output, reason);
      if (points > 0) this.table.stmt.addDrop!.run('quarantine_dropped', points, values);
      return points;
    });
  }

  // ---------------------------------------------------------------- status (status.ts)

  status(): StoreStatus {
    return this.report.status();
  }

  /** Database, WAL and shared-memory files as they are on disk. */
  storeBytes(): number {
    return this.report.storeBytes();
  }

  // ---------------------------------------------------------------- lifecycle

  /** Commits what is pending, checkpoints, and closes. Idempotent. */
  close(): void {
    if (this.commits.isClosed) return;
    if (!this.table.readonly) {
      this.commits.commit();
      try {
        this.table.db.pragma('wal_checkpoint(TRUNCATE)');
      } catch {
        // Another process is reading; its own close or the next open will checkpoint.
      }
    }
    this.commits.close();
    this.table.db.close();
  }

  /** For the bulk importer, rollups and settling several leases: run `fn` in one write transaction. */
  transaction<T>(fn: () => T): T {
    return this.table.transaction(fn);
  }
}
