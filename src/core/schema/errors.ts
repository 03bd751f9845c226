// The one error shape every config problem is reported in, and its one-line rendering.

/** A key (map) or an index (list) on the way from the document root to a value. */
export type PathSegment = string | number;
export type Path = readonly PathSegment[];

export interface ConfigError {
  /** The file name as given to loadConfig (or `<config>` for text, `<default>` for the embedded default). */
  file: string;
  /** 1-based line of the offending key or value (for a missing key: of the key that owns the map). */
  line: number;
  /** 1-based column, counted in UTF-16 code units like every JS string. */
  col: number;
  /** Dotted key path, e.g. `inputs.boiler.devices[0].registers[1].type`; `(root)` for the document itself. */
  path: string;
  message: string;
}

const PLAIN_KEY = /^[A-Za-z0-9_-]+$/;

/**
 * `inputs.boiler.devices[0].registers[1].type`: keys joined by dots, list indexes in brackets
 * (0-based), and keys that are not plain (dots, spaces, empty) as JSON strings in brackets:
 * `agent.tags["rack.row"]`.
 */
export function formatPath(path: Path): string {
  if (path.length === 0) return '(root)';
  let out = '';
  for (const seg of path) {
    if (typeof seg === 'number') out += `[${seg}]`;
    else if (PLAIN_KEY.test(seg)) out += out === '' ? seg : `.${seg}`;
    else out += `[${JSON.stringify(seg)}]`;
  }
  return out;
}

/** `FILE:LINE:COL: key.path: message`, the format `sluice check` prints (and editors' problem matchers parse). */
export function formatConfigError(e: ConfigError): string {
  return `${e.file}:${e.line}:${e.col}: ${e.path}: ${e.message}`;
}

/** Errors in reading order; duplicates (the same problem found twice by different rules) once. */
export function sortErrors(errors: readonly ConfigError[]): ConfigError[] {
  const seen = new Set<string>();
  const out: ConfigError[] = [];
  for (const e of errors) {
    const k = formatConfigError(e);
    if (!seen.has(k)) {
      seen.add(k);
      out.push(e);
    }
  }
  return out.sort((a, b) => a.line - b.line || a.col - b.col);
}

/** Edit distance counting a swap of neighbours as one edit ("agnet" → "agent"), for "did you mean" hints. */
function distance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) => Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)));
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      d[i][j] = Math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) d[i][j] = Math.min(d[i][j], d[i - 2][j - 2] + 1);
    }
  }
  return d[a.length][b.length];
}

/** The closest candidate if it is plausibly a typo of `word`. */
export function didYouMean(word: string, candidates: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestD = Infinity;
  for (const c of candidates) {
    const d = distance(word.toLowerCase(), c.toLowerCase());
    if (d < bestD) {
      best = c;
      bestD = d;
    }
  }
  return best !== undefined && bestD <= Math.max(1, Math.floor(best.length / 3)) ? best : undefined;
}
