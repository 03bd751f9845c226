// From an output's config (the keys of outputCommon) to the engine's settings.
import type { Resolution } from '../core/schema/kit.js';
import { DEFAULT_SYNC, type SyncSettings } from './engine.js';

export interface OutputCommonConfig {
  resolution: Resolution;
  batch_size: number;
  flush_interval: number;
  timeout: number;
  max_rate?: number;
}

export function syncSettings(config: OutputCommonConfig, overrides: Partial<SyncSettings> = {}): SyncSettings {
  return {
    ...DEFAULT_SYNC,
    batchPoints: config.batch_size,
    flushIntervalMs: config.flush_interval,
    timeoutMs: config.timeout,
    maxRatePointsPerS: config.max_rate,
    // Look for new records often enough that flush_interval is kept, but not busily.
    pollMs: Math.max(20, Math.min(DEFAULT_SYNC.pollMs, Math.floor(config.flush_interval / 2))),
    // A lane that waits longer than a few flushes is behind.
    liveLagMs: Math.max(DEFAULT_SYNC.liveLagMs, 3 * config.flush_interval),
    liveWindowMs: Math.max(DEFAULT_SYNC.liveWindowMs, 2 * config.flush_interval),
    ...overrides,
  };
}
