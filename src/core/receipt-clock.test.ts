// Inputs whose messages carry no time (MQTT without a time key, OPC UA's agent timestamps) stamp them
// with this clock: readings received in the same millisecond must still be distinct points, in order.
import { afterEach, describe, expect, it, vi } from 'vitest';
import { ReceiptClock } from './time.js';

afterEach(() => vi.restoreAllMocks());

describe('ReceiptClock', () => {
  it('counts receipts within one ms in the µs digits, starts again at the next ms, and never leaves the ms', () => {
    const now = vi.spyOn(Date, 'now');
    const clock = new ReceiptClock();
    now.mockReturnValue(1_700_000_000_000);
    expect([clock.nowUs(), clock.nowUs(), clock.nowUs()]).toEqual([1_700_000_000_000_000, 1_700_000_000_000_001, 1_700_000_000_000_002]);
    now.mockReturnValue(1_700_000_000_001);
    expect(clock.nowUs()).toBe(1_700_000_000_001_000);
    // A thousand and more in one ms: they stay inside it (the last ones share 999) rather than run into the next ms.
    for (let i = 0; i < 1500; i++) expect(Math.floor(clock.nowUs() / 1000)).toBe(1_700_000_000_001);
  });
});
