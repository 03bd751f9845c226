import type { Readable } from 'node:stream';
import { nowUs } from '../core/time.js';
import { readLineProtocol } from '../io/line-reader.js';
import { BulkWriter } from '../store/bulk.js';
import { SqliteRing } from '../store/ring.js';
import { parsePrecision } from './args.js';
import type { StoreSettings } from './settings.js';

/** Rejected lines are listed on stderr up to this many; the summary counts them all. */
const MAX_LISTED_REJECTS = 100;

/**
 * `sluice import`: appends line protocol to the ring. Durable when it returns. Bad lines are rejected
 * with their numbers, the rest stored. Prints {"points","values","rejected","dropped"} on stdout.
 */
export async function runImport(settings: StoreSettings, input: Readable, precisionFlag: string | undefined): Promise<number> {
  const precision = parsePrecision(precisionFlag, 'ns');
  const ring = SqliteRing.open(settings.ring);
  const progress = process.stderr.isTTY ? new Progress() : undefined;
  let points = 0;
  let rejected = 0;
  try {
    const writer = new BulkWriter(ring, 4096);
    for await (const batch of readLineProtocol(input, { precision, defaultTimeUs: nowUs(), batchSize: 1000 })) {
      writer.add(batch.points);
      points += batch.points.length;
      for (const r of batch.rejects) {
        if (rejected++ < MAX_LISTED_REJECTS) process.stderr.write(`line ${r.line}: ${r.error}\n`);
      }
      progress?.update(points);
    }
    const result = writer.finish();
    // Closed windows of the imported data are rolled up before returning, so queries answer from them.
    ring.rollUp();
    progress?.done();
    if (rejected > MAX_LISTED_REJECTS) process.stderr.write(`… ${rejected - MAX_LISTED_REJECTS} more rejected lines not listed\n`);
    if (result.dropped > 0) process.stderr.write(`store full (when_full: drop_newest): ${result.dropped} points not stored\n`);
    process.stdout.write(JSON.stringify({ points: points - result.dropped, values: result.values, rejected, dropped: result.dropped }) + '\n');
    return rejected > 0 || result.dropped > 0 ? 1 : 0;
  } finally {
    ring.close();
  }
}

/** A one-line progress report on a terminal, at most a few times a second. */
class Progress {
  private readonly startMs = Date.now();
  private lastMs = 0;

  update(points: number): void {
    const now = Date.now();
    if (now - this.lastMs < 250) return;
    this.lastMs = now;
    const rate = Math.round(points / Math.max(0.001, (now - this.startMs) / 1000));
    process.stderr.write(`\rimported ${points.toLocaleString('en')} points (${rate.toLocaleString('en')}/s)`);
  }

  done(): void {
    process.stderr.write('\n');
  }
}
