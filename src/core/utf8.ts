// UTF-8 decoding that keeps invalid bytes visible instead of turning them into U+FFFD. Node's
// decoders (StringDecoder, TextDecoder without `fatal`) replace every bad sequence with U+FFFD, so
// `m\xff` and `m\xfe` both became the series `m\uFFFD`, stored as if that had been sent. Here each byte
// of an invalid sequence becomes the lone surrogate U+DC80…U+DCFF (Python's "surrogateescape"): a
// lone surrogate is never the result of decoding valid UTF-8, so whoever parses the text (the
// line-protocol parser) can tell exactly which line held bad bytes, reject that line and name the byte.
import { isUtf8 } from 'node:buffer';

/** The first escaped byte in a text: U+DC80…U+DCFF stands for the invalid byte 0x80…0xFF. */
export const ESCAPED_BYTE_BASE = 0xdc00;

/** Length of the well-formed UTF-8 sequence starting at i (lead byte ≥ 0x80), or 0 if it is not one. */
function sequenceLength(b: Uint8Array, i: number, end: number): number {
  const c = b[i];
  const cont = (k: number, lo = 0x80, hi = 0xbf): boolean => i + k < end && b[i + k] >= lo && b[i + k] <= hi;
  if (c >= 0xc2 && c <= 0xdf) return cont(1) ? 2 : 0;
  if (c >= 0xe0 && c <= 0xef) {
    const lo = c === 0xe0 ? 0xa0 : 0x80;
    const hi = c === 0xed ? 0x9f : 0xbf; // ED A0…BF would be a surrogate
    return cont(1, lo, hi) && cont(2) ? 3 : 0;
  }
  if (c >= 0xf0 && c <= 0xf4) {
    const lo = c === 0xf0 ? 0x90 : 0x80;
    const hi = c === 0xf4 ? 0x8f : 0xbf; // beyond U+10FFFF
    return cont(1, lo, hi) && cont(2) && cont(3) ? 4 : 0;
  }
  return 0;
}

function asBuffer(bytes: Uint8Array): Buffer {
  return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** Decodes bytes, each byte of an invalid sequence becoming U+DC80…U+DCFF (see above). */
export function decodeUtf8Escaped(bytes: Uint8Array): string {
  const buf = asBuffer(bytes);
  if (isUtf8(buf)) return buf.toString('utf8');
  let out = '';
  let last = 0;
  const n = buf.length;
  for (let i = 0; i < n; ) {
    if (buf[i] < 0x80) {
      i++;
      continue;
    }
    const len = sequenceLength(buf, i, n);
    if (len > 0) {
      i += len;
      continue;
    }
    out += buf.toString('utf8', last, i) + String.fromCharCode(ESCAPED_BYTE_BASE + buf[i]);
    i++;
    last = i;
  }
  return out + buf.toString('utf8', last, n);
}

/**
 * Index where an incomplete (so far valid) multi-byte sequence at the end of `b` starts, or b.length:
 * a stream decoder holds those bytes back until the next chunk completes them.
 */
function incompleteTail(b: Uint8Array): number {
  const n = b.length;
  for (let i = n - 1; i >= 0 && i >= n - 3; i--) {
    const c = b[i];
    if (c < 0x80) return n;
    if (c < 0xc0) continue; // a continuation byte: look further back for its lead
    const need = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : 2;
    return i + need > n ? i : n;
  }
  return n;
}

/** A streaming decodeUtf8Escaped: sequences split across chunks are joined before they are judged. */
export class EscapingUtf8Decoder {
  private pending: Buffer = Buffer.alloc(0);

  write(chunk: Uint8Array): string {
    const buf = this.pending.length === 0 ? asBuffer(chunk) : Buffer.concat([this.pending, chunk]);
    const cut = incompleteTail(buf);
    this.pending = cut === buf.length ? Buffer.alloc(0) : Buffer.from(buf.subarray(cut));
    return decodeUtf8Escaped(buf.subarray(0, cut));
  }

  /** The rest: bytes of a sequence the input never completed are invalid. */
  end(): string {
    const rest = this.pending;
    this.pending = Buffer.alloc(0);
    return decodeUtf8Escaped(rest);
  }
}

/** Whether a text holds an unpaired surrogate (an escaped invalid byte, or a broken string from elsewhere). */
export function isWellFormedText(s: string): boolean {
  return (s as string & { isWellFormed(): boolean }).isWellFormed();
}

/** Index of the first unpaired surrogate in s[from, to), or -1. */
export function firstLoneSurrogate(s: string, from: number, to: number): number {
  for (let i = from; i < to; i++) {
    const c = s.charCodeAt(i);
    if (c < 0xd800 || c > 0xdfff) continue;
    if (c <= 0xdbff && i + 1 < to) {
      const d = s.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) {
        i++;
        continue;
      }
    }
    return i;
  }
  return -1;
}

/** What an unpaired surrogate stands for, for an error message: the invalid byte, or the surrogate. */
export function describeLoneSurrogate(c: number): string {
  return c >= 0xdc80 && c <= 0xdcff ? `invalid UTF-8 (byte 0x${(c - ESCAPED_BYTE_BASE).toString(16)})` : `not valid Unicode (unpaired surrogate U+${c.toString(16).toUpperCase()})`;
}
