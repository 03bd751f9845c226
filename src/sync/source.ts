// Where an output's records come from. The engine only sees this interface, so what an output ships is
// pluggable: `RingSource` leases raw chunks from the ring with the output's cursor; `RollupSource`
// leases the chunks of one rollup tier (`resolution: 1m`) the same way and turns each window's state
// into one point with a field per configured function (`temperature_mean`, `temperature_max`, …).
import type { RowGroup } from '../core/chunk.js';
import { readFunction, type AggregateFunction } from '../core/aggregate.js';
import type { OutputBatch } from '../core/component.js';
import type { FieldValue } from '../core/point.js';
import { SeriesBuilder } from '../store/builder.js';
import type { CursorStore, Lease, OutputStatus, QuarantineStore } from '../store/roles.js';
import { groupToStates } from '../store/rollup.js';

export interface SourceLease {
  readonly batch: OutputBatch;
  /** Series keys in the lease: the engine keeps each series in one request at a time. */
  readonly series: ReadonlySet<string>;
  /** Lowest and highest record id in the lease. */
  readonly minId: number;
  readonly maxId: number;
}

export interface LeaseRequest {
  maxPoints: number;
  /** Inclusive id bounds: the live lane asks above its mark, the backfill lane up to it. */
  minId?: number;
  maxId?: number;
  skipSeries: ReadonlySet<string>;
}

export interface SyncSource {
  /** Records have increasing ids in write order; this is the newest. */
  lastId(): number;
  /** Points in records with an id above `id` (a cheap upper bound of what is waiting there). */
  pointsAfter(id: number): number;
  /** Takes unsent records oldest first, or null when there are none within the bounds. */
  lease(request: LeaseRequest): SourceLease | null;
  /** Delivered (less `rejectedPoints` refused for good): never offered again, persisted. */
  settle(lease: SourceLease, rejectedPoints: number, nowMs: number): void;
  /** settle() for several leases in one durable write. */
  settleAll(items: readonly { lease: SourceLease; rejectedPoints: number }[], nowMs: number): void;
  /** Not delivered: offered again. */
  release(lease: SourceLease): void;
  /** Where the live lane starts (records above `id`), so housekeeping keeps the lanes apart. */
  setLiveMark(id: number | null): void;
  status(): OutputStatus;
  /**
   * Keeps points the upstream refused for good (the store's quarantine), before their lease settles.
   * Returns the points kept; absent or 0: they are only counted as rejected.
   */
  quarantine?(batch: OutputBatch, reason: string, message: string): number;
}

interface RingLease extends SourceLease {
  readonly lease: Lease;
}

/** Raw points from the ring (tier 0), or a rollup tier's chunks as they are stored, with the cursor named by the output id. */
export class RingSource implements SyncSource {
  constructor(
    protected readonly ring: CursorStore & QuarantineStore,
    protected readonly output: string,
    private readonly tier = 0,
  ) {
    ring.registerOutput(output, tier);
  }

  /** How a leased chunk's rows become the rows sent (identity for raw data). */
  protected convert(group: RowGroup): RowGroup {
    return group;
  }

  lastId(): number {
    return this.ring.lastChunkId();
  }

  pointsAfter(id: number): number {
    return this.ring.pointsAfter(id);
  }

  lease(request: LeaseRequest): SourceLease | null {
    const lease = this.ring.lease(this.output, {
      maxPoints: request.maxPoints,
      order: 'oldest',
      minId: request.minId,
      maxId: request.maxId,
      skipSeries: request.skipSeries,
    });
    if (!lease) return null;
    const series = new Set<string>();
    let maxId = 0;
    let minId = Infinity;
    for (const c of lease.chunks) {
      series.add(c.seriesKey);
      maxId = Math.max(maxId, c.chunkId);
      minId = Math.min(minId, c.chunkId);
    }
    const out: RingLease = {
      lease,
      series,
      minId,
      maxId,
      batch: { parts: lease.chunks.map((c) => ({ seriesKey: c.seriesKey, group: this.convert(c.group) })), points: lease.points },
    };
    return out;
  }

  settle(lease: SourceLease, rejectedPoints: number, nowMs: number): void {
    this.ring.settle((lease as RingLease).lease, { rejectedPoints, nowMs });
  }

  settleAll(items: readonly { lease: SourceLease; rejectedPoints: number }[], nowMs: number): void {
    this.ring.transaction(() => {
      for (const { lease, rejectedPoints } of items) this.ring.settle((lease as RingLease).lease, { rejectedPoints, nowMs });
    });
  }

  release(lease: SourceLease): void {
    this.ring.release((lease as RingLease).lease);
  }

  setLiveMark(id: number | null): void {
    this.ring.setLiveMark(this.output, id);
  }

  status(): OutputStatus {
    return this.ring.outputStatus(this.output);
  }

  quarantine(batch: OutputBatch, reason: string, message: string): number {
    // Rollup windows are sent as computed points, not stored ones: a retry could not write them back.
    if (this.tier !== 0) return 0;
    return this.ring.quarantine(this.output, batch.parts, reason, message);
  }
}

/**
 * One rollup tier: each window (time = window start, aligned to the epoch in UTC) becomes one point of
 * the same series with `<field>_<function>` fields. count is an integer, first/last keep their type,
 * the others are floats. A window recomputed after late data is written again as a newer chunk and
 * shipped again (InfluxDB then overwrites the window; TimescaleDB keeps the first version it got).
 */
export class RollupSource extends RingSource {
  constructor(
    ring: CursorStore & QuarantineStore,
    output: string,
    windowMs: number,
    private readonly functions: readonly AggregateFunction[],
  ) {
    super(ring, output, windowMs);
  }

  protected override convert(group: RowGroup): RowGroup {
    const builder = new SeriesBuilder();
    for (const [startUs, fields] of [...groupToStates(group)].sort((a, b) => a[0] - b[0])) {
      const out: Record<string, FieldValue> = {};
      for (const [field, state] of fields) {
        for (const fn of this.functions) {
          const value = readFunction(state, fn);
          if (value === null) continue;
          out[`${field}_${fn}`] = fn === 'count' ? BigInt(value as number) : value;
        }
      }
      // A window with nothing to ship still counts as a point: the output counts it as rejected.
      builder.add(startUs, out);
    }
    return builder.build();
  }
}

/** The source for an output's `resolution`: raw points, or one rollup tier of the store. */
export function sourceFor(ring: CursorStore & QuarantineStore, output: string, resolution: 'raw' | number, functions: readonly AggregateFunction[]): SyncSource {
  return resolution === 'raw' ? new RingSource(ring, output) : new RollupSource(ring, output, resolution, functions);
}
