// What the store-reading commands take from `-c FILE` or `--data-dir DIR`.
import { formatConfigError, loadConfig, type Config } from '../config/index.js';
import type { RingOptions } from '../store/ring.js';

export class ConfigLoadError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigLoadError';
  }
}

export interface StoreSettings {
  ring: RingOptions;
  config: Config;
}

/** Loads a config file (or the embedded default) and fails with every error listed. */
export function loadConfigOrThrow(file: string | undefined): Config {
  const result = file === undefined ? loadConfig({ embeddedDefault: true }) : loadConfig({ file });
  if (!result.ok) throw new ConfigLoadError(result.errors.map(formatConfigError).join('\n'));
  return result.config;
}

export function ringOptions(config: Config, dataDir?: string): RingOptions {
  return {
    dataDir: dataDir ?? config.agent.data_dir,
    maxBytes: config.buffer.max_size,
    whenFull: config.buffer.when_full,
    commitIntervalMs: config.agent.commit_interval,
    rollupWindowsMs: config.aggregate.windows,
  };
}

export function storeSettings(configFile: string | undefined, dataDir: string | undefined): StoreSettings {
  const config = loadConfigOrThrow(configFile);
  const ring = ringOptions(config, dataDir);
  // Without -c, a command keeps the rollup windows the store already has rather than the defaults.
  if (configFile === undefined) delete ring.rollupWindowsMs;
  return { config, ring };
}
