// Every output driver keeps the output contract (test/contracts/output-contract.ts) against its upstream.
import { afterAll, beforeAll, describe, it } from 'vitest';
import { outputContract } from './output-contract.js';
import { OUTPUT_RIGS } from './output-rigs.js';

for (const { type, make } of OUTPUT_RIGS) {
  const rig = make();
  describe(`output contract: ${type} (${rig.name})`, () => {
    beforeAll(() => rig.setup(), 60_000);
    afterAll(() => rig.teardown(), 60_000);
    for (const check of outputContract(rig)) it(check.rule, () => check.run());
  });
}
