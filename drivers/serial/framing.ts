// Delimiter framing of a serial byte stream into lines. Pure: bytes in, frames out; no clock, no I/O.
//
// Bytes rather than text: `max_line_length` is in bytes, a delimiter or a multi-byte character may be
// split across reads, and a line is decoded only once it is complete (a baud-rate mismatch produces
// invalid UTF-8, which the decoder then reports as garbage instead of silently replacing it).
//
// The delimiter is matched byte by byte with a KMP automaton, so a delimiter split across chunks and
// self-overlapping delimiters (";;" in ";;;") are found without re-scanning or concatenating buffers.
// Serial rates (≤ a few hundred KB/s) make a per-byte loop cheap; it also keeps memory bounded by
// max_line_length whatever the input: an endless stream without delimiters is discarded as it arrives.

export type Frame =
  /** A complete line without its delimiter (a copy: the framer reuses its buffer). */
  | { kind: 'line'; bytes: Buffer }
  /** A line grew past maxLineBytes; its bytes up to the next delimiter are discarded. Reported once per line. */
  | { kind: 'too_long' };

export class LineFramer {
  private readonly delimiter: Uint8Array;
  /** KMP failure function: fail[i] = length of the longest proper border of delimiter[0..i]. */
  private readonly fail: Uint32Array;
  private buf: Buffer;
  /** Bytes held: the current line plus a partly matched delimiter at its end. */
  private len = 0;
  /** Length of the delimiter prefix matched by the last bytes. */
  private matched = 0;
  /** Inside a line that was already reported too long: discard bytes up to its delimiter. */
  private skipping = false;
  private readonly capacityBytes: number;

  constructor(
    delimiter: Uint8Array,
    private readonly maxLineBytes: number,
  ) {
    if (delimiter.length === 0) throw new RangeError('empty delimiter');
    if (!(maxLineBytes >= 1)) throw new RangeError(`maxLineBytes must be ≥ 1, not ${maxLineBytes}`);
    this.delimiter = Uint8Array.from(delimiter);
    this.fail = borders(this.delimiter);
    // Longest content held: a full line plus a complete delimiter (checked before the line is cut).
    this.capacityBytes = maxLineBytes + delimiter.length;
    // Start small and grow: most lines are short, and max_line_length may be up to 1 MiB.
    this.buf = Buffer.allocUnsafe(Math.min(this.capacityBytes, 256));
  }

  /** Feeds bytes; calls `emit` for each frame they complete, in order. */
  push(chunk: Uint8Array, emit: (frame: Frame) => void): void {
    const d = this.delimiter;
    const dLen = d.length;
    for (let i = 0; i < chunk.length; i++) {
      const b = chunk[i];
      let m = this.matched;
      while (m > 0 && d[m] !== b) m = this.fail[m - 1];
      if (d[m] === b) m++;
      this.matched = m;
      if (!this.skipping) this.append(b);
      if (m === dLen) {
        this.matched = 0;
        if (this.skipping) this.skipping = false;
        else emit({ kind: 'line', bytes: Buffer.from(this.buf.subarray(0, this.len - dLen)) });
        this.len = 0;
      } else if (!this.skipping && this.len - m > this.maxLineBytes) {
        // The bytes beyond the partial delimiter match are certainly line content: the line is too long.
        this.skipping = true;
        this.len = 0;
        emit({ kind: 'too_long' });
      }
    }
  }

  /**
   * Forgets everything held (the port closed, or was reopened). Returns true when that dropped the
   * beginning of a line that had not been reported yet (a line cut short).
   */
  reset(): boolean {
    const cut = !this.skipping && this.len > 0;
    this.len = 0;
    this.matched = 0;
    this.skipping = false;
    return cut;
  }

  private append(b: number): void {
    if (this.len === this.buf.length) {
      const grown = Buffer.allocUnsafe(Math.min(this.capacityBytes, this.buf.length * 2));
      this.buf.copy(grown, 0, 0, this.len);
      this.buf = grown;
    }
    this.buf[this.len++] = b;
  }
}

function borders(p: Uint8Array): Uint32Array {
  const fail = new Uint32Array(p.length);
  let k = 0;
  for (let i = 1; i < p.length; i++) {
    while (k > 0 && p[i] !== p[k]) k = fail[k - 1];
    if (p[i] === p[k]) k++;
    fail[i] = k;
  }
  return fail;
}
