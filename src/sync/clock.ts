// When each record id was first seen: the engine samples "newest id at time t" as it polls, which tells
// how old a record is (an upper bound of its write time) without reading it, and where the live mark
// goes when older records move to the backfill.

/** Samples kept: at most this many, and none older than SAMPLE_KEEP_MS beyond the first two. */
const MAX_SAMPLES = 4096;
const SAMPLE_KEEP_MS = 10 * 60_000;

interface IdSample {
  id: number;
  atMs: number;
}

export class IdClock {
  private readonly samples: IdSample[] = [];
  private newestId = 0;

  /** Starts the clock at `id` (what exists when the output starts). */
  reset(id: number, nowMs: number): void {
    this.samples.length = 0;
    this.samples.push({ id, atMs: nowMs });
    this.newestId = id;
  }

  /** The newest id now; returns true when it is new. */
  note(id: number, nowMs: number): boolean {
    if (id <= this.newestId) return false;
    this.newestId = id;
    this.samples.push({ id, atMs: nowMs });
    while (this.samples.length > MAX_SAMPLES || (this.samples.length > 2 && this.samples[1].atMs < nowMs - SAMPLE_KEEP_MS)) this.samples.shift();
    return true;
  }

  /** When the record with this id was first seen (an upper bound of when it was written). */
  seenAt(id: number, nowMs: number): number {
    for (const s of this.samples) if (s.id >= id) return s.atMs;
    return nowMs;
  }

  /** The newest id, at most `lastId`, first seen no later than `cutoffMs`. */
  seenBefore(cutoffMs: number, lastId: number): number {
    let id = 0;
    for (const s of this.samples) {
      if (s.atMs > cutoffMs) break;
      id = Math.max(id, Math.min(s.id, lastId));
    }
    return id;
  }
}
