// `sluice quarantine list|export|retry|drop`: the points an upstream refused for good (src/store/quarantine.ts).
// They work while the agent runs: the store is opened beside it like `import` does (SQLite's WAL lets
// one writer at a time in; the agent's next lease sees what a retry wrote back).
import { serializeLine, type SerializeStats } from '../core/line-protocol.js';
import { groupRows } from '../query/rows.js';
import { SqliteRing } from '../store/ring.js';
import { UsageError, parsePrecision } from './args.js';
import type { StoreSettings } from './settings.js';
import { BufferedWriter } from './stdout.js';

export interface QuarantineFlags {
  output?: string;
  reason?: string;
  precision?: string;
  json?: boolean;
}

function iso(ms: number | null): string {
  return ms === null ? '-' : new Date(ms).toISOString();
}

export async function runQuarantine(settings: StoreSettings, sub: string | undefined, flags: QuarantineFlags): Promise<number> {
  if (sub !== 'list' && sub !== 'export' && sub !== 'retry' && sub !== 'drop') throw new UsageError('quarantine needs a subcommand: list, export, retry or drop');
  if (sub !== 'list' && !flags.output) throw new UsageError(`quarantine ${sub} needs --output ID`);
  const ring = SqliteRing.open({ ...settings.ring, readonly: sub === 'list' || sub === 'export' });
  try {
    if (sub === 'list') return list(ring, flags);
    const output = flags.output!;
    const known = Object.keys(ring.status().outputs);
    if (!known.includes(output)) throw new UsageError(`no output "${output}" in this store (outputs: ${known.join(', ') || 'none'})`);
    if (sub === 'export') return await exportLines(ring, output, flags);
    const points = sub === 'retry' ? ring.retryQuarantined(output, flags.reason) : ring.dropQuarantined(output, flags.reason);
    process.stdout.write(JSON.stringify({ output, reason: flags.reason ?? null, [sub === 'retry' ? 'retried_points' : 'dropped_points']: points }) + '\n');
    return 0;
  } finally {
    ring.close();
  }
}

function list(ring: SqliteRing, flags: QuarantineFlags): number {
  const all = ring.quarantineStatus();
  const shown = flags.output === undefined ? all : flags.output in all ? { [flags.output]: all[flags.output] } : {};
  if (flags.json) {
    process.stdout.write(JSON.stringify(shown, null, 2) + '\n');
    return 0;
  }
  const lines: string[] = [];
  for (const [id, q] of Object.entries(shown)) {
    lines.push(`output ${id}: ${q.points} points, ${q.values} values, ${q.bytes} bytes, ${iso(q.oldest_ms)} .. ${iso(q.newest_ms)}`);
    for (const [reason, r] of Object.entries(q.reasons)) {
      lines.push(`  ${reason}: ${r.points} points ${iso(r.oldest_ms)} .. ${iso(r.newest_ms)}, refused ${iso(r.first_refused_ms)} .. ${iso(r.last_refused_ms)}`);
      lines.push(`    last: ${r.last_message}`);
    }
  }
  process.stdout.write((lines.length > 0 ? lines.join('\n') : 'quarantine empty') + '\n');
  return 0;
}

async function exportLines(ring: SqliteRing, output: string, flags: QuarantineFlags): Promise<number> {
  const precision = parsePrecision(flags.precision, 'ns');
  const out = new BufferedWriter();
  const stats: SerializeStats = { skippedFields: 0, skippedPoints: 0 };
  for (const part of ring.quarantined(output, flags.reason)) {
    for (const row of groupRows(part.group)) {
      const line = serializeLine(part.seriesKey, row.fields, row.timeUs, precision, stats);
      if (line) await out.write(line + '\n');
    }
  }
  await out.flush();
  if (stats.skippedFields > 0 || stats.skippedPoints > 0) {
    process.stderr.write(`quarantine export: line protocol cannot hold ${stats.skippedFields} field values and ${stats.skippedPoints} points; they were left out\n`);
  }
  return 0;
}
