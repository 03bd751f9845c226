// SqliteRing keeps the ring's promises (test/contracts/ring-contract.ts).
import { describe, it } from 'vitest';
import { ringContract } from './ring-contract.js';
import { openSqliteRing } from './sqlite-ring.js';

describe('ring contract: SqliteRing', () => {
  for (const check of ringContract('SqliteRing', openSqliteRing)) it(check.rule, () => check.run());
});
