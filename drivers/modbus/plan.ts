// Groups a device's registers into as few read requests as the protocol allows. Pure.
//
// Registers of one table that are contiguous or overlap share a request, up to 125 registers or 2000
// bits. Small gaps are read through when that is cheaper than another request: on RTU a request costs
// 8 bytes out, 5 bytes of header back and two 3.5-character silences (~20 characters) plus the
// device's turnaround, while a register read through costs 2 bytes, so gaps up to `maxGapRegisters`
// registers (default 8) or `maxGapBits` bits (default 64, i.e. 8 bytes) are read through. Some devices
// refuse addresses they do not map (exception 2); the poller then re-plans that request without gaps
// and, failing that, one register per request (device-plan.ts: what is learnt from refusals). An item marked `ownRequest` (the `own_request` option, or a register isolated
// after it failed on its own) is read alone, and no other request reads through its addresses.
import { MAX_READ_BITS, MAX_READ_REGISTERS, type ReadFunctionCode } from './protocol.js';
import { REGISTER_WORDS, type RegisterTable, type RegisterType } from './schema.js';

export const TABLE_FUNCTION: Readonly<Record<RegisterTable, ReadFunctionCode>> = { coil: 1, discrete: 2, holding: 3, input: 4 };

export interface PlanItem {
  table: RegisterTable;
  address: number;
  type: RegisterType;
  /** Read in a request of its own; no other request includes its addresses. */
  ownRequest?: boolean;
}

/** Addresses [start, end) of one table that no merged request may include. */
export interface AddressSpan {
  table: RegisterTable;
  start: number;
  end: number;
}

export interface ReadRequest<T extends PlanItem> {
  table: RegisterTable;
  fc: ReadFunctionCode;
  address: number;
  /** Registers (or bits) read. */
  count: number;
  /** The items this request reads, by address. */
  items: T[];
}

export interface PlanOptions<T extends PlanItem = PlanItem> {
  maxGapRegisters?: number;
  maxGapBits?: number;
  /** Spans no request may read through (addresses a device refused as gaps). */
  avoid?: readonly AddressSpan[];
  /** Items to read alone besides those marked `ownRequest` (registers isolated at run time). */
  alone?: (item: T) => boolean;
}

export const DEFAULT_MAX_GAP_REGISTERS = 8;
export const DEFAULT_MAX_GAP_BITS = 64;

/** Registers (or bits) an item spans in its table. */
export function itemWidth(item: PlanItem): number {
  return item.table === 'coil' || item.table === 'discrete' ? 1 : REGISTER_WORDS[item.type];
}

const TABLE_ORDER: readonly RegisterTable[] = ['coil', 'discrete', 'input', 'holding'];

/** The requests that read `items`: per table in address order, each within the protocol's limits. */
export function planRequests<T extends PlanItem>(items: readonly T[], options: PlanOptions<T> = {}): ReadRequest<T>[] {
  const requests: ReadRequest<T>[] = [];
  const alone = (item: T): boolean => item.ownRequest === true || (options.alone?.(item) ?? false);
  for (const table of TABLE_ORDER) {
    const bits = table === 'coil' || table === 'discrete';
    const max = bits ? MAX_READ_BITS : MAX_READ_REGISTERS;
    const maxGap = bits ? (options.maxGapBits ?? DEFAULT_MAX_GAP_BITS) : (options.maxGapRegisters ?? DEFAULT_MAX_GAP_REGISTERS);
    const ofTable = items.filter((i) => i.table === table).sort((a, b) => a.address - b.address || itemWidth(b) - itemWidth(a));
    const barriers = [
      ...(options.avoid ?? []).filter((s) => s.table === table),
      ...ofTable.filter(alone).map((i) => ({ table, start: i.address, end: i.address + itemWidth(i) })),
    ];
    const crossesBarrier = (start: number, end: number): boolean => barriers.some((b) => b.start < end && start < b.end);
    const ofTableRequests: ReadRequest<T>[] = [];
    let current: ReadRequest<T> | undefined;
    for (const item of ofTable) {
      const end = item.address + itemWidth(item);
      const single = (): ReadRequest<T> => ({ table, fc: TABLE_FUNCTION[table], address: item.address, count: end - item.address, items: [item] });
      if (alone(item)) {
        ofTableRequests.push(single());
        continue;
      }
      if (current) {
        const currentEnd = current.address + current.count;
        const gap = item.address - currentEnd;
        const newEnd = Math.max(currentEnd, end);
        // The added span (gap included) must not touch what is read alone or was refused.
        if (gap <= maxGap && newEnd - current.address <= max && !crossesBarrier(currentEnd, newEnd)) {
          current.count = newEnd - current.address;
          current.items.push(item);
          continue;
        }
      }
      current = single();
      ofTableRequests.push(current);
    }
    requests.push(...ofTableRequests.sort((a, b) => a.address - b.address));
  }
  return requests;
}

/** The addresses a request reads that belong to none of its items (the gaps it reads through). */
export function gapsOf(request: ReadRequest<PlanItem>): AddressSpan[] {
  const gaps: AddressSpan[] = [];
  let at = request.address;
  const sorted = [...request.items].sort((a, b) => a.address - b.address);
  for (const item of sorted) {
    if (item.address > at) gaps.push({ table: request.table, start: at, end: item.address });
    at = Math.max(at, item.address + itemWidth(item));
  }
  return gaps;
}
