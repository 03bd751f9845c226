// SqliteRing as the ring contract opens it (shared by ring.test.ts and the suite's own test).
import { SqliteRing } from '../../src/store/ring.js';
import type { OpenRing } from './ring-contract.js';

export const openSqliteRing: OpenRing = (dataDir, s) =>
  SqliteRing.open({ dataDir, maxBytes: s.maxBytes, whenFull: s.whenFull, rollupWindowsMs: s.rollupWindowsMs, commitIntervalMs: 5 });
