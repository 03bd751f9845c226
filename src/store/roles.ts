// The store by role: what each layer above the store may ask of it. The agent and the CLI open the
// concrete store (SqliteRing, src/store/ring.ts) and hand each part of the program only the role it
// needs, so a reader cannot write, the sync engine sees cursors and nothing else, and another ring
// implementation would only have to fill these in. `npm run lint` (build/check-imports.mjs) lets no
// module outside src/store, src/agent and src/cli import the concrete ring.
import type { RowGroup } from '../core/chunk.js';
import type { CommitMark } from '../core/component.js';
import type { Point } from '../core/point.js';

export type WhenFull = 'rollup' | 'drop_oldest' | 'drop_newest';
export type DropReason =
  | 'dropped_oldest'
  | 'dropped_newest'
  | 'rolled_up'
  | 'dropped_rollups'
  | 'retention'
  | 'quarantine_evicted'
  | 'quarantine_dropped'
  | 'quarantine_full';

// ---------------------------------------------------------------- writing

/** What the agent's sink (the `Sink` inputs see, src/core/component.ts) and the rules write to. */
export interface PointWriter {
  /**
   * Queues points for the next group commit. Resolves when they are durable; rejects with
   * StoreFullError if `drop_newest` refused them, or StoreClosedError if the store closed first.
   * `marks` (src/store/marks.ts) are written in the same transaction as the points.
   */
  write(points: readonly Point[], marks?: readonly CommitMark[]): Promise<void>;
  /** Commits every pending point now (one transaction) and settles their writers. */
  commit(): void;
  /** The commit marks of `scope` as the last group commit left them. */
  readMarks(scope: string): Map<number, string>;
}

/** A series' rows written whole, as bulk import does (src/store/bulk.ts). */
export interface GroupEntry {
  key: string;
  group: RowGroup;
  level: number;
  tier?: number;
}

/** What bulk import writes to: whole groups, skipping the group commit. */
export interface GroupWriter {
  /**
   * Writes groups in one transaction, making room first as `when_full` says. `points` is what the
   * caller counts as points for a drop_newest refusal; `alsoInTransaction` runs after the inserts,
   * in the same transaction.
   */
  writeGroups(entries: readonly GroupEntry[], points?: number, alsoInTransaction?: () => void): void;
}

// ---------------------------------------------------------------- reading

export interface SeriesGroup {
  seriesId: number;
  key: string;
  measurement: string;
  group: RowGroup;
}

export interface ScanFilter {
  measurement?: string;
  fromUs?: number;
  /** Exclusive. */
  toUs?: number;
  fields?: ReadonlySet<string>;
}

export interface SeriesInfo {
  id: number;
  key: string;
  measurement: string;
}

/** What query (src/query), export and the HTTP series endpoints read. */
export interface StoreReader {
  /** Series matching the filter, in creation order. */
  listSeries(measurement?: string): SeriesInfo[];
  /**
   * Yields each matching series' rows in time order, as groups of at most a few chunks: overlapping
   * chunks (late or re-imported data) are merged, the later write winning for the same time and field.
   */
  scan(filter?: ScanFilter): Generator<SeriesGroup>;
  /** One series' groups of one tier (0 = raw, else a rollup window in ms) within [fromUs, toUs). */
  seriesGroups(seriesId: number, tier: number, fromUs?: number, toUs?: number, fields?: ReadonlySet<string>): Generator<RowGroup>;
  /** Rollup tiers (window ms) present in the store, shortest first. */
  storedTiers(): number[];
  /**
   * Ranges of window starts [first, last] of one series and tier that still wait for (re)computation,
   * merged and clipped to starts in [fromUs, toUs).
   */
  dirtyRanges(seriesId: number, tier: number, fromUs?: number, toUs?: number): [number, number][];
}

// ---------------------------------------------------------------- delivery

export interface LeasedChunk {
  chunkId: number;
  seriesKey: string;
  group: RowGroup;
}

export interface Lease {
  output: string;
  chunks: LeasedChunk[];
  points: number;
  values: number;
  /** Oldest time in the lease, for the output's bookkeeping. */
  minUs: number;
}

export interface LeaseOptions {
  maxPoints: number;
  order: 'oldest' | 'newest';
  minId?: number;
  maxId?: number;
  skipSeries?: ReadonlySet<string>;
}

export interface OutputStatus {
  backlog_points: number;
  backlog_values: number;
  oldest_unsent_ms: number | null;
  last_success_ms: number | null;
  sent_points: number;
  rejected_points: number;
  /**
   * Points removed from the store (rolled up, dropped for space or by retention) before this output
   * received them. Under `rollup` their windows remain in the rollups.
   */
  lost_unsent_points: number;
}

/** What the sync engine's sources (src/sync/source.ts) lease from: the output cursors. */
export interface CursorStore {
  /**
   * Makes sure an output has a cursor; a new output starts with everything in the store unsent.
   * `tier` is what it ships: 0 for raw points, or a rollup window in ms (its `resolution`).
   */
  registerOutput(output: string, tier?: number): void;
  /** Id of the newest chunk, so an output can tell live chunks (written later) from its backlog. */
  lastChunkId(): number;
  /** Points in chunks with an id above `chunkId` (written after it), delivered or not. */
  pointsAfter(chunkId: number): number;
  /**
   * Leases unsent chunks to an output: `oldest` first (backfill) or `newest` first (live). Leased
   * chunks are not offered again until released. At least one chunk is leased if any is available,
   * even if it alone exceeds `maxPoints`. `minId`/`maxId` (inclusive) bound the ids; chunks of a
   * series in `skipSeries` are passed over.
   */
  lease(output: string, opts: LeaseOptions): Lease | null;
  /**
   * Records a lease as delivered: its chunks never go to this output again. `rejectedPoints` of them
   * were refused by the upstream for good (counted, not retried).
   */
  settle(lease: Lease, result?: { rejectedPoints?: number; nowMs?: number }): void;
  /** Gives a lease back undelivered: its chunks will be offered again. */
  release(lease: Lease): void;
  /**
   * Marks where an output's live lane starts: chunks with a higher id are its live data, the rest its
   * backlog. Compaction never merges chunks across the mark. Not persisted; null removes it.
   */
  setLiveMark(output: string, chunkId: number | null): void;
  outputStatus(output: string): OutputStatus;
  /** Runs `fn` in one write transaction (several settles in one durable write). */
  transaction<T>(fn: () => T): T;
}

// ---------------------------------------------------------------- status

export interface TierStatus {
  /** Rows: points for raw, windows for rollups. */
  rows: number;
  values: number;
  chunks: number;
  oldest_ms: number | null;
  newest_ms: number | null;
}

export interface StoreStatus {
  points: number;
  values: number;
  series: number;
  chunks: number;
  store_bytes: number;
  capacity_bytes: number;
  used_bytes: number;
  oldest_ms: number | null;
  newest_ms: number | null;
  when_full: WhenFull;
  dropped: Record<string, number>;
  dropped_values: Record<string, number>;
  outputs: Record<string, OutputStatus>;
  /** Per tier (`raw`, then each rollup window such as `1m`): what it holds and the time it still covers. */
  tiers: Record<string, TierStatus>;
  /** Seconds until the cap at the ingest rate of the last 10 minutes (null: no recent ingest, or already at the cap). */
  runway_s: number | null;
  /** Per output: the points its upstream refused for good, kept for `sluice quarantine` (src/store/quarantine.ts). */
  quarantine: Record<string, QuarantineStatus>;
}

export interface QuarantineReasonStatus {
  points: number;
  values: number;
  /** The time the points span. */
  oldest_ms: number;
  newest_ms: number;
  /** When the upstream refused them: the first and the last time. */
  first_refused_ms: number;
  last_refused_ms: number;
  /** The upstream's own words, for the latest batch refused for this reason. */
  last_message: string;
}

export interface QuarantineStatus {
  points: number;
  values: number;
  /** Encoded bytes held (inside the byte cap). */
  bytes: number;
  oldest_ms: number | null;
  newest_ms: number | null;
  reasons: Record<string, QuarantineReasonStatus>;
}

/** A group commit as the ring reports it. */
export interface CommitEvent {
  durationMs: number;
  points: number;
  error?: Error;
}

/** What `sluice status`, the health checks and /metrics read. */
export interface StatusReader {
  /** The store's database file (its folder's free space is a health check). */
  readonly file: string;
  status(): StoreStatus;
  /** Told after every group commit: the HTTP endpoint's commit-latency histogram and store health. */
  onCommit: ((event: CommitEvent) => void) | undefined;
}

// ---------------------------------------------------------------- quarantine

/** A refused part as the quarantine holds it. */
export interface QuarantinedPart {
  seriesKey: string;
  group: RowGroup;
  reason: string;
  message: string;
}

/**
 * Points an upstream refused for good, kept per output: the sync sources hand them in, `sluice
 * quarantine` lists, exports, retries and drops them (also while the agent runs).
 */
export interface QuarantineStore {
  /**
   * Keeps refused points of a raw output with a short reason (`field_type_conflict`, …) and the
   * upstream's message. Returns the points kept (0 when `drop_newest` found no room: counted as a drop).
   */
  quarantine(output: string, parts: readonly { seriesKey: string; group: RowGroup }[], reason: string, message: string, nowMs?: number): number;
  quarantineStatus(): Record<string, QuarantineStatus>;
  quarantined(output: string, reason?: string): Generator<QuarantinedPart>;
  /** Writes an output's quarantined points (of one reason) back for that output alone; returns the points. */
  retryQuarantined(output: string, reason?: string): number;
  /** Deletes an output's quarantined points (of one reason), counted as `quarantine_dropped`; returns the points. */
  dropQuarantined(output: string, reason?: string): number;
}

// ---------------------------------------------------------------- housekeeping

/** What the agent's maintenance loops and `import` run. */
export interface Maintenance {
  /** Merges fresh chunks into larger ones; returns the number of series compacted. */
  compact(options?: { force?: boolean; maxSeries?: number; budgetMs?: number }): number;
  /** Computes the rollup windows marked dirty by writes; returns the number of windows written. */
  rollUp(opts?: { nowUs?: number; untilUs?: number; seriesId?: number; maxSeries?: number; budgetMs?: number }): number;
  /** Deletes chunks of `tier` whose newest time is before `beforeUs`; returns the points removed. */
  expire(tier: number, beforeUs: number): number;
}
