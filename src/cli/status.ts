import { SqliteRing } from '../store/ring.js';
import type { StoreSettings } from './settings.js';
import { readFleetStatusFiles } from '../fleet/state.js';

function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB'];
  let v = n;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return `${v.toFixed(u === 0 ? 0 : 1)} ${units[u]}`;
}

function formatDuration(seconds: number): string {
  if (seconds >= 86_400) return `${(seconds / 86_400).toFixed(1)} days`;
  if (seconds >= 3600) return `${(seconds / 3600).toFixed(1)} hours`;
  return `${Math.round(seconds / 60)} minutes`;
}

function formatTime(ms: number | null): string {
  return ms === null ? '-' : new Date(ms).toISOString();
}

/** `sluice status`: the store and its outputs, as text or as the JSON the README's Command line section lists (status --json). */
export function runStatus(settings: StoreSettings, json: boolean): number {
  const ring = SqliteRing.open({ ...settings.ring, readonly: true });
  try {
    const s = ring.status();
    if (json) {
      // `config` and `fleet` (reload errors, fleet serials, rollbacks) when the agent has recorded any.
      process.stdout.write(JSON.stringify({ ...s, ...readFleetStatusFiles(settings.ring.dataDir) }, null, 2) + '\n');
      return 0;
    }
    const lines = [
      `store      ${ring.file}`,
      `size       ${formatBytes(s.store_bytes)} of ${formatBytes(s.capacity_bytes)} (${((100 * s.store_bytes) / s.capacity_bytes).toFixed(1)}%), when full: ${s.when_full}`,
      `data       ${s.points} points, ${s.values} values, ${s.series} series` +
        (s.values ? `, ${((8 * s.store_bytes) / s.values).toFixed(2)} bits/value on disk` : ''),
      `range      ${formatTime(s.oldest_ms)} .. ${formatTime(s.newest_ms)}`,
      `tiers      ${Object.entries(s.tiers).map(([t, v]) => `${t}: ${v.rows} rows ${formatTime(v.oldest_ms)} .. ${formatTime(v.newest_ms)}`).join('; ') || '-'}`,
      `runway     ${s.runway_s === null ? '-' : formatDuration(s.runway_s)} until the cap at the last 10 minutes' ingest rate`,
      `dropped    ${Object.keys(s.dropped).length ? Object.entries(s.dropped).map(([k, v]) => `${k}=${v}`).join(' ') : 'none'}`,
    ];
    for (const [id, o] of Object.entries(s.outputs)) {
      lines.push(
        `output ${id}: backlog ${o.backlog_points} points (oldest ${formatTime(o.oldest_unsent_ms)}), sent ${o.sent_points}, rejected ${o.rejected_points}, last success ${formatTime(o.last_success_ms)}` +
          (o.lost_unsent_points ? `, ${o.lost_unsent_points} points left the store before it got them` : '') +
          (s.quarantine[id] ? `, ${s.quarantine[id].points} points in quarantine (${Object.keys(s.quarantine[id].reasons).join(', ')}; sluice quarantine list)` : ''),
      );
    }
    const { config, fleet } = readFleetStatusFiles(settings.ring.dataDir);
    if (config?.last_error) lines.push(`config     ${config.last_error}`);
    if (fleet) lines.push(`fleet      serial ${fleet.serial ?? '-'}, config serial ${fleet.config_serial ?? '-'}${fleet.last_error ? `; last error: ${fleet.last_error}` : ''}`);
    process.stdout.write(lines.join('\n') + '\n');
    return 0;
  } finally {
    ring.close();
  }
}
