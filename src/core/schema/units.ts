// Durations and sizes as written in the config ("500ms", "1h30m", "64MiB") and their decoded numbers.
// Pure: no I/O. Bare numbers are rejected on purpose: `timeout: 5` could mean 5 ms or 5 s, and a
// gateway that silently waits 1000 times too long is worse than one that refuses to start.

/** A duration in milliseconds (decoded from "500ms", "30s", "1h30m", …). */
export type Milliseconds = number;
/** A size in bytes (decoded from "64MiB", "1GiB", "500MB", …). */
export type Bytes = number;

/** Duration units, longest first; `y` is 365 days and `w` 7 days (no calendar arithmetic). */
export const DURATION_UNITS: ReadonlyArray<readonly [unit: string, ms: number]> = [
  ['y', 365 * 86_400_000],
  ['w', 7 * 86_400_000],
  ['d', 86_400_000],
  ['h', 3_600_000],
  ['m', 60_000],
  ['s', 1000],
  ['ms', 1],
];

/** Binary (IEC) and decimal (SI) size units. `kB` and `KB` are both 1000: people write either. */
export const SIZE_UNITS: Readonly<Record<string, number>> = {
  B: 1,
  KiB: 1024,
  MiB: 1024 ** 2,
  GiB: 1024 ** 3,
  TiB: 1024 ** 4,
  kB: 1000,
  KB: 1000,
  MB: 1000 ** 2,
  GB: 1000 ** 3,
  TB: 1000 ** 4,
};

// `ms` must come before `m` and `s` in the alternation so "5ms" is not read as "5m" + garbage.
const DURATION_TERM = '[0-9]+(?:\\.[0-9]+)?(?:ms|s|m|h|d|w|y)';
/** JSON Schema pattern for a duration (one or more number+unit terms, e.g. "1h30m"). */
export const DURATION_PATTERN = `^(?:${DURATION_TERM})+$`;
/** JSON Schema pattern for a size. */
export const SIZE_PATTERN = '^[0-9]+(?:\\.[0-9]+)?(?:B|KiB|MiB|GiB|TiB|kB|KB|MB|GB|TB)$';

export const DURATION_HINT = 'a duration with a unit, such as "500ms", "30s", "5m", "1h30m" or "7d" (units: ms, s, m, h, d, w = 7d, y = 365d)';
export const SIZE_HINT = 'a size with a unit, such as "512KiB", "64MiB" or "1GiB" (units: B, KiB, MiB, GiB, TiB, and decimal kB, MB, GB, TB)';

export type ParseResult = { ok: true; value: number } | { ok: false; message: string };

const DURATION_TERM_RE = /([0-9]+(?:\.[0-9]+)?)(ms|s|m|h|d|w|y)/gy;

/** Reads a duration string into whole milliseconds, or says why not; fractions are fine when the total is whole ("1.5s"). */
export function readDuration(text: string): ParseResult {
  if (!new RegExp(DURATION_PATTERN).test(text)) {
    return { ok: false, message: `"${text}" is not a duration; expected ${DURATION_HINT}` };
  }
  let total = 0;
  DURATION_TERM_RE.lastIndex = 0;
  for (let m = DURATION_TERM_RE.exec(text); m; m = DURATION_TERM_RE.exec(text)) {
    const perUnit = DURATION_UNITS.find(([u]) => u === m[2])![1];
    total += Number(m[1]) * perUnit;
  }
  // Round away float noise ("0.1s" * 1000 = 100.00000000000001) before judging wholeness.
  const rounded = Math.round(total * 1000) / 1000;
  if (!Number.isInteger(rounded)) return { ok: false, message: `"${text}" is not a whole number of milliseconds` };
  if (!Number.isSafeInteger(rounded)) return { ok: false, message: `"${text}" is too long` };
  return { ok: true, value: rounded };
}

/** Reads a size string into whole bytes, or says why not. */
export function readSize(text: string): ParseResult {
  const m = /^([0-9]+(?:\.[0-9]+)?)([A-Za-z]+)$/.exec(text);
  const perUnit = m ? SIZE_UNITS[m[2]] : undefined;
  if (!m || perUnit === undefined) return { ok: false, message: `"${text}" is not a size; expected ${SIZE_HINT}` };
  const bytes = Math.round(Number(m[1]) * perUnit * 1000) / 1000;
  if (!Number.isInteger(bytes)) return { ok: false, message: `"${text}" is not a whole number of bytes` };
  if (!Number.isSafeInteger(bytes)) return { ok: false, message: `"${text}" is too large` };
  return { ok: true, value: bytes };
}

/** A duration in ms, or null if `text` is not one (for command-line flags such as --every). */
export function parseDuration(text: string): Milliseconds | null {
  const r = readDuration(text);
  return r.ok ? r.value : null;
}

/** A size in bytes, or null if `text` is not one. */
export function parseSize(text: string): Bytes | null {
  const r = readSize(text);
  return r.ok ? r.value : null;
}

/** Like readDuration but throws; for values already validated (schema decode) and for tests. */
export function durationMs(text: string): Milliseconds {
  const r = readDuration(text);
  if (!r.ok) throw new RangeError(r.message);
  return r.value;
}

/** Like parseSize but throws. */
export function sizeBytes(text: string): Bytes {
  const r = readSize(text);
  if (!r.ok) throw new RangeError(r.message);
  return r.value;
}

/**
 * The canonical spelling of a duration: largest units first, no zero terms ("1m", "1h30m", "1w1d").
 * Tier names (retention keys) are canonicalised with it, so `60s` and `1m` name the same window.
 */
export function formatDuration(ms: Milliseconds): string {
  if (ms === 0) return '0s';
  let rest = ms;
  let out = '';
  for (const [unit, per] of DURATION_UNITS) {
    const n = Math.floor(rest / per);
    if (n > 0) {
      out += `${n}${unit}`;
      rest -= n * per;
    }
  }
  return out;
}

/** The shortest exact binary spelling of a size ("256MiB", "1536KiB", "100B"). */
export function formatSize(bytes: Bytes): string {
  for (const unit of ['TiB', 'GiB', 'MiB', 'KiB'] as const) {
    const per = SIZE_UNITS[unit];
    if (bytes >= per && bytes % per === 0) return `${bytes / per}${unit}`;
  }
  return `${bytes}B`;
}
