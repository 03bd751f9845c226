import { serializeLine, type SerializeStats } from '../core/line-protocol.js';
import { SqliteRing } from '../store/ring.js';
import { parsePrecision, parseTimeUs } from './args.js';
import { groupRows } from '../query/rows.js';
import type { StoreSettings } from './settings.js';
import { BufferedWriter } from './stdout.js';

/** `sluice export`: stored raw points as line protocol on stdout, series by series, in time order. */
export async function runExport(
  settings: StoreSettings,
  flags: { precision?: string; from?: string; to?: string; measurement?: string },
): Promise<number> {
  const precision = parsePrecision(flags.precision, 'ns');
  const fromUs = flags.from === undefined ? undefined : parseTimeUs(flags.from, '--from');
  const toUs = flags.to === undefined ? undefined : parseTimeUs(flags.to, '--to');
  const ring = SqliteRing.open({ ...settings.ring, readonly: true });
  const out = new BufferedWriter();
  const stats: SerializeStats = { skippedFields: 0, skippedPoints: 0 };
  try {
    for (const s of ring.scan({ measurement: flags.measurement, fromUs, toUs })) {
      for (const row of groupRows(s.group)) {
        const line = serializeLine(s.key, row.fields, row.timeUs, precision, stats);
        if (line) await out.write(line + '\n');
      }
    }
    await out.flush();
    if (stats.skippedFields > 0 || stats.skippedPoints > 0) {
      process.stderr.write(
        `export: line protocol cannot hold ${stats.skippedFields} field values (NaN or ±Infinity) and ${stats.skippedPoints} points (no writable field, or a time out of range); they were left out\n`,
      );
    }
    return 0;
  } finally {
    ring.close();
  }
}
