// The ring's quarantine (src/store/quarantine.ts) against a real SQLite file: refused points kept per
// output and durable, a retry that only their output receives again, drops counted, and the byte cap:
// quarantined points are inside it and go last, after every chunk, counted when they go.
import { describe, expect, it } from 'vitest';
import type { RowGroup } from '../src/core/chunk.js';
import { SeriesBuilder } from '../src/store/builder.js';
import { SqliteRing, type RingOptions } from '../src/store/ring.js';
import { rng } from './helpers/random.js';
import { tmpDir } from './helpers/tmp.js';

const MiB = 1024 * 1024;
const options = (dataDir: string, extra: Partial<RingOptions> = {}): RingOptions => ({ dataDir, maxBytes: 64 * MiB, whenFull: 'drop_oldest', commitIntervalMs: 5, ...extra });

function group(rows: number, startUs: number, seed: number): RowGroup {
  const r = rng(seed);
  const b = new SeriesBuilder();
  for (let i = 0; i < rows; i++) b.add(startUs + i * 1_000_000, { v: r() * 1e6, w: r() });
  return b.build();
}

describe('quarantine in the ring', () => {
  it('keeps refused points durably; a retry goes to their output alone; a drop is counted', async () => {
    const dir = tmpDir();
    let ring = SqliteRing.open(options(dir));
    ring.registerOutput('a');
    ring.registerOutput('b');
    // `a`'s upstream refuses three of these four points; `b`'s takes all four.
    await ring.write([1, 10, 11, 12].map((second) => ({ measurement: 'm', tags: { s: '1' }, fields: { v: second }, timeUs: second * 1_000_000 })));
    for (const out of ['a', 'b']) ring.settle(ring.lease(out, { maxPoints: 100, order: 'oldest' })!, { rejectedPoints: out === 'a' ? 3 : 0 });
    expect(ring.quarantine('a', [{ seriesKey: 'm,s=1', group: group(3, 10_000_000, 1) }], 'field_type_conflict', 'the upstream said no', 5000)).toBe(3);
    ring.close();

    ring = SqliteRing.open(options(dir));
    expect(ring.status().quarantine).toEqual({
      a: {
        points: 3,
        values: 6,
        bytes: expect.any(Number) as number,
        oldest_ms: 10_000,
        newest_ms: 12_000,
        reasons: { field_type_conflict: { points: 3, values: 6, oldest_ms: 10_000, newest_ms: 12_000, first_refused_ms: 5000, last_refused_ms: 5000, last_message: 'the upstream said no' } },
      },
    });
    expect([...ring.quarantined('a')].map((p) => [p.seriesKey, p.group.timesUs.length, p.reason])).toEqual([['m,s=1', 3, 'field_type_conflict']]);
    expect(ring.retryQuarantined('a', 'another_reason')).toBe(0);
    expect(ring.retryQuarantined('a')).toBe(3);
    expect(ring.status().quarantine).toEqual({});
    // Only `a` has them to send; `b` received these times once and does not again.
    expect(ring.outputStatus('a')).toMatchObject({ backlog_points: 3, rejected_points: 0, sent_points: 1 });
    expect(ring.outputStatus('b')).toMatchObject({ backlog_points: 0, sent_points: 4 });
    expect(ring.lease('b', { maxPoints: 100, order: 'oldest' })).toBeNull();
    const lease = ring.lease('a', { maxPoints: 100, order: 'oldest' })!;
    expect(lease.points).toBe(3);
    // Refused again: back in the quarantine, the rejected count as before (counted once).
    ring.settle(lease, { rejectedPoints: 3 });
    ring.quarantine('a', lease.chunks.map((c) => ({ seriesKey: c.seriesKey, group: c.group })), 'field_type_conflict', 'still no');
    expect(ring.outputStatus('a')).toMatchObject({ rejected_points: 3, sent_points: 1 });
    expect(ring.status().quarantine.a.points).toBe(3);
    expect(ring.dropQuarantined('a')).toBe(3);
    expect(ring.status()).toMatchObject({ quarantine: {}, dropped: { quarantine_dropped: 3 }, dropped_values: { quarantine_dropped: 6 } });
    expect(() => ring.retryQuarantined('nobody')).toThrow(/no output "nobody"/);
    ring.close();
  });

  it('counts inside the cap and goes last: every chunk is evicted first, then the oldest quarantined points, counted', async () => {
    const cap = 1 * MiB;
    const ring = SqliteRing.open(options(tmpDir(), { maxBytes: cap }));
    ring.registerOutput('up');
    const points = [];
    for (let i = 0; i < 3000; i++) points.push({ measurement: 'm', tags: { s: String(i % 3) }, fields: { v: i * 0.37 }, timeUs: (1_000_000 + i) * 1_000_000 });
    await ring.write(points);
    let kept = 0;
    let batches = 0;
    for (; ring.status().dropped.quarantine_evicted === undefined; batches++) {
      if (batches > 400) throw new Error('the quarantine was never evicted');
      kept += ring.quarantine('up', [{ seriesKey: 'm,s=q', group: group(500, batches * 1e9, batches + 2) }], 'bad_line', `batch ${batches}`);
    }
    // The first time a quarantined point went, no chunk was left: every one of them went first.
    const s = ring.status();
    expect(s.points).toBe(0);
    expect(s.dropped.dropped_oldest).toBe(3000);
    expect(s.outputs.up.lost_unsent_points).toBe(3000);
    // What is held and what was evicted add up to what was quarantined; the newest batches are the ones kept.
    expect(s.quarantine.up.points + s.dropped.quarantine_evicted).toBe(kept);
    expect(s.quarantine.up.reasons.bad_line.last_message).toBe(`batch ${batches - 1}`);
    expect(s.store_bytes).toBeLessThanOrEqual(cap);
    ring.close();
  });
});
