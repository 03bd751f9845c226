import { formatConfigError, loadConfig } from '../config/index.js';

/** `sluice check -c FILE`: 0 when valid; every error as FILE:LINE:COL: key.path: message and 78 otherwise. */
export function runCheck(file: string): number {
  const result = loadConfig({ file });
  if (result.ok) {
    process.stdout.write(`${file}: ok\n`);
    return 0;
  }
  for (const err of result.errors) process.stderr.write(formatConfigError(err) + '\n');
  return 78;
}
