// The ring's output API as the sync engine uses it: lanes bounded by ids, one series per request,
// cheap "what arrived since", and compaction that keeps ids in write order and never merges across
// an output's live mark.
import { afterEach, describe, expect, it } from 'vitest';
import type { Point } from '../src/core/point.js';
import { SqliteRing } from '../src/store/ring.js';
import { ringOptions } from './helpers/sync.js';

const rings: SqliteRing[] = [];
afterEach(() => {
  for (const r of rings.splice(0)) r.close();
});

function open(): SqliteRing {
  const ring = SqliteRing.open(ringOptions(undefined, { commitIntervalMs: 5 }));
  rings.push(ring);
  return ring;
}

/** One commit per call: one level-0 chunk per sensor. */
async function tick(ring: SqliteRing, second: number, sensors: string[]): Promise<void> {
  const points: Point[] = sensors.map((sensor) => ({ measurement: 'm', tags: { sensor }, fields: { v: second }, timeUs: (1_700_000_000 + second) * 1_000_000 }));
  await ring.write(points);
  ring.commit();
}

describe('ring output API (sync engine)', () => {
  it('bounds leases by id (live above the mark, backlog up to it) and counts points written after an id', async () => {
    const ring = open();
    ring.registerOutput('o');
    for (let s = 0; s < 10; s++) await tick(ring, s, ['a', 'b']);
    const mark = ring.lastChunkId();
    for (let s = 10; s < 13; s++) await tick(ring, s, ['a', 'b']);
    expect(ring.pointsAfter(mark)).toBe(6);
    const live = ring.lease('o', { maxPoints: 100, order: 'oldest', minId: mark + 1 })!;
    expect(live.chunks.every((c) => c.chunkId > mark)).toBe(true);
    expect(live.points).toBe(6);
    const backlog = ring.lease('o', { maxPoints: 100, order: 'oldest', maxId: mark })!;
    expect(backlog.chunks.every((c) => c.chunkId <= mark)).toBe(true);
    expect(backlog.points).toBe(20);
    // Oldest first, in write order.
    const ids = backlog.chunks.map((c) => c.chunkId);
    expect(ids).toEqual([...ids].sort((x, y) => x - y));
  });

  it('passes over the chunks of busy series, keeping each series in order', async () => {
    const ring = open();
    ring.registerOutput('o');
    for (let s = 0; s < 5; s++) await tick(ring, s, ['a', 'b', 'c']);
    const lease = ring.lease('o', { maxPoints: 100, order: 'oldest', skipSeries: new Set(['m,sensor=b']) })!;
    expect(new Set(lease.chunks.map((c) => c.seriesKey))).toEqual(new Set(['m,sensor=a', 'm,sensor=c']));
    ring.settle(lease);
    const rest = ring.lease('o', { maxPoints: 100, order: 'oldest' })!;
    expect(rest.chunks.map((c) => c.group.timesUs[0] / 1_000_000 - 1_700_000_000)).toEqual([0, 1, 2, 3, 4]);
  });

  it('after a long delivered run, leasing starts past it and still finds what is unsent below and above', async () => {
    const ring = open();
    ring.registerOutput('o');
    for (let s = 0; s < 50; s++) await tick(ring, s, ['a']);
    // Deliver everything but chunk #3, then everything is one range plus a hole.
    const all = ring.lease('o', { maxPoints: 1000, order: 'oldest' })!;
    const hole = all.chunks[3].chunkId;
    ring.release(all);
    const without = { ...all, chunks: all.chunks.filter((c) => c.chunkId !== hole), points: 49 };
    ring.settle(without);
    const next = ring.lease('o', { maxPoints: 1000, order: 'oldest' })!;
    expect(next.chunks.map((c) => c.chunkId)).toEqual([hole]);
    ring.settle(next);
    await tick(ring, 50, ['a']);
    expect(ring.lease('o', { maxPoints: 1000, order: 'oldest' })!.points).toBe(1);
  });

  it('compaction merges into the run\'s own lowest ids (write order kept) and never across a live mark', async () => {
    const ring = open();
    ring.registerOutput('o');
    for (let s = 0; s < 20; s++) await tick(ring, s, ['a']);
    const mark = ring.lastChunkId();
    ring.setLiveMark('o', mark);
    for (let s = 20; s < 40; s++) await tick(ring, s, ['a']);
    const last = ring.lastChunkId();
    ring.compact({ force: true });
    // Two merged chunks: the backlog at the first backlog id, the live data at the first live id.
    const backlog = ring.lease('o', { maxPoints: 1000, order: 'oldest', maxId: mark })!;
    expect(backlog.chunks).toHaveLength(1);
    expect(backlog.chunks[0].chunkId).toBeLessThanOrEqual(mark);
    expect(backlog.points).toBe(20);
    const live = ring.lease('o', { maxPoints: 1000, order: 'oldest', minId: mark + 1 })!;
    expect(live.chunks).toHaveLength(1);
    expect(live.chunks[0].chunkId).toBeGreaterThan(mark);
    expect(live.points).toBe(20);
    // No new ids: what is written next still comes after everything older.
    expect(ring.lastChunkId()).toBe(last);
  });

  it('without a mark, unsent chunks merge into one, at the lowest id', async () => {
    const ring = open();
    ring.registerOutput('o');
    for (let s = 0; s < 20; s++) await tick(ring, s, ['a']);
    const first = ring.lease('o', { maxPoints: 1, order: 'oldest' })!;
    ring.release(first);
    ring.compact({ force: true });
    const lease = ring.lease('o', { maxPoints: 1000, order: 'oldest' })!;
    expect(lease.chunks.map((c) => c.chunkId)).toEqual([first.chunks[0].chunkId]);
    expect(lease.points).toBe(20);
  });
});
