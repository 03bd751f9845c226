// The Node build (dist/, made by `npm test` before vitest runs): what an agent loads at start. Drivers'
// libraries are several MB each, so they must stay behind the dynamic imports of
// src/agent/registry.ts; one static import anywhere on the start path would load them for everyone.
import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const ENTRY = fileURLToPath(new URL('../dist/sluice.js', import.meta.url));
const STATIC_IMPORT = /^(?:import|export)\s[^;]*?\sfrom\s*"([^"]+)";?$|^import\s*"([^"]+)";?$/gm;

/** Bare package names imported statically from `entry` and the chunks it statically imports. */
function staticPackages(entry: string): Set<string> {
  const packages = new Set<string>();
  const seen = new Set<string>();
  const visit = (file: string): void => {
    if (seen.has(file)) return;
    seen.add(file);
    for (const m of readFileSync(file, 'utf8').matchAll(STATIC_IMPORT)) {
      const spec = m[1] ?? m[2];
      if (spec.startsWith('.')) visit(resolve(dirname(file), spec));
      else if (!spec.startsWith('node:')) packages.add(spec.startsWith('@') ? spec.split('/').slice(0, 2).join('/') : spec.split('/')[0]);
    }
  };
  visit(entry);
  return packages;
}

/** The commands (src/cli/commands.ts), which the entry imports lazily: `sluice run`'s waiting parent never loads them. */
function commandsChunk(): string {
  const m = /import\("(\.\/chunks\/commands-[^"]+)"\)/.exec(readFileSync(ENTRY, 'utf8'));
  if (!m) throw new Error('dist/sluice.js imports no commands chunk');
  return join(dirname(ENTRY), m[1]);
}

describe('the Node build', () => {
  it('the entry loads only what reading agent.memory_limit needs: the parent of `sluice run` stays small', () => {
    expect([...staticPackages(ENTRY)]).toEqual(['yaml']);
  });

  it('loads no driver library at start: mqtt, pg, serialport and the InfluxDB client come with their drivers', () => {
    const atStart = new Set([...staticPackages(ENTRY), ...staticPackages(commandsChunk())]);
    // The store and the config are always needed: the walk does see packages.
    expect(atStart).toContain('better-sqlite3');
    for (const lib of ['mqtt', 'pg', 'serialport', '@influxdata/influxdb-client']) expect(atStart).not.toContain(lib);
  });

  it('still ships each driver library, in a chunk of its own', () => {
    const all = readFileSync(ENTRY, 'utf8') + readFileSync(commandsChunk(), 'utf8');
    // The registry's dynamic imports name the driver chunks (from the entry or from the commands).
    const chunks = [...all.matchAll(/import\("\.?\.?\/?(?:chunks\/)?([^"/]+\.js)"\)/g)].map((m) => join(dirname(ENTRY), 'chunks', m[1]));
    const reachable = new Set(chunks.flatMap((c) => [...staticPackages(c)]));
    for (const lib of ['mqtt', 'pg', 'serialport', '@influxdata/influxdb-client']) expect(reachable).toContain(lib);
  });
});
