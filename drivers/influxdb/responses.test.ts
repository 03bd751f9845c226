// Every InfluxDB write answer in drivers/influxdb/cases/responses.json, each applied to the same batch:
// the table is the reference (where each answer was seen is written next to it), this file only reads it.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { OutputError } from '../../src/core/component.js';
import { interpret, type Headers } from './responses.js';
import type { Lines } from './lines.js';

interface Case {
  name: string;
  seen: string;
  status: number;
  headers?: Headers;
  body: string;
  expect: { result: { rejected: number } } | { error: { category: string; rejected?: number[]; retryAfterMs?: number; reason?: string } };
}

const table = JSON.parse(readFileSync(new URL('./cases/responses.json', import.meta.url), 'utf8')) as { batch: string[]; cases: Case[] };
const payload = Buffer.from(table.batch.map((l) => l + '\n').join(''));
const starts: number[] = [];
for (let at = 0, i = 0; i < table.batch.length; at += table.batch[i].length + 1, i++) starts.push(at);
const lines: Lines = { payload, starts, pointOfLine: table.batch.map((_, i) => i), skippedPoints: 0, skippedFields: 0, unsignedAsFloat: 0 };

describe('InfluxDB write answers (drivers/influxdb/cases/responses.json)', () => {
  it('the table covers every class the engine acts on', () => {
    const categories = new Set(table.cases.map((c) => ('error' in c.expect ? c.expect.error.category : 'delivered')));
    expect([...categories].sort()).toEqual(['auth', 'delivered', 'fatal', 'reject', 'retry', 'split', 'throttle']);
  });

  it.each(table.cases.map((c) => [`${c.status} ${c.name} (${c.seen})`, c] as const))('%s', (_title, c) => {
    const run = () => interpret(c.status, c.headers ?? {}, c.body, lines, 0);
    if ('result' in c.expect) {
      expect(run().rejectedPoints).toBe(c.expect.result.rejected);
      return;
    }
    let thrown: unknown;
    try {
      run();
    } catch (err) {
      thrown = err;
    }
    expect(thrown).toBeInstanceOf(OutputError);
    const e = thrown as OutputError;
    expect(e.category).toBe(c.expect.error.category);
    expect(e.details.status).toBe(c.status);
    if (c.expect.error.rejected !== undefined) expect(e.details.rejected).toEqual(c.expect.error.rejected);
    else expect(e.details.rejected ?? []).toEqual([]);
    if (c.expect.error.retryAfterMs !== undefined) expect(e.details.retryAfterMs).toBe(c.expect.error.retryAfterMs);
    if (c.expect.error.reason !== undefined) expect(e.details.reason).toBe(c.expect.error.reason);
  });
});
