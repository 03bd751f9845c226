// The one log throttle: one line per interval, the held-back count on the next, a summary restarts the interval.
import { describe, expect, it } from 'vitest';
import { LogThrottle } from './log-throttle.js';

describe('LogThrottle', () => {
  it('passes one line per interval and says how many it held back', () => {
    const t = new LogThrottle(1000);
    expect(t.pass(0)).toBe(0);
    expect(t.pass(10)).toBeUndefined();
    expect(t.pass(999)).toBeUndefined();
    expect(t.held).toBe(2);
    expect(t.pass(1000)).toBe(2);
    expect(t.pass(1500)).toBeUndefined();
    expect(t.summarized(1600)).toBe(1);
    expect(t.pass(2000)).toBeUndefined();
    expect(t.pass(2600)).toBe(1);
  });
});
