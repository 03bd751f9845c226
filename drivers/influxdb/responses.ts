// What an InfluxDB write answer means, for both APIs. The bodies this reads, as servers send them:
//
// InfluxDB 1.x (checked against influxd 1.6.7), JSON {"error": "..."}:
//   400 "partial write: unable to parse '<line>': <why>\nunable to parse '<line>': <why> dropped=0"
//       some lines did not parse; every line that did parse was written;
//   400 "partial write: field type conflict: input field \"f\" on measurement \"m\" is type integer,
//       already exists as type float dropped=N"  (also "points beyond retention policy dropped=N"):
//       N points were dropped, the rest written;
//   400 "unable to parse '<line>': <why>..." (no "partial write"): no line parsed, nothing written;
//   404 "database not found: \"x\"";  500 "retention policy not found: x";  500 "timeout".
// InfluxDB 2.x / Cloud (/api/v2/write), JSON {"code": "invalid", "message": "...", "line": N}:
//   400 with the first malformed line (OSS 2.x: nothing written), or a partial write naming the
//   refused lines ("errors encountered on line(s): line 2: ...") with the rest written; 422 for a
//   partial write of points the storage refused ("... dropped=N"); 401, 404 (org/bucket), 413, 429
//   and 503 with Retry-After.
// Lines an answer names are rejected and the rest is sent again; sending a line twice is harmless
// (InfluxDB overwrites the same series and time), so it does not matter which servers wrote the rest.
import { OutputError, type WriteResult } from '../../src/core/component.js';
import { parseRetryAfter } from '../../src/core/retry-after.js';
import { lineText, type Lines } from './lines.js';

export type Headers = Record<string, string | string[] | undefined>;

/** The message of an error body (v1 `error`, v2 `message`), and the v2 `line` when present. */
export function errorMessage(body: string): { message: string; line?: number } {
  const text = body.trim();
  if (text.startsWith('{')) {
    try {
      const json = JSON.parse(text) as { error?: unknown; message?: unknown; line?: unknown };
      const message = typeof json.error === 'string' ? json.error : typeof json.message === 'string' ? json.message : text;
      return { message, line: typeof json.line === 'number' && Number.isInteger(json.line) ? json.line : undefined };
    } catch {
      // Not JSON after all: use the text.
    }
  }
  return { message: text };
}

/** Indices of the lines an error message names, by 1-based number or by quoted text. */
export function namedLines(message: string, jsonLine: number | undefined, lines: Lines): number[] {
  const found = new Set<number>();
  const count = lines.starts.length;
  if (jsonLine !== undefined && jsonLine >= 1 && jsonLine <= count) found.add(jsonLine - 1);
  for (const m of message.matchAll(/\bline (\d+)(?::|\b)/g)) {
    const n = Number(m[1]);
    if (n >= 1 && n <= count) found.add(n - 1);
  }
  const marker = "unable to parse '";
  if (message.includes(marker)) {
    let byText: Map<string, number[]> | undefined;
    for (let at = message.indexOf(marker); at !== -1; at = message.indexOf(marker, at + 1)) {
      byText ??= indexLines(lines);
      // The line ends at a "'" followed by ": "; the line itself may hold quotes, so try each candidate.
      const start = at + marker.length;
      for (let end = message.indexOf("': ", start); end !== -1; end = message.indexOf("': ", end + 1)) {
        const hits = byText.get(message.slice(start, end));
        if (hits) {
          for (const h of hits) found.add(h);
          break;
        }
      }
    }
  }
  return [...found].sort((a, b) => a - b);
}

function indexLines(lines: Lines): Map<string, number[]> {
  const map = new Map<string, number[]>();
  for (let i = 0; i < lines.starts.length; i++) {
    const line = lineText(lines, i);
    const list = map.get(line);
    if (list) list.push(i);
    else map.set(line, [i]);
  }
  return map;
}

/** The quarantine's name for why InfluxDB refused points. */
function rejectReason(message: string): string {
  return /field type conflict/i.test(message) ? 'field_type_conflict' : 'bad_line';
}

/** Turns an HTTP answer into a result (2xx, partial writes) or throws the OutputError that says what to do. */
export function interpret(status: number, headers: Headers, body: string, lines: Lines, nowMs: number = Date.now()): WriteResult {
  const bytes = 0;
  if (status >= 200 && status < 300) return { rejectedPoints: lines.skippedPoints, bytes };
  const { message, line } = errorMessage(body);
  const short = `${status}: ${clip(message)}`;
  if (status === 400 || status === 422) {
    const named = namedLines(message, line, lines);
    if (/partial write/i.test(message)) {
      // The server wrote everything else: count what it dropped and move on.
      const dropped = Number(/dropped=(\d+)/.exec(message)?.[1] ?? 0);
      return { rejectedPoints: lines.skippedPoints + Math.min(lines.starts.length, dropped + named.length), bytes };
    }
    if (named.length > 0) {
      throw new OutputError(`refused ${named.length} line(s): ${short}`, 'reject', { status, rejected: named.map((i) => lines.pointOfLine[i]), reason: rejectReason(message) });
    }
    throw new OutputError(`refused the batch: ${short}`, 'reject', { status, reason: rejectReason(message) });
  }
  if (status === 401 || status === 403) throw new OutputError(`credentials refused (${short})`, 'auth', { status });
  if (status === 404) throw new OutputError(`not found (${short}): check database/bucket/org and the url`, 'fatal', { status });
  if (status === 413) throw new OutputError(`request too large (${short})`, 'split', { status });
  if (status === 429 || status === 503) {
    throw new OutputError(`asked to slow down (${short})`, 'throttle', { status, retryAfterMs: parseRetryAfter(headers['retry-after'], nowMs) });
  }
  if (status === 500 && /retention policy not found/i.test(message)) {
    throw new OutputError(`retention policy not found (${short})`, 'fatal', { status });
  }
  if (status >= 500 || status === 408) throw new OutputError(`server error (${short})`, 'retry', { status, retryAfterMs: parseRetryAfter(headers['retry-after'], nowMs) });
  throw new OutputError(`unexpected answer (${short})`, 'fatal', { status });
}

/** Socket-level failures: did the request reach the server? TLS trust problems are configuration. */
export function networkError(err: unknown): OutputError {
  const e = err as NodeJS.ErrnoException;
  const code = e?.code ?? '';
  const message = `${code ? code + ': ' : ''}${e?.message ?? String(err)}`;
  if (/^(ECONNREFUSED|ENOTFOUND|EAI_AGAIN|EHOSTUNREACH|ENETUNREACH|EADDRNOTAVAIL)$/.test(code)) {
    return new OutputError(`cannot reach the server (${message})`, 'retry', { unreached: true }, { cause: err });
  }
  if (/CERT|SELF_SIGNED|UNABLE_TO_VERIFY|ERR_TLS_CERT_ALTNAME_INVALID/.test(code)) {
    return new OutputError(`TLS: the server certificate is not trusted (${message}); set tls.ca, or fix the url's host name`, 'fatal', {}, { cause: err });
  }
  return new OutputError(`request failed (${message})`, 'retry', {}, { cause: err });
}

function clip(text: string): string {
  return text.length > 300 ? text.slice(0, 300) + '…' : text;
}
