// One request with the output's timeout. A driver that ignores its signal is raced, never waited for:
// the request counts as failed at the deadline whatever the driver does later.
import { OutputError, type Logger, type OutputBatch } from '../core/component.js';
import type { SyncSource } from './source.js';

export async function withTimeout<T>(send: (signal: AbortSignal) => Promise<T>, jobSignal: AbortSignal, timeoutMs: number): Promise<T> {
  const ctrl = new AbortController();
  let timedOut = false;
  const onAbort = () => ctrl.abort(jobSignal.reason);
  jobSignal.addEventListener('abort', onAbort, { once: true });
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      timedOut = true;
      ctrl.abort(new Error('request timeout'));
      reject(new OutputError(`no answer within ${timeoutMs} ms`, 'retry', { timeout: true }));
    }, timeoutMs);
    ctrl.signal.addEventListener('abort', () => reject(new OutputError('request aborted', 'retry')), { once: true });
  });
  try {
    return await Promise.race([send(ctrl.signal), deadline]);
  } catch (err) {
    if (timedOut) throw new OutputError(`no answer within ${timeoutMs} ms`, 'retry', { timeout: true }, { cause: err });
    throw err;
  } finally {
    clearTimeout(timer);
    jobSignal.removeEventListener('abort', onAbort);
  }
}

/** Anything thrown by a driver, as an OutputError (an unknown error is worth a retry, never a drop). */
export function asOutputError(err: unknown): OutputError {
  if (err instanceof OutputError) return err;
  const e = err instanceof Error ? err : new Error(String(err));
  return new OutputError(e.message, 'retry', {}, { cause: e });
}

/**
 * Hands points refused for good to the source's quarantine (src/store/quarantine.ts), named by the
 * error's reason; returns the points it kept (0: only counted as rejected, as without a quarantine).
 */
export function refuse(source: SyncSource, batch: OutputBatch, e: OutputError, log: Logger, reason = e.details.reason ?? 'refused'): number {
  try {
    return source.quarantine?.(batch, reason, e.message) ?? 0;
  } catch (err) {
    log.error({ err }, 'could not quarantine refused points; they are counted as rejected');
    return 0;
  }
}
