// One JSON POST for everything that reports outward over HTTP (alert webhooks, fleet heartbeats):
// node's fetch, a deadline, the caller's abort signal, the response body drained so the connection is
// reused, and the answer's status with its Retry-After read once (src/core/retry-after.ts).
import { parseRetryAfter } from '../core/retry-after.js';
import { VERSION } from '../version.js';

export interface PostResult {
  status: number;
  statusText: string;
  ok: boolean;
  /** Retry-After of the answer, in ms from now, when it had a readable one. */
  retryAfterMs: number | undefined;
}

/** The request did not get an answer: no connection, a reset, the deadline, or the caller's abort. */
export class PostError extends Error {
  override readonly name = 'PostError';
  constructor(
    message: string,
    /** The deadline passed (not the caller's abort). */
    readonly timedOut: boolean,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

export interface PostOptions {
  timeoutMs: number;
  signal?: AbortSignal;
  /** Added to (and winning over) content-type and user-agent. */
  headers?: Readonly<Record<string, string>>;
}

function causeText(err: unknown): string {
  if (err instanceof Error) return err.cause instanceof Error ? `${err.message}: ${err.cause.message}` : err.message;
  return String(err);
}

export async function postJson(url: string, body: unknown, options: PostOptions): Promise<PostResult> {
  const deadline = AbortSignal.timeout(options.timeoutMs);
  const signal = options.signal ? AbortSignal.any([deadline, options.signal]) : deadline;
  let res: Response;
  try {
    res = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'user-agent': `sluice/${VERSION}`, ...options.headers },
      body: JSON.stringify(body),
      signal,
    });
    // Read the body so the connection is reusable; its content does not matter.
    await res.arrayBuffer();
  } catch (err) {
    const timedOut = deadline.aborted && !options.signal?.aborted;
    throw new PostError(timedOut ? `no answer within ${options.timeoutMs} ms` : causeText(err), timedOut, { cause: err });
  }
  return { status: res.status, statusText: res.statusText, ok: res.ok, retryAfterMs: parseRetryAfter(res.headers.get('retry-after')) };
}
