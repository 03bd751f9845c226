// Groups a device's registers into as few read requests as the protocol allows. Pure.
//
// Registers of one table that are contiguous or overlap share a request, up to 125 registers or 2000
// bits. Small gaps are read through when that is cheaper than another request: on RTU a request costs
// 8 bytes out, 5 bytes of header back and two 3.5-character silences (~20 characters) plus the
// device's turnaround, while a register read through costs 2 bytes, so gaps up to `maxGapRegisters`
// registers (default 8) or `maxGapBits` bits (default 64, i.e. 8 bytes) are read through. Some devices
// refuse addresses they do not map (exception 2); the poller then re-plans that request without gaps
// and, failing that, one register per request (see `splitRequest`).
import { MAX_READ_BITS, MAX_READ_REGISTERS, type ReadFunctionCode } from './protocol.js';
import { REGISTER_WORDS, type RegisterTable, type RegisterType } from './schema.js';

export const TABLE_FUNCTION: Readonly<Record<RegisterTable, ReadFunctionCode>> = { coil: 1, discrete: 2, holding: 3, input: 4 };

export interface PlanItem {
  table: RegisterTable;
  address: number;
  type: RegisterType;
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

export interface PlanOptions {
  maxGapRegisters?: number;
  maxGapBits?: number;
}

export const DEFAULT_MAX_GAP_REGISTERS = 8;
export const DEFAULT_MAX_GAP_BITS = 64;

/** Registers (or bits) an item spans in its table. */
export function itemWidth(item: PlanItem): number {
  return item.table === 'coil' || item.table === 'discrete' ? 1 : REGISTER_WORDS[item.type];
}

const TABLE_ORDER: readonly RegisterTable[] = ['coil', 'discrete', 'input', 'holding'];

/** The requests that read `items`: per table in address order, each within the protocol's limits. */
export function planRequests<T extends PlanItem>(items: readonly T[], options: PlanOptions = {}): ReadRequest<T>[] {
  const requests: ReadRequest<T>[] = [];
  for (const table of TABLE_ORDER) {
    const bits = table === 'coil' || table === 'discrete';
    const max = bits ? MAX_READ_BITS : MAX_READ_REGISTERS;
    const maxGap = bits ? (options.maxGapBits ?? DEFAULT_MAX_GAP_BITS) : (options.maxGapRegisters ?? DEFAULT_MAX_GAP_REGISTERS);
    const ofTable = items.filter((i) => i.table === table).sort((a, b) => a.address - b.address || itemWidth(b) - itemWidth(a));
    let current: ReadRequest<T> | undefined;
    for (const item of ofTable) {
      const end = item.address + itemWidth(item);
      if (current) {
        const currentEnd = current.address + current.count;
        const gap = item.address - currentEnd;
        const newEnd = Math.max(currentEnd, end);
        if (gap <= maxGap && newEnd - current.address <= max) {
          current.count = newEnd - current.address;
          current.items.push(item);
          continue;
        }
      }
      current = { table, fc: TABLE_FUNCTION[table], address: item.address, count: end - item.address, items: [item] };
      requests.push(current);
    }
  }
  return requests;
}

/**
 * What to read instead of a request the device refused with exception 2 or 3 (illegal address or
 * quantity): first the same items without reading through gaps; if that is still one request, one
 * request per item. Returns undefined when the request reads a single item (nothing left to split).
 */
export function splitRequest<T extends PlanItem>(request: ReadRequest<T>): ReadRequest<T>[] | undefined {
  if (request.items.length <= 1) return undefined;
  const noGaps = planRequests(request.items, { maxGapRegisters: 0, maxGapBits: 0 });
  if (noGaps.length > 1) return noGaps;
  return request.items.map((item) => ({
    table: item.table,
    fc: TABLE_FUNCTION[item.table],
    address: item.address,
    count: itemWidth(item),
    items: [item],
  }));
}
