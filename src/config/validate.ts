// Validates the config data against configSchemaJson() with Ajv (allErrors) and turns Ajv's errors
// into messages about YAML keys. The same JSON Schema ships to editors, so the two cannot disagree.
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import { didYouMean, type Path, type PathSegment } from '../core/schema/errors.js';
import { configSchemaJson } from './schema.js';
import { DURATION_HINT, SIZE_HINT, readDuration, readSize } from '../core/schema/units.js';

/** A problem found in the data; the loader turns the path into a line and column. */
export interface Issue {
  path: Path;
  message: string;
  /** Point at the key (unknown keys, bad ids) or at the value (everything else). */
  at: 'key' | 'value';
}

type Schema = Record<string, unknown>;

function unitProblem(kind: string, data: unknown): string | undefined {
  if (typeof data !== 'string') return undefined; // the `type` keyword reports non-strings
  const hint = kind === 'size' ? SIZE_HINT : DURATION_HINT;
  const noun = kind === 'size' ? 'size' : 'duration';
  if (/^[0-9]+(?:\.[0-9]+)?$/.test(data)) return `"${data}" has no unit; expected ${hint}`;
  const r = kind === 'size' ? readSize(data) : readDuration(data);
  if (!r.ok) return r.message;
  if (r.value === 0) return `${noun} must be greater than zero`;
  return undefined;
}

const compiled = new Map<string, ValidateFunction>();

function isRecord(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

/** The component types a document uses, per map: which branches of the `type` switch can fire. */
function typesUsed(data: unknown): Record<'input' | 'output', Set<string>> {
  const used = { input: new Set<string>(), output: new Set<string>() };
  if (!isRecord(data)) return used;
  for (const [kind, key] of [['input', 'inputs'], ['output', 'outputs']] as const) {
    const map = data[key];
    if (!isRecord(map)) continue;
    for (const c of Object.values(map)) if (isRecord(c) && typeof c.type === 'string') used[kind].add(c.type);
  }
  return used;
}

/**
 * Compiling the whole schema costs Ajv ~50 ms here (several times that on a Raspberry Pi), most of
 * it in component schemas a given config does not use. So the validator is compiled for the types
 * the document uses: the same schema with the other branches of the `type` switch left out, which
 * accepts and rejects exactly what the full schema does for this document.
 */
function validator(data: unknown): ValidateFunction {
  const used = typesUsed(data);
  const key = `${[...used.input].sort().join(',')}|${[...used.output].sort().join(',')}`;
  const cached = compiled.get(key);
  if (cached) return cached;
  const schema = configSchemaJson() as { definitions: Record<string, { allOf?: { if: { properties: { type: { const: string } } } }[] }> };
  for (const kind of ['input', 'output'] as const) {
    const switchSchema = schema.definitions[kind];
    const branches = switchSchema.allOf!.filter((branch) => used[kind].has(branch.if.properties.type.const));
    if (branches.length > 0) switchSchema.allOf = branches;
    else delete switchSchema.allOf;
    for (const name of Object.keys(schema.definitions)) {
      if (name.startsWith(`${kind}_`) && !used[kind].has(name.slice(kind.length + 1))) delete schema.definitions[name];
    }
  }
  // strictTypes off: the if-schemas in `definitions` use `required` without repeating `type: object`
  // in every branch, which is valid JSON Schema that strict mode would only warn about on stderr.
  // validateSchema off: checking our own schema against the draft-07 meta-schema at every start
  // would double the compile time; the tests check it once instead.
  const ajv = new Ajv({ allErrors: true, verbose: true, strict: true, strictTypes: false, validateSchema: false });
  ajv.addKeyword({ keyword: 'x-expects', schemaType: 'string' });
  ajv.addKeyword({ keyword: 'x-key-expects', schemaType: 'string' });
  const unit = function unitKeyword(kind: string, value: unknown): boolean {
    const problem = unitProblem(kind, value);
    unit.errors = problem === undefined ? [] : [{ keyword: 'x-unit', message: problem, params: { unit: kind } }];
    return problem === undefined;
  } as ((kind: string, data: unknown) => boolean) & { errors: Partial<ErrorObject>[] };
  unit.errors = [];
  ajv.addKeyword({ keyword: 'x-unit', schemaType: 'string', errors: true, validate: unit });
  const fn = ajv.compile(schema);
  compiled.set(key, fn);
  return fn;
}

const TYPE_NAMES: Record<string, string> = {
  string: 'a string',
  integer: 'an integer',
  number: 'a number',
  boolean: 'true or false',
  object: 'a map (key: value)',
  array: 'a list',
  null: 'empty',
};

function describe(data: unknown): string {
  if (data === null || data === undefined) return 'empty';
  if (Array.isArray(data)) return 'a list';
  if (typeof data === 'object') return 'a map';
  if (typeof data === 'string') return `the string ${JSON.stringify(data)}`;
  if (typeof data === 'number') return Number.isInteger(data) ? `the integer ${data}` : `the number ${data}`;
  return typeof data === 'boolean' ? String(data) : typeof data;
}

/** Ajv's JSON-pointer instancePath as YAML path segments (list indexes as numbers). */
function toPath(pointer: string, root: unknown): PathSegment[] {
  if (pointer === '') return [];
  const out: PathSegment[] = [];
  let cur = root;
  for (const raw of pointer.slice(1).split('/')) {
    const key = raw.replace(/~1/g, '/').replace(/~0/g, '~');
    if (Array.isArray(cur)) {
      const i = Number(key);
      out.push(i);
      cur = cur[i];
    } else {
      out.push(key);
      cur = cur !== null && typeof cur === 'object' ? (cur as Record<string, unknown>)[key] : undefined;
    }
  }
  return out;
}

function translate(e: ErrorObject, root: unknown): Issue | undefined {
  const path = toPath(e.instancePath, root);
  const parent = (e.parentSchema ?? {}) as Schema;
  const params = e.params as Record<string, unknown>;
  const expects = parent['x-expects'] as string | undefined;

  if (e.propertyName !== undefined) {
    return { path: [...path, e.propertyName], at: 'key', message: `"${e.propertyName}" is not a valid key here: expected ${expects ?? e.message}` };
  }
  switch (e.keyword) {
    case 'if': // "must match then schema": the errors of the selected branch say what is wrong
    case 'propertyNames': // wraps the error on the key itself, handled above
      return undefined;
    case 'required': {
      const key = params.missingProperty as string;
      const typeName = ((parent.properties as Schema | undefined)?.type as Schema | undefined)?.const;
      return { path: [...path, key], at: 'value', message: `missing required key "${key}"${typeof typeName === 'string' ? ` (for type ${typeName})` : ''}` };
    }
    case 'additionalProperties': {
      const key = params.additionalProperty as string;
      const props = parent.properties as Schema | undefined;
      if (!props) {
        const keyExpects = parent['x-key-expects'] as string | undefined;
        return { path: [...path, key], at: 'key', message: `"${key}" is not a valid key here${keyExpects ? `: expected ${keyExpects}` : ''}` };
      }
      const known = Object.keys(props);
      const typeName = (props.type as Schema | undefined)?.const;
      const guess = didYouMean(key, known);
      const where = typeof typeName === 'string' ? ` for type ${typeName}` : '';
      return {
        path: [...path, key],
        at: 'key',
        message: `unknown key "${key}"${where}; ${guess ? `did you mean "${guess}"?` : `known keys: ${known.join(', ')}`}`,
      };
    }
    case 'enum': {
      const allowed = (params.allowedValues as unknown[]).map(String);
      const last = path[path.length - 1];
      const isDriver = path.length === 3 && (path[0] === 'inputs' || path[0] === 'outputs') && last === 'type';
      const guess = typeof e.data === 'string' ? didYouMean(e.data, allowed) : undefined;
      const what = isDriver ? `unknown ${path[0] === 'inputs' ? 'input' : 'output'} type ${JSON.stringify(e.data)}` : `${JSON.stringify(e.data)} is not allowed`;
      return { path, at: 'value', message: `${what}; one of: ${allowed.join(', ')}${guess ? ` (did you mean ${guess}?)` : ''}` };
    }
    case 'const':
      if (path.length === 1 && path[0] === 'version') {
        return { path, at: 'value', message: `unsupported config version ${JSON.stringify(e.data)}; this sluice reads version: 1` };
      }
      return { path, at: 'value', message: `must be ${JSON.stringify(params.allowedValue)}` };
    case 'type': {
      const expected = String(params.type);
      const unit = parent['x-unit'] as string | undefined;
      if (unit !== undefined) {
        const hint = unit === 'size' ? SIZE_HINT : DURATION_HINT;
        const message =
          typeof e.data === 'number'
            ? `bare number ${e.data} has no unit; expected ${hint}`
            : `must be ${hint}, not ${describe(e.data)}`;
        return { path, at: 'value', message };
      }
      const quote = expected === 'string' && (typeof e.data === 'number' || typeof e.data === 'boolean') ? `; quote it ("${String(e.data)}") if you mean the text` : '';
      return { path, at: 'value', message: `must be ${TYPE_NAMES[expected] ?? expected}, not ${describe(e.data)}${quote}` };
    }
    case 'x-unit':
      return { path, at: 'value', message: e.message ?? 'invalid value' };
    case 'pattern':
      if (parent['x-unit'] !== undefined) return undefined; // x-unit says it better
      return { path, at: 'value', message: `${JSON.stringify(e.data)} is not valid; expected ${expects ?? `a value matching ${String(params.pattern)}`}` };
    case 'minimum':
    case 'maximum':
    case 'exclusiveMinimum':
    case 'exclusiveMaximum':
      return { path, at: 'value', message: `must be ${String(params.comparison)} ${String(params.limit)}, not ${String(e.data)}` };
    case 'minItems':
      return { path, at: 'value', message: params.limit === 1 ? 'must not be empty' : `must have at least ${String(params.limit)} items` };
    case 'maxItems':
      return { path, at: 'value', message: `must have at most ${String(params.limit)} items` };
    case 'minLength':
      return { path, at: 'value', message: params.limit === 1 ? 'must not be empty' : `must be at least ${String(params.limit)} characters` };
    case 'maxLength':
      return { path, at: 'value', message: `must be at most ${String(params.limit)} characters` };
    case 'uniqueItems': {
      const [i, j] = [Number(params.i), Number(params.j)];
      const [later, earlier] = i > j ? [i, j] : [j, i];
      return { path: [...path, later], at: 'value', message: `repeats item [${earlier}]; list each value once` };
    }
    default:
      return { path, at: 'value', message: e.message ?? `fails ${e.keyword}` };
  }
}

/** Every schema problem in `data` (the document as written, after ${VAR} expansion). */
export function validateConfigData(data: unknown): Issue[] {
  const validate = validator(data);
  if (validate(data)) return [];
  const out: Issue[] = [];
  for (const e of validate.errors ?? []) {
    const issue = translate(e, data);
    if (issue) out.push(issue);
  }
  return out;
}
