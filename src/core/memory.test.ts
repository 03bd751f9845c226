// The memory plan: one setting gives the heap flags and the byte budgets; a shared budget calls its
// waiters back once commits have freed a quarter of it, not at the first byte below the limit.
import { describe, expect, it } from 'vitest';
import { ByteBudget, memoryBudgets } from './memory.js';

const MiB = 1024 * 1024;

describe('memoryBudgets', () => {
  it('derives the default from 96MiB as the systemd unit used to set it, and scales', () => {
    expect(memoryBudgets(96 * MiB)).toEqual({ limitBytes: 96 * MiB, heapOldMb: 96, heapYoungMb: 3, intakeBytes: 6 * MiB, ringPendingBytes: 6 * MiB, syncBatchBytes: 12 * MiB });
    expect(memoryBudgets(1024 * MiB)).toMatchObject({ heapOldMb: 1024, heapYoungMb: 12, intakeBytes: 64 * MiB });
  });
});

describe('ByteBudget', () => {
  it('is exhausted at its limit and wakes waiters below three quarters, once', () => {
    const b = new ByteBudget(1000);
    let woken = 0;
    b.take(1000);
    expect(b.exhausted).toBe(true);
    b.onFreed(() => woken++);
    b.release(200);
    expect(woken).toBe(0);
    b.release(100);
    expect(woken).toBe(1);
    b.release(500);
    expect(woken).toBe(1);
    expect(b.used).toBe(200);
    const cancel = b.onFreed(() => woken++);
    cancel();
    b.release(200);
    expect(woken).toBe(1);
  });
});
