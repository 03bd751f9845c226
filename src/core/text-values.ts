// Times and values as they appear in text payloads (JSON, CSV, serial lines), decoded exactly. Pure.
import { MAX_TIME_US, MIN_TIME_US } from './line-protocol.js';
import type { Precision } from './time.js';

/** A payload value that cannot be decoded; inputs count it as malformed and carry on. */
export class ValueError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ValueError';
  }
}

const EPOCH_SHIFT: Record<Precision, number> = { s: 6, ms: 3, us: 0, ns: -3 };
/** A decimal epoch number (`1700000000`, `1700000000.123`, `1.7e12`). */
export const EPOCH_NUMBER = /^([+-]?)(\d+)(?:\.(\d*))?(?:[eE]([+-]?\d+))?$/;

/**
 * An epoch number written in decimal (`1700000000.123`, `1.7e12`) to µs, exactly: by its digits, never
 * through a double, so `.123` s never becomes `…122999` µs. Finer than µs is floored.
 */
export function epochToUs(text: string, precision: Precision): number {
  const m = EPOCH_NUMBER.exec(text);
  if (!m) throw new ValueError(`time ${clip(text)} is not an epoch number`);
  const [, sign, int, frac = '', exp = '0'] = m;
  const exponent = EPOCH_SHIFT[precision] - frac.length + Number(exp);
  if (Math.abs(exponent) > 40) throw new ValueError(`time ${clip(text)} is out of range`);
  let us = BigInt(int + frac);
  if (sign === '-') us = -us;
  if (exponent >= 0) us *= 10n ** BigInt(exponent);
  else {
    const div = 10n ** BigInt(-exponent);
    const q = us / div;
    us = us < 0n && q * div !== us ? q - 1n : q; // floor, also before 1970
  }
  return checkRange(us, text);
}

function checkRange(us: bigint, text: string): number {
  if (us > BigInt(MAX_TIME_US) || us < BigInt(MIN_TIME_US)) throw new ValueError(`time ${clip(text)} is out of range`);
  return Number(us);
}

const RFC3339 = /^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(?:([Zz])|([+-])(\d{2}):(\d{2}))$/;

/** RFC 3339 with a zone (Z or ±hh:mm) to µs; fractions beyond the µs are floored. */
export function rfc3339ToUs(text: string): number {
  const m = RFC3339.exec(text);
  if (!m) throw new ValueError(`time ${clip(text)} is not RFC 3339 (2024-05-01T12:00:00.5Z; a zone is required)`);
  const [, y, mo, d, h, mi, s, frac = '', z, offSign, offH, offM] = m;
  const date = new Date(0);
  // setUTCFullYear, unlike Date.UTC, does not map years 0–99 to 1900–1999.
  date.setUTCFullYear(Number(y), Number(mo) - 1, Number(d));
  if (
    date.getUTCMonth() !== Number(mo) - 1 ||
    date.getUTCDate() !== Number(d) ||
    Number(h) > 23 ||
    Number(mi) > 59 ||
    Number(s) > 60 ||
    (z === undefined && (Number(offH) > 23 || Number(offM) > 59))
  ) {
    throw new ValueError(`time ${clip(text)} is not a valid date and time`);
  }
  date.setUTCHours(Number(h), Number(mi), Number(s), 0);
  const leap = Number(s) === 60; // a leap second is kept as the last µs of its minute
  const offsetMin = z === undefined ? (offSign === '-' ? -1 : 1) * (Number(offH) * 60 + Number(offM)) : 0;
  const ms = date.getTime() - (leap ? 1000 : 0) - offsetMin * 60_000;
  const fracUs = leap ? 999_999 : Number(frac.slice(0, 6).padEnd(6, '0'));
  return checkRange(BigInt(ms) * 1000n + BigInt(fracUs), text);
}

/** A value quoted in an error message, clipped so a garbage payload cannot flood a log line. */
export function clip(text: string, max = 64): string {
  const t = text.length > max ? `${text.slice(0, max)}…` : text;
  return JSON.stringify(t);
}
