// How a ring is opened, and the settings its modules share once defaults are filled in.
import type { WhenFull } from './roles.js';

export interface RingOptions {
  dataDir: string;
  maxBytes: number;
  whenFull: WhenFull;
  commitIntervalMs: number;
  readonly?: boolean;
  /** Rows per compacted chunk: larger compresses better, smaller evicts and delivers at a finer grain. */
  maxChunkRows?: number;
  /** Points waiting for a group commit before one is forced early (bounds memory under bursts). */
  maxPendingValues?: number;
  /** Rollup windows (aggregate.windows), shortest first, each a multiple of the one before. */
  rollupWindowsMs?: readonly number[];
  /**
   * SQLite's page cache for this connection. better-sqlite3 builds SQLite with a 16 MB default, which
   * a store larger than that fills over minutes (steady RSS growth on a small box); the hot pages (the
   * B-tree interiors, the newest chunks the compactor rereads) fit in far less.
   */
  cacheBytes?: number;
  /** Called once per condition worth a log line (the agent passes its logger). */
  onWarning?: (message: string, details?: Record<string, unknown>) => void;
}

/** RingOptions with its defaults applied (rollup windows sorted, shortest first). */
export type RingSettings = Required<Omit<RingOptions, 'onWarning' | 'readonly'>> & Pick<RingOptions, 'onWarning'>;

const DEFAULT_MAX_CHUNK_ROWS = 4096;
const DEFAULT_MAX_PENDING_VALUES = 250_000;
/** See RingOptions.cacheBytes. */
export const DEFAULT_CACHE_BYTES = 2 * 1024 * 1024;

/** `storedWindows`: the windows the store recorded, used when the caller names none. */
export function settingsOf(options: RingOptions, storedWindows: () => readonly number[]): RingSettings {
  return {
    dataDir: options.dataDir,
    maxBytes: options.maxBytes,
    whenFull: options.whenFull,
    commitIntervalMs: options.commitIntervalMs,
    maxChunkRows: options.maxChunkRows ?? DEFAULT_MAX_CHUNK_ROWS,
    maxPendingValues: options.maxPendingValues ?? DEFAULT_MAX_PENDING_VALUES,
    cacheBytes: options.cacheBytes ?? DEFAULT_CACHE_BYTES,
    rollupWindowsMs: [...(options.rollupWindowsMs ?? storedWindows())].sort((a, b) => a - b),
    onWarning: options.onWarning,
  };
}
