// The agent's memory plan: one setting (agent.memory_limit, the resident memory the agent may use)
// divided into the budgets of everything whose size would otherwise follow the arrival rate or the
// backlog. Pure: `sluice run` derives the V8 heap flags of the agent's process from it (src/cli/limits.ts),
// the agent hands the intake budget to its inputs, and the ring and the sync engine may take their
// shares from the same object.
//
// How the limit is divided (the default, 96 MiB, is the Pi-class promise "never more than 80 MB in
// steady state" plus headroom for a drain, on a 512 MB box):
// - about 40 MB is not the heap at all: Node's code and the binary's mapped pages (file-backed,
//   reclaimable), the libraries, SQLite's page cache, malloc arenas. That part does not scale with
//   the limit; a limit below MIN_MEMORY_LIMIT_BYTES leaves too little for a heap.
// - V8's old generation limit is the memory limit in MB (a ceiling, see below); young generation 3 MB (1 MB semi-space,
//   what the systemd unit used to set): a small young generation collects sooner, and at 10k points/s
//   that kept private memory at ~35 MB where Node's defaults let it grow to ~70 MB.
// - The intake budget bounds what inputs hold between receipt and the group commit that makes it
//   durable (MQTT messages in flight and their decoded points). When it is used up, inputs stop
//   reading (MQTT: the socket is paused, so the broker keeps the backlog) until commits free it.
// - The ring's pending points and the sync engine's prepared batches have budgets of the same kind.

/** Smallest memory_limit that leaves a usable heap beside Node's fixed cost. */
export const MIN_MEMORY_LIMIT_BYTES = 64 * 1024 * 1024;
export const DEFAULT_MEMORY_LIMIT = '96MiB';

const MiB = 1024 * 1024;

export interface MemoryBudgets {
  /** agent.memory_limit. */
  limitBytes: number;
  /** V8 old generation of the agent, MB (--max-old-space-size). */
  heapOldMb: number;
  /** V8 young generation, MB (three semi-spaces' worth: --max-semi-space-size is a third of it). */
  heapYoungMb: number;
  /** What all inputs together hold between receipt and commit. */
  intakeBytes: number;
  /** Points waiting in the ring for their group commit. */
  ringPendingBytes: number;
  /** Batches the sync engine has prepared and not yet sent. */
  syncBatchBytes: number;
}

export function memoryBudgets(limitBytes: number): MemoryBudgets {
  const limit = Math.max(limitBytes, MIN_MEMORY_LIMIT_BYTES);
  const intakeBytes = Math.round(limit / 16);
  const ringPendingBytes = Math.round(limit / 16);
  const syncBatchBytes = Math.round(limit / 8);
  // The old generation's limit is a ceiling V8 collects harder near, not what it uses: the live heap
  // at 10k points/s is ~20 MB, and with this ceiling (the unit's former --max-old-space-size=96 at the
  // default) RSS stays under the limit (npm run bench). A tighter ceiling only trades CPU for nothing.
  const heapOldMb = Math.max(48, Math.round(limit / MiB));
  const heapYoungMb = limit <= 256 * MiB ? 3 : Math.min(48, 3 * Math.round(limit / (256 * MiB)));
  return { limitBytes: limit, heapOldMb, heapYoungMb, intakeBytes, ringPendingBytes, syncBatchBytes };
}

/**
 * A byte budget shared by its users (all inputs share the intake budget): each takes what it holds
 * and gives it back when it is durable. `exhausted` tells a user to stop taking in; `onFreed` calls
 * back once the budget has room again.
 */
export class ByteBudget {
  private usedBytes = 0;
  private readonly waiting = new Set<() => void>();

  constructor(readonly limitBytes: number) {}

  get used(): number {
    return this.usedBytes;
  }

  get exhausted(): boolean {
    return this.usedBytes >= this.limitBytes;
  }

  take(bytes: number): void {
    this.usedBytes += bytes;
  }

  release(bytes: number): void {
    this.usedBytes = Math.max(0, this.usedBytes - bytes);
    // Resume below three quarters, not at the limit: one message more would pause it again at once.
    if (this.usedBytes > this.limitBytes * 0.75 || this.waiting.size === 0) return;
    const callbacks = [...this.waiting];
    this.waiting.clear();
    for (const cb of callbacks) cb();
  }

  /** Calls `cb` once when the budget has room again; returns a function that cancels it. */
  onFreed(cb: () => void): () => void {
    this.waiting.add(cb);
    return () => this.waiting.delete(cb);
  }
}
