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

/**
 * An SQL condition on column `col` selecting ids outside the ranges, with its parameters. Spelled as
 * the gaps between the ranges (id < a1 OR id BETWEEN b1+1 AND a2-1 OR … OR id > bn), not as NOT
 * BETWEEN terms: SQLite answers each gap with a range search on the primary key, so counting a backlog
 * reads the unsent chunks, not every chunk the store holds.
 */
export function outsideRangesSql(col: string, ranges: readonly IdRange[]): { sql: string; params: number[] } {
  if (ranges.length === 0) return { sql: '1', params: [] };
  const terms = [`${col} < ?`];
  const params = [ranges[0][0]];
  for (let i = 1; i < ranges.length; i++) {
    terms.push(`${col} BETWEEN ? AND ?`);
    params.push(ranges[i - 1][1] + 1, ranges[i][0] - 1);
  }
  terms.push(`${col} > ?`);
  params.push(ranges[ranges.length - 1][1]);
  return { sql: `(${terms.join(' OR ')})`, params };
}
