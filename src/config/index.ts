// The config module's public surface: load and validate a config, print its errors, export its schema.
export { loadConfig, defaultConfigText, type LoadOptions, type LoadResult } from './load.js';
export { formatConfigError, formatPath, type ConfigError, type Path, type PathSegment } from '../core/schema/errors.js';
export {
  configSchemaJson,
  WHEN_FULL,
  type SluiceConfig,
  type Config,
  type AgentConfig,
  type BufferConfig,
  type AggregateConfig,
  type RetentionConfig,
  type HttpConfig,
  type WhenFull,
  type InputConfig,
  type OutputConfig,
} from './schema.js';
export type { Resolution } from '../core/schema/kit.js';
export { parseDuration, parseSize, readDuration, readSize, formatDuration, formatSize, durationMs, sizeBytes, type Milliseconds, type Bytes } from '../core/schema/units.js';
export { expandEnv, type Env } from './env.js';

import { formatConfigError, type ConfigError } from '../core/schema/errors.js';

/** Exit status of `sluice check` (and of `run`) for an invalid config: EX_CONFIG from sysexits.h. */
export const EXIT_CONFIG = 78;

/** The lines `sluice check` prints: one per error, in file order. */
export function formatConfigErrors(errors: readonly ConfigError[]): string {
  return errors.map(formatConfigError).join('\n');
}
