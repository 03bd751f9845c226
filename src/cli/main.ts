// The `sluice` entry point. It stays small on purpose: `sluice run` first starts itself again with its
// memory limits (src/cli/limits.ts), and the process that only waits for that child should hold no
// more than Node itself, so everything else (the commands, the config schema and its validator, the
// store) is imported only where it runs (commands.ts). In the single binary this import is a lazy
// module too (esbuild wraps what is reached only through import()).
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { parse } from 'yaml';
import { expandEnv } from '../config/env.js';
import { DEFAULT_MEMORY_LIMIT } from '../core/memory.js';
import { sizeBytes } from '../core/schema/units.js';
import { runWithOwnLimits, wantsOwnLimits } from './limits.js';

/**
 * agent.memory_limit of the config `sluice run` was given, read without validating the config: the
 * child validates it and reports every error with its position; here anything unreadable means the
 * default, and the child then says why the config is wrong.
 */
function memoryLimitOf(args: string[]): number {
  const fallback = sizeBytes(DEFAULT_MEMORY_LIMIT);
  try {
    const { values } = parseArgs({ args, options: { config: { type: 'string', short: 'c' }, 'data-dir': { type: 'string' } }, strict: true });
    if (values.config === undefined) return fallback;
    const doc = parse(readFileSync(values.config, 'utf8')) as { agent?: { memory_limit?: unknown } } | null;
    const raw = doc?.agent?.memory_limit;
    if (typeof raw !== 'string') return fallback;
    const expanded = expandEnv(raw, process.env);
    return expanded.ok ? sizeBytes(expanded.value) : fallback;
  } catch {
    return fallback;
  }
}

async function entry(): Promise<void> {
  const argv = process.argv.slice(2);
  if (argv[0] === 'run' && wantsOwnLimits()) {
    const code = await runWithOwnLimits(argv, memoryLimitOf(argv.slice(1)));
    if (code !== undefined) {
      process.exitCode = code;
      return;
    }
  }
  const { runCommandLine } = await import('./commands.js');
  process.exitCode = await runCommandLine(argv);
}

// Not a top-level await: the single binary bundles this file as CommonJS (build/bin.mjs), which has none.
void entry();
