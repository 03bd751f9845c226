// Every input driver keeps the input lifecycle (test/contracts/input-contract.ts) against its real peer.
import { afterAll, beforeAll, describe, it } from 'vitest';
import { inputContract } from './input-contract.js';
import { INPUT_RIGS } from './input-rigs.js';

for (const [type, makeRig] of Object.entries(INPUT_RIGS)) {
  const rig = makeRig();
  describe(`input contract: ${type} (${rig.name})`, () => {
    beforeAll(() => rig.setup(), 60_000);
    afterAll(() => rig.teardown(), 60_000);
    for (const check of inputContract(rig)) it(check.rule, () => check.run());
  });
}
