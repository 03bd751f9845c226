// The import checker that `npm run lint` runs (build/check-imports.mjs): the repository passes it, and
// it fails on each kind of violation, shown on small trees of its own.
import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { tmpDir } from './helpers/tmp.js';

const CHECKER = fileURLToPath(new URL('../build/check-imports.mjs', import.meta.url));

function check(tree?: Record<string, string>): { status: number | null; out: string } {
  let dir: string | undefined;
  if (tree) {
    dir = tmpDir('sluice-layers-');
    for (const [file, text] of Object.entries(tree)) {
      mkdirSync(dirname(join(dir, file)), { recursive: true });
      writeFileSync(join(dir, file), text);
    }
  }
  const r = spawnSync(process.execPath, dir ? [CHECKER, dir] : [CHECKER], { encoding: 'utf8' });
  return { status: r.status, out: r.stdout + r.stderr };
}

describe('layers that point down (build/check-imports.mjs)', () => {
  it('the repository passes', () => {
    const r = check();
    expect(r.out).toContain('layers point down, no cycles');
    expect(r.status).toBe(0);
  });

  it('an import up a layer fails, naming the file and the layer', () => {
    const r = check({ 'src/core/point.ts': "import type { Config } from '../config/index.js';\n", 'src/config/index.ts': 'export type Config = 1;\n' });
    expect(r.status).toBe(1);
    expect(r.out).toContain('src/core/point.ts: imports ../config/index.js (src/config), which is above src/core');
  });

  it('a driver importing anything but the core fails', () => {
    const r = check({ 'drivers/x/x.ts': "import { ring } from '../../src/store/ring.js';\n", 'src/store/ring.ts': 'export const ring = 1;\n' });
    expect(r.status).toBe(1);
    expect(r.out).toContain('a driver imports only src/core');
  });

  it('only the agent and the CLI open a store: any other layer importing the ring fails, a role passes', () => {
    const store = { 'src/store/ring.ts': 'export class SqliteRing {}\n', 'src/store/roles.ts': 'export interface StoreReader { x: 1 }\n' };
    const r = check({ ...store, 'src/http/series.ts': "import type { SqliteRing } from '../store/ring.js';\nexport type R = SqliteRing;\n" });
    expect(r.status).toBe(1);
    expect(r.out).toContain('src/http/series.ts: imports ../store/ring.js; only src/agent and src/cli open a store');
    const sqlite = check({ ...store, 'src/query/q.ts': "import Database from 'better-sqlite3';\nexport const D = Database;\n" });
    expect(sqlite.status).toBe(1);
    expect(sqlite.out).toContain('src/query/q.ts: imports better-sqlite3; only src/store opens a database');
    const ok = check({
      ...store,
      'src/http/series.ts': "import type { StoreReader } from '../store/roles.js';\nexport type R = StoreReader;\n",
      'src/cli/status.ts': "import { SqliteRing } from '../store/ring.js';\nexport const R = SqliteRing;\n",
      'src/agent/agent.ts': "import { SqliteRing } from '../store/ring.js';\nexport const R = SqliteRing;\n",
    });
    expect(ok.out).toContain('layers point down, no cycles');
    expect(ok.status).toBe(0);
  });

  it('a cycle fails, also inside one folder and through type-only imports', () => {
    const r = check({ 'src/core/a.ts': "import type { B } from './b.js';\nexport type A = B;\n", 'src/core/b.ts': "import './a.js';\nexport type B = 1;\n" });
    expect(r.status).toBe(1);
    expect(r.out).toContain('import cycle: src/core/a.ts -> src/core/b.ts');
  });
});
