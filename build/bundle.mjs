// Bundles the TypeScript sources into dist/sluice.js for `npx sluice` and the tests.
// esbuild rather than tsc: one file starts faster (the start-time target) and the same bundle
// feeds the single binary. Type checking is `npm run typecheck`.
import { build } from 'esbuild';
import { readFileSync } from 'node:fs';

const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8'));

await build({
  entryPoints: ['src/cli/main.ts'],
  outfile: 'dist/sluice.js',
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'esm',
  packages: 'external',
  sourcemap: 'linked',
  loader: { '.yaml': 'text', '.html': 'text' },
  define: { SLUICE_VERSION: JSON.stringify(process.env.SLUICE_VERSION ?? pkg.version) },
  logLevel: 'warning',
});
