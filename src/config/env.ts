// `${VAR}` / `${VAR:-default}` expansion inside one scalar string. Pure: the environment is passed in.
//
// Expansion works on parsed YAML scalars, not on the raw text, so a value cannot inject YAML structure
// (a token containing ": " or a newline stays one string) and every error keeps an exact position.

export type Env = Readonly<Record<string, string | undefined>>;

export interface EnvProblem {
  /** Offset of the offending `${` (or `$`) within the input string. */
  index: number;
  /** The reference as written, to find it in the YAML source (which may differ from the value by quoting). */
  token: string;
  message: string;
}

export type ExpandResult = { ok: true; value: string; changed: boolean } | { ok: false; problems: EnvProblem[] };

const NAME_RE = /^[A-Za-z_][A-Za-z0-9_]*$/;

/**
 * Rules:
 * - `${NAME}` is replaced by the variable's value; unset is an error, set-but-empty gives "".
 * - `${NAME:-default}` gives `default` when NAME is unset or empty. The default is literal text up to
 *   the first `}` (no nesting).
 * - `$$` is a literal `$` (so `$${X}` is the literal text `${X}`).
 * - any other `$` is kept as is, so passwords like `pa$word` need no escaping.
 */
export function expandEnv(input: string, env: Env): ExpandResult {
  if (!input.includes('$')) return { ok: true, value: input, changed: false };
  const problems: EnvProblem[] = [];
  let out = '';
  let i = 0;
  while (i < input.length) {
    const c = input[i];
    if (c !== '$') {
      out += c;
      i++;
      continue;
    }
    const next = input[i + 1];
    if (next === '$') {
      out += '$';
      i += 2;
      continue;
    }
    if (next !== '{') {
      out += '$';
      i++;
      continue;
    }
    const close = input.indexOf('}', i + 2);
    if (close < 0) {
      problems.push({ index: i, token: input.slice(i), message: 'unterminated "${": write ${NAME} or ${NAME:-default}, or $$ for a literal $' });
      break;
    }
    const token = input.slice(i, close + 1);
    const body = input.slice(i + 2, close);
    const sep = body.indexOf(':-');
    const name = sep < 0 ? body : body.slice(0, sep);
    if (!NAME_RE.test(name)) {
      problems.push({ index: i, token, message: `invalid reference "${token}": a variable name is letters, digits and _ (not starting with a digit); write $$ for a literal $` });
    } else {
      const value = env[name];
      if (sep >= 0) {
        out += value === undefined || value === '' ? body.slice(sep + 2) : value;
      } else if (value === undefined) {
        problems.push({ index: i, token, message: `environment variable ${name} is not set (write \${${name}:-default} to give a default)` });
      } else {
        out += value;
      }
    }
    i = close + 1;
  }
  return problems.length > 0 ? { ok: false, problems } : { ok: true, value: out, changed: true };
}
