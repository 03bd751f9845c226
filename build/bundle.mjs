// Bundles the TypeScript sources into dist/sluice.js for `npx sluice` and the tests.
// esbuild rather than tsc: one file starts faster (the start-time target) and the same bundle
// feeds the single binary. Type checking is `npm run typecheck`.
import { build } from 'esbuild';
import { readFileSync, rmSync } from 'node:fs';

const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8'));

// Splitting: drivers are imported when a config names them (src/agent/registry.ts), and their
// libraries (mqtt, pg, serialport, the InfluxDB client) with them; in one file esbuild would hoist
// those imports to the top and load them all at start.
rmSync('dist', { recursive: true, force: true });
await build({
  entryPoints: { sluice: 'src/cli/main.ts' },
  outdir: 'dist',
  chunkNames: 'chunks/[name]-[hash]',
  splitting: true,
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
