// Walking a RowGroup row by row: for each row, the fields present in it.
import type { RowGroup } from '../core/chunk.js';
import type { FieldValue } from '../core/point.js';
import { columnValues } from '../store/builder.js';

export function* groupRows(group: RowGroup): Generator<{ timeUs: number; fields: [string, FieldValue][] }> {
  const cols = group.columns.map((c) => ({ name: c.name, present: c.present, values: columnValues(c), next: 0 }));
  for (let r = 0; r < group.timesUs.length; r++) {
    const fields: [string, FieldValue][] = [];
    for (const c of cols) {
      if (c.present && c.present[r] === 0) continue;
      fields.push([c.name, c.values[c.next++]]);
    }
    yield { timeUs: group.timesUs[r], fields };
  }
}
