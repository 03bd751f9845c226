// The simulator through the real ring: realistic, reproducible series as its README promises.
import { describe, expect, it } from 'vitest';
import type { InputContext, Logger } from '../../src/core/component.js';
import type { Point } from '../../src/core/point.js';
import { SimulatorInput } from './simulator.js';

const log: Logger = { debug: () => {}, info: () => {}, warn: () => {}, error: () => {}, child: () => log };

function run(id: string, ticks: number): Point[] {
  const written: Point[] = [];
  const ctx: InputContext = { id, log, agentId: 'test', dataDir: '.', sink: { write: (p) => (written.push(...p), Promise.resolve()) } };
  const sim = new SimulatorInput({ series: 4, intervalMs: 1000, measurement: 'demo', tags: { site: 'lab' } }, ctx);
  for (let i = 0; i < ticks; i++) sim.tick(1_700_000_000_000 + i * 1000);
  return written;
}

describe('simulator', () => {
  it('produces one point per series per tick with the documented fields and types', () => {
    const points = run('demo', 50);
    expect(points).toHaveLength(200);
    expect(new Set(points.map((p) => p.tags.sensor))).toEqual(new Set(['s000', 's001', 's002', 's003']));
    for (const p of points) {
      expect(p.measurement).toBe('demo');
      expect(p.tags.site).toBe('lab');
      const { temperature, humidity, counter, alarm } = p.fields as { temperature: number; humidity: number; counter: bigint; alarm: boolean };
      expect(Math.round(temperature * 100) / 100).toBe(temperature);
      expect(Math.round(humidity * 10) / 10).toBe(humidity);
      expect(humidity).toBeGreaterThanOrEqual(0);
      expect(humidity).toBeLessThanOrEqual(100);
      expect(typeof counter).toBe('bigint');
      expect(typeof alarm).toBe('boolean');
    }
    const s0 = points.filter((p) => p.tags.sensor === 's000').map((p) => p.fields.counter as bigint);
    for (let i = 1; i < s0.length; i++) expect(s0[i] > s0[i - 1]).toBe(true);
  });

  it('is reproducible per input id and differs between ids', () => {
    expect(run('a', 10)).toEqual(run('a', 10));
    expect(run('a', 10)).not.toEqual(run('b', 10));
  });

  it('takes one reading per interval slot even when the event loop is late, so the series has no hole', async () => {
    const times: number[] = [];
    let blockedOnce = false;
    const ctx: InputContext = {
      id: 'late',
      log,
      agentId: 'test',
      dataDir: '.',
      sink: {
        write: (p) => {
          times.push(...p.map((x) => x.timeUs / 1000));
          // The first writes hold the loop past the next slot, as a cold start or a busy loop does.
          if (!blockedOnce) {
            blockedOnce = true;
            const until = Date.now() + 30;
            while (Date.now() < until);
          }
          return Promise.resolve();
        },
      },
    };
    const sim = new SimulatorInput({ series: 1, intervalMs: 20, measurement: 'm', tags: {} }, ctx);
    await sim.start();
    await new Promise((r) => setTimeout(r, 300));
    await sim.stop();
    expect(times.length).toBeGreaterThan(5);
    for (let i = 1; i < times.length; i++) {
      expect(times[i] - times[i - 1], `gap before ${times[i]}`).toBeGreaterThan(0);
      expect(times[i] - times[i - 1], `gap before ${times[i]}`).toBeLessThanOrEqual(20);
      // Every reading after the first is on the interval's grid.
      expect(times[i] % 20).toBe(0);
    }
  });
});
