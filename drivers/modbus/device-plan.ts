// What a device's requests should be, learnt from its exception responses. Pure: the poller tells it
// each request's outcome; it says what to read instead, now and from the next poll on.
//
// A merged request fails as a whole when one address in it is refused. Two different causes:
// - a gap read through is not mapped (exception 2 or 3): the gaps of that request are avoided from then on;
// - one register answers an exception of its own (busy, device failure, illegal address): the request is
//   read one register per request once, and if some registers answer and others do not, the failing ones
//   are isolated (read alone, never read through) and the rest merged again. When every register of the
//   request fails alike, the exception concerns the device, not an address, and nothing is isolated.
// An isolated register that answers again for REMERGE_AFTER_POLLS polls in a row is merged back; if it
// fails again after that, it waits twice as long before the next try (the neighbours are read in the
// same poll either way: a failed merge costs requests, never values).
import { TABLE_FUNCTION, gapsOf, itemWidth, planRequests, type AddressSpan, type PlanItem, type PlanOptions, type ReadRequest } from './plan.js';

/** Exception codes that can concern single addresses; 1 (function), 10 and 11 (gateway) concern a whole table or unit. */
export const ADDRESS_EXCEPTION_CODES: ReadonlySet<number> = new Set([2, 3, 4, 5, 6, 8]);

/** Polls in a row an isolated register must answer before it is merged with its neighbours again. */
export const REMERGE_AFTER_POLLS = 10;
/** The longest wait (in polls) before a register that keeps relapsing is merged again. */
export const REMERGE_MAX_POLLS = 640;

interface Isolation {
  okInARow: number;
  remergeAfter: number;
  code: number;
}

/** Single-register requests read to find which registers of a failed request are to blame. */
interface Probe<T> {
  pending: Set<T>;
  failed: Map<T, number>;
  ok: number;
}

export type PlanChange<T extends PlanItem> =
  | { kind: 'isolated'; items: T[]; code: number }
  | { kind: 'merged'; items: T[] }
  | { kind: 'gaps'; request: ReadRequest<T> };

export interface Refusal<T extends PlanItem> {
  /** Requests to read now, in place of the refused one (undefined: nothing smaller to read). */
  readNow: ReadRequest<T>[] | undefined;
}

function singleRequest<T extends PlanItem>(item: T): ReadRequest<T> {
  return { table: item.table, fc: TABLE_FUNCTION[item.table], address: item.address, count: itemWidth(item), items: [item] };
}

export class DevicePlan<T extends PlanItem> {
  private current: ReadRequest<T>[];
  private readonly avoid: AddressSpan[] = [];
  private readonly isolated = new Map<T, Isolation>();
  /** Items merged back after an isolation: how long to wait next time they fail. */
  private readonly relapseAfter = new Map<T, number>();
  private readonly probes = new Map<ReadRequest<T>, Probe<T>>();
  /** What changed since the last `takeChanges()`, for the poller's log. */
  private changes: PlanChange<T>[] = [];

  constructor(
    private readonly items: readonly T[],
    private readonly options: Pick<PlanOptions, 'maxGapRegisters' | 'maxGapBits'> = {},
  ) {
    this.current = this.plan();
  }

  /** The requests of one poll. */
  get requests(): readonly ReadRequest<T>[] {
    return this.current;
  }

  isIsolated(item: T): boolean {
    return this.isolated.has(item);
  }

  takeChanges(): PlanChange<T>[] {
    const c = this.changes;
    this.changes = [];
    return c;
  }

  private plan(): ReadRequest<T>[] {
    return planRequests(this.items, { ...this.options, avoid: this.avoid, alone: (i) => this.isolated.has(i) });
  }

  /** The request was answered with data. */
  answered(request: ReadRequest<T>): void {
    this.settleProbe(request, undefined);
    if (request.items.length !== 1) return;
    const item = request.items[0];
    const iso = this.isolated.get(item);
    if (!iso || ++iso.okInARow < iso.remergeAfter) return;
    this.isolated.delete(item);
    this.relapseAfter.set(item, Math.min(REMERGE_MAX_POLLS, iso.remergeAfter * 2));
    this.current = this.plan();
    this.changes.push({ kind: 'merged', items: [item] });
  }

  /** The request was answered with exception `code`: what to read instead now. */
  refused(request: ReadRequest<T>, code: number): Refusal<T> {
    this.settleProbe(request, code);
    if (request.items.length === 1) {
      const iso = this.isolated.get(request.items[0]);
      if (iso) iso.okInARow = 0;
    }
    if (!ADDRESS_EXCEPTION_CODES.has(code)) return { readNow: undefined };
    const gaps = gapsOf(request);
    if ((code === 2 || code === 3) && gaps.length > 0) {
      // Unmapped gaps are the usual cause: never read through them again.
      this.avoid.push(...gaps);
      this.current = this.plan();
      this.changes.push({ kind: 'gaps', request });
      return { readNow: planRequests(request.items, { maxGapRegisters: 0, maxGapBits: 0, avoid: this.avoid, alone: (i) => this.isolated.has(i) }) };
    }
    if (request.items.length <= 1) return { readNow: undefined };
    const parts = request.items.map((item) => singleRequest(item));
    const probe: Probe<T> = { pending: new Set(request.items), failed: new Map(), ok: 0 };
    for (const part of parts) this.probes.set(part, probe);
    return { readNow: parts };
  }

  /** The request got no answer (or a useless one): a probe in progress is abandoned. */
  unanswered(request: ReadRequest<T>): void {
    const probe = this.probes.get(request);
    if (!probe) return;
    for (const [part, p] of this.probes) if (p === probe) this.probes.delete(part);
  }

  private settleProbe(request: ReadRequest<T>, code: number | undefined): void {
    const probe = this.probes.get(request);
    if (!probe) return;
    this.probes.delete(request);
    for (const item of request.items) {
      probe.pending.delete(item);
      if (code === undefined) probe.ok++;
      else probe.failed.set(item, code);
    }
    if (probe.pending.size > 0) return;
    // Every register failed alike: the device refuses, not one address.
    if (probe.ok === 0 || probe.failed.size === 0) return;
    const byCode = new Map<number, T[]>();
    for (const [item, c] of probe.failed) {
      this.isolated.set(item, { okInARow: 0, remergeAfter: this.relapseAfter.get(item) ?? REMERGE_AFTER_POLLS, code: c });
      byCode.set(c, [...(byCode.get(c) ?? []), item]);
    }
    this.current = this.plan();
    for (const [c, items] of byCode) this.changes.push({ kind: 'isolated', items, code: c });
  }
}
