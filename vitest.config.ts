import { readFileSync } from 'node:fs';
import { defineConfig } from 'vitest/config';

export default defineConfig({
  // `.yaml` imports are text, as with esbuild's `loader: { '.yaml': 'text' }` in build/bundle.mjs.
  plugins: [
    { name: 'yaml-as-text', load: (id) => (id.endsWith('.yaml') ? `export default ${JSON.stringify(readFileSync(id, 'utf8'))};` : undefined) },
    // The status page (src/http/page.html), as esbuild's `.html` text loader does.
    { name: 'html-as-text', enforce: 'pre', load: (id) => (id.endsWith('.html') ? `export default ${JSON.stringify(readFileSync(id, 'utf8'))};` : undefined) },
  ],
  test: {
    include: ['test/**/*.test.ts', 'drivers/**/*.test.ts', 'src/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // Peers (mosquitto, influxd, postgres) bind loopback ports; a 2-core CI box runs files two at a time.
    maxWorkers: 2,
  },
});
