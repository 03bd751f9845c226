// Sets of chunk ids as sorted, disjoint, inclusive ranges: an output's record of what it has sent.
// Hand-written because it is tiny and on the delivery path; ranges stay few because ids are
// handed out in increasing order and both delivery fronts (live and backfill) extend runs.

export type IdRange = [first: number, last: number];

export function addRange(ranges: IdRange[], first: number, last: number): IdRange[] {
  const out: IdRange[] = [];
  let a = first;
  let b = last;
  let placed = false;
  for (const [x, y] of ranges) {
    if (y < a - 1) out.push([x, y]);
    else if (x > b + 1) {
      if (!placed) {
        out.push([a, b]);
        placed = true;
      }
      out.push([x, y]);
    } else {
      a = Math.min(a, x);
      b = Math.max(b, y);
    }
  }
  if (!placed) out.push([a, b]);
  return out;
}

export function addIds(ranges: IdRange[], ids: readonly number[]): IdRange[] {
  const sorted = [...ids].sort((x, y) => x - y);
  let out = ranges;
  let i = 0;
  while (i < sorted.length) {
    let j = i;
    while (j + 1 < sorted.length && sorted[j + 1] <= sorted[j] + 1) j++;
    out = addRange(out, sorted[i], sorted[j]);
    i = j + 1;
  }
  return out;
}

export function containsId(ranges: readonly IdRange[], id: number): boolean {
  let lo = 0;
  let hi = ranges.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    if (id < ranges[mid][0]) hi = mid - 1;
    else if (id > ranges[mid][1]) lo = mid + 1;
    else return true;
  }
  return false;
}

/** An SQL condition on column `col` selecting ids outside the ranges, with its parameters. */
export function outsideRangesSql(col: string, ranges: readonly IdRange[]): { sql: string; params: number[] } {
  if (ranges.length === 0) return { sql: '1', params: [] };
  return {
    sql: ranges.map(() => `${col} NOT BETWEEN ? AND ?`).join(' AND '),
    params: ranges.flatMap(([a, b]) => [a, b]),
  };
}
