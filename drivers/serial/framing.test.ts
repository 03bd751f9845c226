// Delimiter framing and reconnect backoff, table-driven. Every framing case is fed whole, byte by byte
// and in every two-piece split, since a serial read may end anywhere, also inside a delimiter.
import { describe, expect, it } from 'vitest';
import { LineFramer, type Frame } from './framing.js';

type Out = string | { tooLong: true };

function frames(delimiter: string, max: number, chunks: Uint8Array[]): { out: Out[]; cut: boolean } {
  const f = new LineFramer(Buffer.from(delimiter), max);
  const out: Out[] = [];
  const emit = (fr: Frame): void => {
    out.push(fr.kind === 'line' ? fr.bytes.toString('latin1') : { tooLong: true });
  };
  for (const c of chunks) f.push(c, emit);
  return { out, cut: f.reset() };
}

function splits(input: Buffer): Uint8Array[][] {
  const ways: Uint8Array[][] = [[input], [...input].map((b) => Uint8Array.of(b))];
  for (let i = 1; i < input.length; i++) ways.push([input.subarray(0, i), input.subarray(i)]);
  return ways;
}

const TOO_LONG = { tooLong: true } as const;

describe('LineFramer', () => {
  const cases: { name: string; delimiter: string; max: number; input: string; out: Out[]; cut?: boolean }[] = [
    { name: 'LF lines', delimiter: '\n', max: 100, input: 'a,1\nb,2\n', out: ['a,1', 'b,2'] },
    { name: 'CRLF delimiter', delimiter: '\r\n', max: 100, input: 'a\r\nb\rc\r\n', out: ['a', 'b\rc'] },
    { name: 'semicolon delimiter', delimiter: ';', max: 100, input: '1;2;;3;', out: ['1', '2', '', '3'] },
    { name: 'self-overlapping delimiter', delimiter: '##', max: 100, input: 'a###b##', out: ['a', '#b'] },
    { name: 'delimiter with a repeated prefix', delimiter: 'aab', max: 100, input: 'xaaab', out: ['xa'] },
    { name: 'unterminated tail is held, and reported as cut on reset', delimiter: '\n', max: 100, input: 'a\npart', out: ['a'], cut: true },
    { name: 'nothing held after a complete line', delimiter: '\n', max: 100, input: 'a\n', out: ['a'], cut: false },
    { name: 'a line of exactly max bytes is kept', delimiter: '\r\n', max: 4, input: 'abcd\r\nabcde\r\nok\r\n', out: ['abcd', TOO_LONG, 'ok'] },
    { name: 'over-long line reported once and skipped to its delimiter', delimiter: '\n', max: 3, input: 'abcdefghij\nxy\n', out: [TOO_LONG, 'xy'] },
    { name: 'over-long tail without delimiter: reported, not cut', delimiter: '\n', max: 3, input: 'ok\nabcdefgh', out: ['ok', TOO_LONG], cut: false },
    { name: 'multi-byte characters are kept whole', delimiter: '\n', max: 100, input: 'T=21°C\n', out: ['T=21Â°C'] },
  ];
  for (const c of cases) {
    it(c.name, () => {
      for (const chunks of splits(Buffer.from(c.input, 'utf8'))) {
        const r = frames(c.delimiter, c.max, chunks);
        expect(r.out, `chunks ${JSON.stringify(chunks.map((x) => Buffer.from(x).toString('latin1')))}`).toEqual(c.out);
        if (c.cut !== undefined) expect(r.cut).toBe(c.cut);
      }
    });
  }

  it('holds at most max_line_length + delimiter bytes of an endless line', () => {
    const f = new LineFramer(Buffer.from('\n'), 1024);
    const out: Frame[] = [];
    const noise = Buffer.alloc(64 * 1024, 0x55);
    for (let i = 0; i < 64; i++) f.push(noise, (fr) => out.push(fr));
    expect(out).toEqual([{ kind: 'too_long' }]);
    f.push(Buffer.from('\nfine\n'), (fr) => out.push(fr));
    expect(out.map((fr) => (fr.kind === 'line' ? fr.bytes.toString() : fr.kind))).toEqual(['too_long', 'fine']);
  });

  it('refuses an empty delimiter and a zero maximum', () => {
    expect(() => new LineFramer(Buffer.alloc(0), 10)).toThrow(RangeError);
    expect(() => new LineFramer(Buffer.from('\n'), 0)).toThrow(RangeError);
  });
});
