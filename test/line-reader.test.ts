import { Readable } from 'node:stream';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseLines, type ParseResult } from '../src/core/line-protocol.js';
import { openInput, readLineProtocol, type LineBatch, type ReadOptions } from '../src/io/line-reader.js';

async function collect(input: AsyncIterable<Uint8Array | string>, opts: ReadOptions = {}): Promise<ParseResult & { batches: LineBatch[] }> {
  const batches: LineBatch[] = [];
  for await (const b of readLineProtocol(input, { defaultTimeUs: 0, ...opts })) batches.push(b);
  return { points: batches.flatMap((b) => b.points), rejects: batches.flatMap((b) => b.rejects), batches };
}

/** Splits bytes at the given offsets into separate chunks. */
// eslint-disable-next-line @typescript-eslint/require-await -- an async source that never waits, like a fast pipe
async function* chunks(bytes: Uint8Array, cuts: number[]): AsyncGenerator<Uint8Array> {
  let last = 0;
  for (const c of [...cuts, bytes.length]) {
    yield bytes.subarray(last, c);
    last = c;
  }
}

// Multi-byte characters everywhere (2, 3 and 4 bytes in UTF-8), CRLF, comments, a bad line, a string
// value spanning lines, and a last line without newline.
const SAMPLE = [
  '# héllo',
  'température,lieu=Zürich\\ 日本 valeur=21.5,note="🚀 ok" 1000',
  'température,lieu=Zürich\\ 日本 valeur=22.5,note="multi\r\nligne é" 2000\r',
  '',
  'bad line é',
  'm,t=🚀 f=1i,s="a\\"b" 3000',
  'm f="x" 4000',
].join('\n');

describe('readLineProtocol', () => {
  const expected = parseLines(SAMPLE, { defaultTimeUs: 0 });

  it('matches parseLines on the whole text', async () => {
    expect(expected.points).toHaveLength(4);
    expect(expected.rejects.map((r) => r.line)).toEqual([6]);
    const r = await collect(Readable.from([Buffer.from(SAMPLE)]));
    expect(r.points).toEqual(expected.points);
    expect(r.rejects).toEqual(expected.rejects);
  });

  it('gives the same result wherever the input is cut in two (inside characters, lines, CRLF, strings)', async () => {
    const bytes = Buffer.from(SAMPLE);
    for (let cut = 0; cut <= bytes.length; cut++) {
      const r = await collect(chunks(bytes, [cut]));
      expect(r.points, `cut at byte ${cut}`).toEqual(expected.points);
      expect(r.rejects, `cut at byte ${cut}`).toEqual(expected.rejects);
    }
  });

  it('gives the same result for one-byte chunks and for string chunks', async () => {
    const bytes = Buffer.from(SAMPLE);
    const oneByte = await collect(chunks(bytes, Array.from({ length: bytes.length - 1 }, (_, i) => i + 1)));
    expect(oneByte.points).toEqual(expected.points);
    expect(oneByte.rejects).toEqual(expected.rejects);
    const strings = await collect(Readable.from([SAMPLE.slice(0, 40), SAMPLE.slice(40, 41), SAMPLE.slice(41)]));
    expect(strings.points).toEqual(expected.points);
    expect(strings.rejects).toEqual(expected.rejects);
  });

  it('reports bytes and lines read', async () => {
    const r = await collect(Readable.from([Buffer.from(SAMPLE)]));
    const last = r.batches.at(-1)!;
    expect(last.bytesRead).toBe(Buffer.byteLength(SAMPLE));
    expect(last.linesRead).toBe(SAMPLE.split('\n').length);
  });

  it('skips a UTF-8 byte order mark, even when split', async () => {
    const bytes = Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from('m f=1 1000\n')]);
    for (const cut of [1, 2, 3]) {
      const r = await collect(chunks(bytes, [cut]));
      expect(r.rejects).toEqual([]);
      expect(r.points.map((p) => p.measurement)).toEqual(['m']);
    }
  });

  it('handles empty input and input of only comments', async () => {
    expect((await collect(Readable.from([]))).batches).toEqual([]);
    const r = await collect(Readable.from([Buffer.from('# x\n\n# y')]));
    expect(r.points).toEqual([]);
    expect(r.rejects).toEqual([]);
  });

  it('applies precision and default time', async () => {
    const r = await collect(Readable.from(['m f=1 5\nm f=2\n']), { precision: 's', defaultTimeUs: 7_654_321 });
    expect(r.points.map((p) => p.timeUs)).toEqual([5_000_000, 7_000_000]);
  });

  it('streams 100k lines in bounded batches without reading ahead of its consumer', async () => {
    const total = 100_000;
    const linesPerChunk = 500;
    let pulled = 0;
    // eslint-disable-next-line @typescript-eslint/require-await -- an async source that never waits, like a fast pipe
    async function* source(): AsyncGenerator<Buffer> {
      for (let i = 0; i < total; i += linesPerChunk) {
        let s = '';
        for (let j = i; j < i + linesPerChunk; j++) s += `sensor,id=s${j % 7} v=${j}.5,n=${j}i ${j}000\n`;
        pulled++;
        yield Buffer.from(s);
      }
    }
    const totalChunks = total / linesPerChunk;
    const batchSize = 1000;
    let points = 0;
    let batches = 0;
    let pulledAtFirstBatch = -1;
    let lastValue = -1;
    for await (const b of readLineProtocol(source(), { batchSize, precision: 'us' })) {
      if (pulledAtFirstBatch < 0) pulledAtFirstBatch = pulled;
      batches++;
      expect(b.points.length + b.rejects.length).toBeLessThanOrEqual(batchSize);
      // reading stays just ahead of the consumer: at most a couple of chunks beyond what was parsed
      expect(pulled * linesPerChunk - (points + b.points.length)).toBeLessThanOrEqual(2 * linesPerChunk + batchSize);
      for (const p of b.points) {
        expect(p.fields.v).toBe(lastValue + 1 + 0.5);
        lastValue++;
      }
      points += b.points.length;
    }
    expect(points).toBe(total);
    expect(batches).toBe(total / batchSize);
    expect(pulledAtFirstBatch).toBeLessThan(totalChunks / 10);
  });

  it('rejects and skips a line longer than maxLineLength, then reads on', async () => {
    const long = 'm f="' + 'x'.repeat(5000) + '" 1\n';
    const input = ['m f=1 1\n', long.slice(0, 1000), long.slice(1000, 3000), long.slice(3000), 'm f=2 2\n'];
    const r = await collect(Readable.from(input), { maxLineLength: 2000 });
    expect(r.points.map((p) => p.fields.f)).toEqual([1, 2]);
    expect(r.rejects).toHaveLength(1);
    expect(r.rejects[0]).toMatchObject({ line: 2, error: 'line longer than 2000 characters' });
    expect(r.rejects[0].text.length).toBeLessThan(1100);
    expect(r.batches.at(-1)!.linesRead).toBe(3);
  });

  it('rejects a string left open for longer than maxLineLength as unterminated, then reads on', async () => {
    const filler = Array.from({ length: 100 }, (_, i) => `m f=${i} ${i}\n`).join('');
    const input = ['m s="open\n', filler, 'm f=100 100\n'];
    const r = await collect(Readable.from(input), { maxLineLength: 500 });
    expect(r.rejects).toHaveLength(1);
    expect(r.rejects[0]).toMatchObject({ line: 1, text: 'm s="open' });
    expect(r.rejects[0].error).toMatch(/unterminated string/);
    expect(r.points.map((p) => p.fields.f)).toEqual(Array.from({ length: 101 }, (_, i) => i));
  });

  it('keeps a string value with raw newlines that spans many chunks', async () => {
    const value = Array.from({ length: 50 }, (_, i) => `line ${i} é`).join('\n');
    const text = `m s="${value}" 1\nm f=1 2`;
    const bytes = Buffer.from(text);
    const r = await collect(chunks(bytes, Array.from({ length: 30 }, (_, i) => (i + 1) * 17)));
    expect(r.rejects).toEqual([]);
    expect(r.points.map((p) => p.fields)).toEqual([{ s: value }, { f: 1 }]);
  });

  it('reads a file through openInput', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sluice-lr-'));
    try {
      const file = join(dir, 'in.lp');
      writeFileSync(file, 'm f=1 1000\r\nm f=2 2000');
      const r = await collect(openInput(file), { precision: 'ms' });
      expect(r.points.map((p) => p.timeUs)).toEqual([1_000_000, 2_000_000]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
