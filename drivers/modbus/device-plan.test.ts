// What a device's plan learns from exception responses (pure; the real-peer cases are in awkward.test.ts).
import { describe, expect, it } from 'vitest';
import { DevicePlan, REMERGE_AFTER_POLLS } from './device-plan.js';
import type { PlanItem, ReadRequest } from './plan.js';

interface Named extends PlanItem {
  name: string;
}
const holding = (address: number): Named => ({ table: 'holding', address, type: 'uint16', name: `r${address}` });
const shape = (requests: readonly ReadRequest<Named>[]) => requests.map((r) => [r.address, r.count]);

/** One poll as the poller runs it: `codeOf` says which registers answer which exception. */
function poll(plan: DevicePlan<Named>, codeOf: (address: number) => number | undefined): { sent: number[][]; read: string[] } {
  const queue = [...plan.requests];
  const sent: number[][] = [];
  const read: string[] = [];
  for (let r = queue.shift(); r; r = queue.shift()) {
    sent.push([r.address, r.count]);
    const code = r.items.map((i) => codeOf(i.address)).find((c) => c !== undefined);
    if (code === undefined) {
      plan.answered(r);
      read.push(...r.items.map((i) => i.name));
    } else {
      const { readNow } = plan.refused(r, code);
      if (readNow) queue.unshift(...readNow);
    }
  }
  return { sent, read: read.sort() };
}

describe('DevicePlan', () => {
  const six = () => new DevicePlan([0, 1, 2, 3, 4, 5].map(holding));

  it('isolates the one register that fails while its neighbours answer, and merges the rest again', () => {
    const plan = six();
    const first = poll(plan, (a) => (a === 3 ? 6 : undefined));
    expect(first.sent).toEqual([[0, 6], [0, 1], [1, 1], [2, 1], [3, 1], [4, 1], [5, 1]]);
    expect(first.read).toEqual(['r0', 'r1', 'r2', 'r4', 'r5']);
    expect(plan.takeChanges()).toEqual([{ kind: 'isolated', items: [holding(3)], code: 6 }]);
    expect(shape(plan.requests)).toEqual([[0, 3], [3, 1], [4, 2]]);
  });

  it('isolates nothing when every register fails alike (the device refuses, not an address)', () => {
    const plan = six();
    poll(plan, () => 6);
    expect(plan.takeChanges()).toEqual([]);
    expect(shape(plan.requests)).toEqual([[0, 6]]);
  });

  it('does not split on exceptions about the whole unit or function (1, 10, 11)', () => {
    for (const code of [1, 10, 11]) {
      const plan = six();
      expect(poll(plan, () => code).sent).toEqual([[0, 6]]);
    }
  });

  it('stops reading through refused gaps (exception 2) without isolating anything', () => {
    const plan = new DevicePlan([0, 1, 5].map(holding));
    expect(shape(plan.requests)).toEqual([[0, 6]]);
    const gapRefused = (r: ReadRequest<Named>) => (r.count > 2 ? 2 : undefined);
    const queue = [...plan.requests];
    const { readNow } = plan.refused(queue[0], gapRefused(queue[0])!);
    expect(shape(readNow!)).toEqual([[0, 2], [5, 1]]);
    expect(plan.takeChanges().map((c) => c.kind)).toEqual(['gaps']);
    expect(shape(plan.requests)).toEqual([[0, 2], [5, 1]]);
  });

  it(`merges an isolated register back after ${REMERGE_AFTER_POLLS} good polls, and waits twice as long after a relapse`, () => {
    const plan = six();
    let busy = true;
    const codeOf = (a: number) => (busy && a === 3 ? 6 : undefined);
    poll(plan, codeOf);
    busy = false;
    for (let i = 1; i < REMERGE_AFTER_POLLS; i++) poll(plan, codeOf);
    expect(shape(plan.requests)).toEqual([[0, 3], [3, 1], [4, 2]]);
    poll(plan, codeOf);
    expect(shape(plan.requests)).toEqual([[0, 6]]);
    busy = true;
    expect(poll(plan, codeOf).read).toEqual(['r0', 'r1', 'r2', 'r4', 'r5']); // the relapse loses no neighbour
    busy = false;
    plan.takeChanges();
    for (let i = 1; i < 2 * REMERGE_AFTER_POLLS; i++) poll(plan, codeOf);
    expect(shape(plan.requests)).toEqual([[0, 3], [3, 1], [4, 2]]);
    poll(plan, codeOf);
    expect(shape(plan.requests)).toEqual([[0, 6]]);
  });
});
