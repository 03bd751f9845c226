// Parsing of the values the CLI accepts: times (RFC 3339 or epoch ms), durations and precisions.
import { PRECISIONS, type Precision } from '../core/time.js';

export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

/** RFC 3339 (fractions kept to the microsecond) or integer epoch milliseconds, to microseconds. */
export function parseTimeUs(text: string, flag: string): number {
  if (/^-?\d+$/.test(text)) return Number(text) * 1000;
  const m = /^(.*?T\d{2}:\d{2}:\d{2})(?:\.(\d+))?(Z|[+-]\d{2}:\d{2})$/i.exec(text) ?? /^(\d{4}-\d{2}-\d{2})()()$/.exec(text);
  const ms = m ? Date.parse(m[3] ? m[1] + m[3] : m[1] + 'T00:00:00Z') : NaN;
  if (!m || Number.isNaN(ms)) throw new UsageError(`${flag}: "${text}" is neither RFC 3339 (2024-05-01T12:00:00Z) nor epoch milliseconds`);
  const fractionUs = m[2] ? Number(m[2].slice(0, 6).padEnd(6, '0')) : 0;
  return ms * 1000 + fractionUs;
}

export function parsePrecision(text: string | undefined, fallback: Precision): Precision {
  if (text === undefined) return fallback;
  if (!(PRECISIONS as readonly string[]).includes(text)) throw new UsageError(`--precision must be one of ${PRECISIONS.join(', ')}, not "${text}"`);
  return text as Precision;
}
