import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts', 'drivers/**/*.test.ts', 'src/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // Peers (mosquitto, influxd, postgres) bind loopback ports; a 2-core CI box runs files two at a time.
    maxWorkers: 2,
  },
});
