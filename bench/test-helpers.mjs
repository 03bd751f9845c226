// The benchmarks start the same real peers as the tests, with the tests' own helpers (test/helpers/*.ts):
// bundled here into plain modules, since node runs the bench without a TypeScript loader.
import { mkdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');

/** `names` of test/helpers/<name>.ts, bundled and imported; their exports merged into one object. */
export async function testHelpers(names) {
  const dir = join(ROOT, 'bench', 'out', 'helpers');
  mkdirSync(dir, { recursive: true });
  await build({
    entryPoints: Object.fromEntries(names.map((n) => [n, join(ROOT, 'test/helpers', `${n}.ts`)])),
    outdir: dir,
    outExtension: { '.js': '.mjs' },
    bundle: true,
    platform: 'node',
    format: 'esm',
    packages: 'external',
    logLevel: 'warning',
  });
  const modules = await Promise.all(names.map((n) => import(join(dir, `${n}.mjs`))));
  return Object.assign({}, ...modules);
}
