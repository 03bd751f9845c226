// The process logger: pino, JSON lines on stdout (journald picks them up) for the agent, stderr for
// one-shot commands so their stdout stays data. Quiet in steady state: rates and drops are metrics.
import { pino } from 'pino';
import type { Logger } from './core/component.js';

export function createLogger(options: { toStderr?: boolean; level?: string } = {}): Logger & pino.Logger {
  const level = options.level ?? process.env.SLUICE_LOG_LEVEL ?? 'info';
  return pino(
    {
      level,
      base: { svc: 'sluice' },
      // Secrets never reach a log line, whatever a driver passes in.
      redact: { paths: ['*.password', '*.token', '*.*.password', '*.*.token', 'password', 'token'], censor: '[redacted]' },
      timestamp: pino.stdTimeFunctions.isoTime,
    },
    pino.destination({ fd: options.toStderr ? 2 : 1, sync: true }),
  );
}
