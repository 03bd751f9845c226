// Bulk writing for `sluice import`: points are gathered per series and written as full-size chunks,
// skipping the level-0 stage, in transactions of bounded size so memory stays flat however large the
// input is and a concurrently running agent is never locked out for long.
import type { Point } from '../core/point.js';
import { seriesKey } from '../core/line-protocol.js';
import { SeriesBuilder } from './builder.js';
import { StoreFullError } from './errors.js';
import type { GroupWriter } from './roles.js';

export interface BulkResult {
  points: number;
  values: number;
  /** Points refused because the store was full under `when_full: drop_newest`. */
  dropped: number;
}

export class BulkWriter {
  private readonly builders = new Map<string, SeriesBuilder>();
  private bufferedValues = 0;
  private readonly result: BulkResult = { points: 0, values: 0, dropped: 0 };

  constructor(
    private readonly ring: GroupWriter,
    private readonly chunkRows: number,
    /** Values held in memory before the largest series are written out early. */
    private readonly maxBufferedValues = 400_000,
  ) {}

  add(points: readonly Point[]): void {
    for (const p of points) {
      const key = seriesKey(p.measurement, p.tags);
      let b = this.builders.get(key);
      if (!b) {
        b = new SeriesBuilder();
        this.builders.set(key, b);
      }
      const before = b.values;
      b.add(p.timeUs, p.fields);
      this.bufferedValues += b.values - before;
    }
    this.flush(false);
  }

  /** Writes full chunks (or everything, at the end) in one transaction. */
  flush(all: boolean): void {
    const ready: [string, SeriesBuilder][] = [];
    for (const entry of this.builders) if (all || entry[1].rows >= this.chunkRows) ready.push(entry);
    if (!all && ready.length === 0 && this.bufferedValues > this.maxBufferedValues) {
      // Many small series: write the largest half rather than grow without bound.
      const bySize = [...this.builders].sort((a, b) => b[1].values - a[1].values);
      ready.push(...bySize.slice(0, Math.max(1, bySize.length >> 1)));
    }
    if (ready.length === 0) return;
    let points = 0;
    let values = 0;
    const entries = ready.map(([key, b]) => {
      points += b.rows;
      values += b.values;
      this.builders.delete(key);
      return { key, group: b.build(), level: 1 };
    });
    this.bufferedValues -= values;
    try {
      this.ring.writeGroups(entries, points);
      this.result.points += points;
      this.result.values += values;
    } catch (err) {
      if (!(err instanceof StoreFullError)) throw err;
      this.result.dropped += points;
    }
  }

  finish(): BulkResult {
    this.flush(true);
    return { ...this.result };
  }
}
