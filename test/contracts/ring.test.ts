// SqliteRing keeps the ring's promises (test/contracts/ring-contract.ts).
import { describe, it } from 'vitest';
import { SqliteRing } from '../../src/store/ring.js';
import { ringContract, type OpenRing } from './ring-contract.js';

export const openSqliteRing: OpenRing = (dataDir, s) =>
  SqliteRing.open({ dataDir, maxBytes: s.maxBytes, whenFull: s.whenFull, rollupWindowsMs: s.rollupWindowsMs, commitIntervalMs: 5 });

describe('ring contract: SqliteRing', () => {
  for (const check of ringContract('SqliteRing', openSqliteRing)) it(check.rule, () => check.run());
});
