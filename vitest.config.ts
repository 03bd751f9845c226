import { readFileSync } from 'node:fs';
import { defineConfig } from 'vitest/config';

/**
 * Tests that assert a latency promise (live data within 2 s of an upstream's recovery) run on their
 * own after the rest, so the other worker's load cannot make them measure the machine instead.
 */
const ALONE = ['test/sync-outage.test.ts'];

const plugins = [
  // `.yaml` imports are text, as with esbuild's `loader: { '.yaml': 'text' }` in build/bundle.mjs.
  { name: 'yaml-as-text', load: (id: string) => (id.endsWith('.yaml') ? `export default ${JSON.stringify(readFileSync(id, 'utf8'))};` : undefined) },
  // The status page (src/http/page.html), as esbuild's `.html` text loader does.
  { name: 'html-as-text', enforce: 'pre' as const, load: (id: string) => (id.endsWith('.html') ? `export default ${JSON.stringify(readFileSync(id, 'utf8'))};` : undefined) },
];

const common = { testTimeout: 60_000, hookTimeout: 60_000 };

export default defineConfig({
  plugins,
  test: {
    // Peers (mosquitto, influxd, postgres) bind loopback ports; a 2-core CI box runs files two at a time.
    maxWorkers: 2,
    projects: [
      {
        plugins,
        test: { ...common, name: 'main', include: ['test/**/*.test.ts', 'drivers/**/*.test.ts', 'src/**/*.test.ts'], exclude: ALONE, sequence: { groupOrder: 0 } },
      },
      {
        plugins,
        test: { ...common, name: 'alone', include: ALONE, fileParallelism: false, sequence: { groupOrder: 1 } },
      },
    ],
  },
});
