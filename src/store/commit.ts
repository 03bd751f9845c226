// The group commit: points wait in memory for the next commit (`commit_interval`, or sooner once
// `maxPendingValues` wait), which writes one small level-0 chunk per series in one transaction and
// then resolves every waiting writer: that is the moment a point is durable. Writers' commit marks go
// in the same transaction (marks.ts). Room is made first as `when_full` says; a drop_newest refusal
// rejects every writer of that commit and is counted as a drop.
import type { RowGroup } from '../core/chunk.js';
import type { CommitMark } from '../core/component.js';
import { seriesKey as makeSeriesKey } from '../core/line-protocol.js';
import type { Point } from '../core/point.js';
import { SeriesBuilder, groupValueCount, sliceGroup } from './builder.js';
import { encodeChunk } from './codec/index.js';
import { StoreClosedError, StoreFullError } from './errors.js';
import { CHUNK_OVERHEAD_BYTES } from './eviction.js';
import { marksOf, type CommitMarkTable } from './marks.js';
import type { CommitEvent, GroupEntry } from './roles.js';
import type { Rollups } from './rollups.js';
import type { Space } from './space.js';
import { LEVEL_FRESH, LEVEL_OPEN, LEVEL_SEALED, type ChunkTable } from './table.js';

interface PendingWaiter {
  resolve: () => void;
  reject: (err: Error) => void;
  points: number;
  marks?: readonly CommitMark[];
}

interface ChunkInsert {
  seriesKey: string;
  group: RowGroup;
  level: number;
  /** 0 for raw data, else the rollup window in milliseconds. */
  tier: number;
  bytes: Uint8Array;
}

export class GroupCommit {
  private pending = new Map<string, SeriesBuilder>();
  private pendingValues = 0;
  private waiters: PendingWaiter[] = [];
  private commitTimer: NodeJS.Timeout | undefined;
  private closed = false;
  /** Told after every group commit (see StatusReader.onCommit). */
  onCommit: ((event: CommitEvent) => void) | undefined;

  constructor(
    private readonly table: ChunkTable,
    private readonly space: Space,
    private readonly rollups: Rollups,
    private readonly marks: CommitMarkTable,
  ) {}

  write(points: readonly Point[], marks?: readonly CommitMark[]): Promise<void> {
    if (this.closed) return Promise.reject(new StoreClosedError());
    if (points.length === 0 && !marks?.length) return Promise.resolve();
    for (const p of points) this.addPending(p);
    const done = new Promise<void>((resolve, reject) => this.waiters.push({ resolve, reject, points: points.length, marks }));
    if (this.pendingValues >= this.table.settings.maxPendingValues) this.scheduleCommit(0);
    else this.scheduleCommit(this.table.settings.commitIntervalMs);
    return done;
  }

  private addPending(p: Point): void {
    const key = makeSeriesKey(p.measurement, p.tags);
    let builder = this.pending.get(key);
    if (!builder) {
      builder = new SeriesBuilder();
      this.pending.set(key, builder);
    }
    const before = builder.values;
    builder.add(p.timeUs, p.fields);
    this.pendingValues += builder.values - before;
  }

  private scheduleCommit(delayMs: number): void {
    if (this.commitTimer && delayMs > 0) return;
    if (this.commitTimer) clearTimeout(this.commitTimer);
    this.commitTimer = setTimeout(() => {
      this.commitTimer = undefined;
      this.commit();
    }, delayMs);
  }

  commit(): void {
    if (this.commitTimer) {
      clearTimeout(this.commitTimer);
      this.commitTimer = undefined;
    }
    const waiters = this.waiters;
    const pending = this.pending;
    if (waiters.length === 0 && pending.size === 0) return;
    this.waiters = [];
    this.pending = new Map();
    this.pendingValues = 0;
    const points = waiters.reduce((n, w) => n + w.points, 0);
    const startedMs = performance.now();
    let error: Error | undefined;
    try {
      const inserts: GroupEntry[] = [];
      for (const [key, builder] of pending) inserts.push({ key, group: builder.build(), level: 0 });
      const marks = marksOf(waiters);
      // Marks alone take no room worth evicting for: they are committed even when the store is full.
      if (inserts.length > 0) this.writeGroups(inserts, points, () => this.marks.apply(marks));
      else this.table.transaction(() => this.marks.apply(marks));
      for (const w of waiters) w.resolve();
    } catch (err) {
      error = err as Error;
      for (const w of waiters) w.reject(err as Error);
    }
    this.onCommit?.({ durationMs: performance.now() - startedMs, points, error });
  }

  writeGroups(entries: readonly GroupEntry[], points?: number, alsoInTransaction?: () => void): void {
    const maxChunkRows = this.table.settings.maxChunkRows;
    const inserts: ChunkInsert[] = [];
    let bytes = 0;
    let values = 0;
    let rows = 0;
    for (const { key, group, level, tier = 0 } of entries) {
      for (let start = 0; start < group.timesUs.length; start += maxChunkRows) {
        const part = sliceGroup(group, start, start + maxChunkRows);
        const encoded = encodeChunk(part);
        bytes += encoded.length + CHUNK_OVERHEAD_BYTES;
        values += groupValueCount(part);
        rows += part.timesUs.length;
        const partLevel = level === LEVEL_FRESH ? LEVEL_FRESH : part.timesUs.length >= maxChunkRows ? LEVEL_SEALED : LEVEL_OPEN;
        inserts.push({ seriesKey: key, group: part, level: partLevel, tier, bytes: encoded });
      }
    }
    const stmt = this.table.stmt;
    const tx = this.table.db.transaction(() => {
      if (!this.space.makeRoom(bytes)) throw new StoreFullError(points ?? rows);
      for (const item of inserts) {
        const seriesId = this.table.seriesId(item.seriesKey);
        const g = item.group;
        stmt.insertChunk!.run(seriesId, g.timesUs[0], g.timesUs[g.timesUs.length - 1], g.timesUs.length, groupValueCount(g), item.level, item.bytes, item.tier);
        if (item.tier === 0) this.rollups.markDirty(seriesId, g);
      }
      alsoInTransaction?.();
    });
    try {
      tx();
    } catch (err) {
      // The transaction rolled back; the refusal is counted on its own.
      if (err instanceof StoreFullError) stmt.addDrop!.run('dropped_newest', points ?? rows, values);
      throw err;
    }
    this.space.checkpointIfLarge();
  }

  /** After the last commit: no more writes; writers still waiting are told the store closed. */
  close(): void {
    this.closed = true;
    if (this.commitTimer) clearTimeout(this.commitTimer);
    for (const w of this.waiters) w.reject(new StoreClosedError());
    this.waiters = [];
  }

  get isClosed(): boolean {
    return this.closed;
  }
}
