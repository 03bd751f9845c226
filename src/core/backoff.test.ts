// The one backoff: exponential from minMs, capped at maxMs, spread by ±jitter, reset after a success.
import { describe, expect, it } from 'vitest';
import { Backoff } from './backoff.js';

describe('Backoff', () => {
  it.each([
    { minMs: 500, maxMs: 30_000, random: 0.5, delays: [500, 1000, 2000, 4000, 8000, 16000, 30000, 30000] },
    { minMs: 100, maxMs: 250, random: 0.5, delays: [100, 200, 250, 250] },
    // the Modbus buses' reconnects (drivers/modbus/bus.ts DEFAULT_BUS_TUNING): 250 ms doubling to 15 s
    { minMs: 250, maxMs: 15_000, random: 0.5, delays: [250, 500, 1000, 2000, 4000, 8000, 15000, 15000] },
    // jitter ±20 %, never beyond the cap
    { minMs: 1000, maxMs: 2000, random: 0, delays: [800, 1600, 1600] },
    { minMs: 1000, maxMs: 2000, random: 0.999999, delays: [1200, 2000, 2000] },
  ])('min $minMs max $maxMs random $random', ({ minMs, maxMs, random, delays }) => {
    const b = new Backoff({ minMs, maxMs, random: () => random });
    expect(delays.map(() => b.nextDelayMs())).toEqual(delays);
    b.reset();
    expect(b.nextDelayMs()).toBe(delays[0]);
  });
});
