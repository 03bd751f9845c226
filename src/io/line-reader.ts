// Streaming line-protocol reader: turns a byte stream (a file, stdin) into bounded batches of parsed
// points and rejects without ever holding the whole input. Memory is one decoded chunk plus the tail of
// an entry that is not complete yet (at most maxLineLength characters) plus one batch.
import { createReadStream } from 'node:fs';
import { MAX_REJECT_TEXT, floorToPrecision, parseChunk, type ChunkState, type ParseResult } from '../core/line-protocol.js';
import { nowUs, type Precision } from '../core/time.js';
import { EscapingUtf8Decoder } from '../core/utf8.js';

export interface ReadOptions {
  /** Unit of the timestamps in the input (default ns). */
  precision?: Precision;
  /** Time of points without a timestamp, in µs (default: now, taken once, as InfluxDB does per request). */
  defaultTimeUs?: number;
  /** Most points + rejects in one batch (default 5,000: larger batches only add garbage-collector work). */
  batchSize?: number;
  /**
   * Longest entry kept while waiting for its end (default 4 Mi characters). A longer physical line is
   * rejected and skipped; a string value left open for longer is rejected as unterminated.
   */
  maxLineLength?: number;
}

export interface LineBatch extends ParseResult {
  /** Input bytes read so far (for progress; the whole input once the last batch is out). */
  bytesRead: number;
  /** Physical lines consumed so far. */
  linesRead: number;
}

/** Read size for files: large enough that per-chunk overhead vanishes, small enough to stay bounded. */
const FILE_CHUNK_BYTES = 256 * 1024;

/** Opens a file for readLineProtocol, or stdin for '-'. */
export function openInput(path: string): NodeJS.ReadableStream {
  return path === '-' ? process.stdin : createReadStream(path, { highWaterMark: FILE_CHUNK_BYTES });
}

/**
 * Yields batches of at most batchSize points + rejects, in input order. Handles CRLF, a last line without a
 * newline, a UTF-8 BOM, multi-byte characters split across chunks (a string chunk is taken as already
 * decoded) and string values whose raw newlines span chunks. A line whose bytes are not UTF-8 is
 * rejected with its number, like any other bad line.
 */
export async function* readLineProtocol(
  input: AsyncIterable<Uint8Array | string>,
  options: ReadOptions = {},
): AsyncGenerator<LineBatch, void, undefined> {
  const precision = options.precision ?? 'ns';
  const batchSize = Math.max(1, options.batchSize ?? 5000);
  const maxLine = Math.max(1, options.maxLineLength ?? 4 * 1024 * 1024);
  const st: ChunkState = { precision, defaultTimeUs: floorToPrecision(options.defaultTimeUs ?? nowUs(), precision), line: 1 };
  // Not StringDecoder: it turns invalid bytes into U+FFFD, and the parser must see them to reject their line.
  const decoder = new EscapingUtf8Decoder();
  let batch: ParseResult = { points: [], rejects: [] };
  let carry = '';
  let bytesRead = 0;
  let atStart = true;
  let skipping = false; // inside an over-long physical line: discard up to its newline

  const full = (): boolean => batch.points.length + batch.rejects.length >= batchSize;
  const take = (): LineBatch => {
    const out: LineBatch = { points: batch.points, rejects: batch.rejects, bytesRead, linesRead: st.line - 1 };
    batch = { points: [], rejects: [] };
    return out;
  };

  // Parses `text` (carry + new input), yielding full batches; leaves the tail in carry.
  function* consume(text: string, final: boolean): Generator<LineBatch, void, undefined> {
    let pos = 0;
    for (;;) {
      pos = parseChunk(text, pos, final, st, batch, batchSize);
      if (full()) {
        yield take();
        continue;
      }
      if (pos >= text.length || final) break;
      // Stopped at an incomplete entry: fine unless it has grown past the limit.
      if (text.length - pos <= maxLine) break;
      const nl = text.indexOf('\n', pos);
      if (nl !== -1) {
        // A string value left open across lines: judge its first line as if the input ended there
        // (an unterminated string), then carry on with the next line.
        parseChunk(text.slice(pos, nl), 0, true, st, batch);
        pos = nl + 1;
        continue;
      }
      batch.rejects.push({
        line: st.line,
        error: `line longer than ${maxLine} characters`,
        text: text.slice(pos, pos + MAX_REJECT_TEXT) + '…',
      });
      skipping = true;
      pos = text.length;
      break;
    }
    carry = final ? '' : text.slice(pos);
  }

  for await (const chunk of input) {
    let s: string;
    if (typeof chunk === 'string') {
      s = chunk;
      bytesRead += Buffer.byteLength(chunk);
    } else {
      s = decoder.write(chunk);
      bytesRead += chunk.byteLength;
    }
    if (s.length === 0) continue;
    if (atStart) {
      atStart = false;
      if (s.charCodeAt(0) === 0xfeff) s = s.slice(1);
    }
    if (skipping) {
      const nl = s.indexOf('\n');
      if (nl === -1) continue;
      s = s.slice(nl + 1);
      st.line++;
      skipping = false;
    }
    yield* consume(carry.length === 0 ? s : carry + s, false);
  }
  let rest = decoder.end();
  if (atStart && rest.charCodeAt(0) === 0xfeff) rest = rest.slice(1);
  if (skipping) {
    const nl = rest.indexOf('\n');
    rest = nl === -1 ? '' : rest.slice(nl + 1);
    if (nl !== -1) st.line++;
  }
  const text = carry + rest;
  if (text.length > 0) yield* consume(text, true);
  if (batch.points.length + batch.rejects.length > 0) yield take();
}
