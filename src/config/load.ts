// Loads a config: YAML (with positions) → ${VAR} expansion → schema validation → decode (defaults,
// units) → cross-field rules. Every stage reports all of its problems; the result is either a fully
// decoded config or the complete list of errors, each with file, line, column and key path.
import { readFileSync } from 'node:fs';
import { hostname as osHostname } from 'node:os';
import { Value } from '@sinclair/typebox/value';
import type { TSchema } from '@sinclair/typebox';
import { LineCounter, isAlias, isMap, isScalar, isSeq, parseDocument, type Document, type Node } from 'yaml';
import defaultText from '../../config/default.yaml';
import { expandEnv, type Env } from './env.js';
import { formatPath, sortErrors, type ConfigError, type Path, type PathSegment } from '../core/schema/errors.js';
import type { RegisteredComponent } from '../core/schema/kit.js';
import {
  INPUT_COMPONENTS,
  OUTPUT_COMPONENTS,
  SECTIONS,
  finishConfig,
  type InputConfig,
  type OutputConfig,
  type PartialConfig,
  type SluiceConfig,
} from './schema.js';
import { validateConfigData, type Issue } from './validate.js';

/** The text of config/default.yaml, embedded in the bundle: what `sluice run` uses without -c. */
export const defaultConfigText: string = defaultText;

export interface LoadOptions {
  /** Path of the config file; read unless `text` is given, and named in every error. */
  file?: string;
  /** The config text itself. */
  text?: string;
  /** Load the embedded default config (config/default.yaml); also what happens with neither file nor text. */
  embeddedDefault?: boolean;
  /** Variables for ${VAR} expansion. Default: process.env. */
  env?: Env;
  /** Default of agent.id. Default: os.hostname(). */
  hostname?: string;
}

export type LoadResult = { ok: true; config: SluiceConfig } | { ok: false; errors: ConfigError[] };

const FATAL_YAML = (code: string): boolean => code !== 'DUPLICATE_KEY';

function keyOf(node: unknown): string | undefined {
  return isScalar(node) ? String(node.value) : undefined;
}

/** Finds the source offset for an issue: the key or value at `path`, or the nearest existing ancestor's key. */
class Locator {
  constructor(
    private readonly doc: Document.Parsed,
    private readonly lines: LineCounter,
    private readonly file: string,
  ) {}

  private offset(path: Path, at: 'key' | 'value'): number {
    let node: unknown = this.doc.contents;
    let key: Node | undefined;
    for (const seg of path) {
      if (isAlias(node)) node = node.resolve(this.doc);
      let next: { key?: Node; value: unknown } | undefined;
      if (isMap(node)) {
        const pair = node.items.find((p) => keyOf(p.key) === String(seg));
        if (pair) next = { key: pair.key as Node, value: pair.value };
      } else if (isSeq(node) && typeof seg === 'number' && seg < node.items.length) {
        next = { value: node.items[seg] };
      }
      if (!next) return this.ownerOffset(node, key);
      key = next.key;
      node = next.value;
    }
    if (at === 'key' && key?.range) return key.range[0];
    const range = (node as Node | null)?.range;
    // `key:` with nothing after it has an empty value node; the key is the better place to point at.
    if (range && range[1] > range[0]) return range[0];
    return this.ownerOffset(node, key);
  }

  private ownerOffset(node: unknown, key: Node | undefined): number {
    if (key?.range) return key.range[0];
    const range = (node as Node | null)?.range;
    return range ? range[0] : 0;
  }

  at(offset: number, path: Path, message: string): ConfigError {
    const { line, col } = this.lines.linePos(offset);
    return { file: this.file, line, col, path: formatPath(path), message };
  }

  issue(i: Issue): ConfigError {
    return this.at(this.offset(i.path, i.at), i.path, i.message);
  }
}

/** The deepest key path whose node contains `offset` and that node's start, so even a syntax error can say where it is. */
interface SourceSpot {
  path: PathSegment[];
  /** Start of the deepest node containing the offset. */
  start: number | undefined;
  /** The deepest [ ] or { } collection containing the offset. */
  flow: { path: PathSegment[]; start: number } | undefined;
}

function pathAt(doc: Document.Parsed, offset: number): SourceSpot {
  const path: PathSegment[] = [];
  let node: unknown = doc.contents;
  let start: number | undefined;
  let flow: SourceSpot['flow'];
  for (;;) {
    if ((isMap(node) || isSeq(node)) && node.flow && node.range) flow = { path: [...path], start: node.range[0] };
    let next: unknown;
    if (isMap(node)) {
      for (const p of node.items) {
        const keyStart = (p.key as Node | null)?.range?.[0] ?? Infinity;
        const end = (p.value as Node | null)?.range?.[2] ?? (p.key as Node | null)?.range?.[2] ?? -1;
        if (offset >= keyStart && offset <= end) {
          path.push(keyOf(p.key) ?? '?');
          next = p.value;
          break;
        }
      }
    } else if (isSeq(node)) {
      node.items.forEach((item, i) => {
        const r = (item as Node | null)?.range;
        if (next === undefined && r && offset >= r[0] && offset <= r[2]) {
          path.push(i);
          next = item;
        }
      });
    }
    if (next === undefined) return { path, start, flow };
    start = (next as Node | null)?.range?.[0] ?? start;
    node = next;
  }
}

// YAML 1.2 core-schema resolution of a plain scalar, applied again after ${VAR} expansion so that
// `port: ${PORT}` is a number, as if the value had been written there. Quoted scalars stay strings.
function resolvePlain(text: string): unknown {
  if (/^(?:true|True|TRUE)$/.test(text)) return true;
  if (/^(?:false|False|FALSE)$/.test(text)) return false;
  if (/^[-+]?[0-9]+$/.test(text)) return Number(text);
  if (/^0x[0-9a-fA-F]+$/.test(text)) return Number(text);
  if (/^0o[0-7]+$/.test(text)) return parseInt(text.slice(2), 8);
  if (/^[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?$/.test(text)) return Number(text);
  return text;
}

/** Expands ${VAR} in every scalar value (not keys) in place; returns the problems with exact offsets. */
function expandDocument(doc: Document.Parsed, source: string, env: Env, loc: Locator): { errors: ConfigError[]; failed: Path[] } {
  const errors: ConfigError[] = [];
  const failed: Path[] = [];
  const walk = (node: unknown, path: PathSegment[]): void => {
    if (isMap(node)) {
      for (const p of node.items) walk(p.value, [...path, keyOf(p.key) ?? '?']);
    } else if (isSeq(node)) {
      node.items.forEach((item, i) => walk(item, [...path, i]));
    } else if (isAlias(node)) {
      if (!node.resolve(doc)) errors.push(loc.at(node.range?.[0] ?? 0, path, `unknown alias *${node.source}`));
    } else if (isScalar(node) && typeof node.value === 'string') {
      const r = expandEnv(node.value, env);
      if (!r.ok) {
        failed.push(path);
        const start = node.range?.[0] ?? 0;
        const src = source.slice(start, node.range?.[1] ?? start);
        for (const p of r.problems) {
          // The n-th occurrence of the token in the value is the n-th in the source, unless quoting escapes changed it.
          const nth = node.value.slice(0, p.index).split(p.token).length - 1;
          let at = -1;
          for (let k = 0; k <= nth; k++) at = src.indexOf(p.token, at + 1);
          errors.push(loc.at(at >= 0 ? start + at : start, path, p.message));
        }
      } else if (r.changed) {
        node.value = node.type === 'PLAIN' ? resolvePlain(r.value) : r.value;
      }
    }
  };
  walk(doc.contents, []);
  return { errors, failed };
}

/**
 * Defaults then Transform decoding (units). The data already passed the same schema in Ajv, so a
 * failure here is a bug in sluice; it is reported as a config error rather than thrown.
 */
function decode<T>(schema: TSchema, data: unknown, path: Path, report: (path: Path, message: string) => void): T | undefined {
  try {
    const decoded: unknown = Value.Decode(schema, Value.Default(schema, structuredClone(data)));
    return decoded as T;
  } catch (e) {
    report(path, `internal error decoding this section (please report it): ${(e as Error).message}`);
    return undefined;
  }
}

function startsWith(path: Path, prefix: Path): boolean {
  return prefix.length <= path.length && prefix.every((seg, k) => path[k] === seg);
}

function hasIssueUnder(issues: readonly Issue[], prefix: Path): boolean {
  return issues.some((i) => startsWith(i.path, prefix));
}

/**
 * A copy of `value` without the keys holding errors, so defaults stand in for them: the nearest map
 * key on the error's path is removed (for a bad item in a list of scalars, the list). `touched` are
 * the removed paths. Undefined if nothing can be removed.
 */
function withoutBadKeys(value: Record<string, unknown>, paths: readonly Path[]): { value: Record<string, unknown>; touched: Path[] } | undefined {
  const copy = structuredClone(value);
  const touched: Path[] = [];
  for (const path of paths) {
    let cut = -1;
    let node: unknown = copy;
    for (let k = 0; k < path.length; k++) {
      if (isRecord(node)) cut = k;
      node = isRecord(node) || Array.isArray(node) ? (node as Record<string | number, unknown>)[path[k]] : undefined;
    }
    if (cut < 0) return undefined;
    let parent: unknown = copy;
    for (const seg of path.slice(0, cut)) parent = (parent as Record<string | number, unknown>)[seg];
    delete (parent as Record<string, unknown>)[String(path[cut])];
    touched.push(path.slice(0, cut + 1));
  }
  return { value: copy, touched };
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

function readText(opts: LoadOptions): { file: string; text: string } | ConfigError {
  if (opts.text !== undefined) return { file: opts.file ?? '<config>', text: opts.text };
  if (opts.embeddedDefault === true || opts.file === undefined) return { file: '<default>', text: defaultConfigText };
  try {
    return { file: opts.file, text: readFileSync(opts.file, 'utf8') };
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    const why = err.code === 'ENOENT' ? 'no such file' : err.code === 'EACCES' ? 'permission denied' : err.message;
    return { file: opts.file, line: 1, col: 1, path: '(root)', message: `cannot read the config file: ${why}` };
  }
}

/**
 * Loads and validates a config. Never throws for a bad config; every problem found is in `errors`,
 * sorted by position. Pure apart from reading `file`: secrets files (token_file, …) are read by the
 * drivers when they start.
 */
export function loadConfig(opts: LoadOptions = {}): LoadResult {
  const src = readText(opts);
  if (!('text' in src)) return { ok: false, errors: [src] };
  const { file, text } = src;
  const env = opts.env ?? process.env;

  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false, uniqueKeys: true });
  const loc = new Locator(doc, lines, file);
  const errors: ConfigError[] = [];

  const yamlProblems = [...doc.errors, ...doc.warnings];
  // Once the parser meets a token it cannot place, it reports every later token too: one error per
  // word to the end of the file. The first one is the real problem; the rest is noise.
  const unexpected = yamlProblems.filter((e) => e.code === 'UNEXPECTED_TOKEN');
  for (const e of yamlProblems) {
    if (e.code === 'UNEXPECTED_TOKEN' && e !== unexpected[0]) continue;
    let message = e.code === 'DUPLICATE_KEY' ? 'duplicate key: this key is already set earlier in the same map' : `YAML: ${e.message}`;
    // A plain ${VAR} inside [ ] or { } is read as the start of a flow map: the usual cause, so say so.
    if (text[e.pos[0]] === '{' && text[e.pos[0] - 1] === '$') message += '; inside [ ] or { }, quote a reference: "${VAR}"';
    if (e === unexpected[0] && unexpected.length > 1) message += ` (${unexpected.length - 1} more errors after this one follow from it)`;
    const at = pathAt(doc, e.pos[0]);
    // An unclosed quote or bracket is noticed where something else begins, often lines later; where
    // the value or the [ { opens is where to look.
    let [offset, path] = [e.pos[0], at.path];
    if (e.code === 'MISSING_CHAR' && at.start !== undefined) offset = at.start;
    else if (/end with a [\]}]/.test(e.message) && at.flow) [offset, path] = [at.flow.start, at.flow.path];
    errors.push(loc.at(offset, path, message));
  }
  // After a syntax error the structure is a guess, so schema errors would mostly be noise.
  if (yamlProblems.some((e) => FATAL_YAML(e.code))) return { ok: false, errors: sortErrors(errors) };

  const expansion = expandDocument(doc, text, env, loc);
  errors.push(...expansion.errors);
  const samePath = (a: Path, b: Path): boolean => a.length === b.length && a.every((s, k) => s === b[k]);

  let data: unknown;
  try {
    data = doc.toJS({ maxAliasCount: 1000 });
  } catch (e) {
    // Unknown aliases were already reported where they are; anything else has no better position.
    if (errors.length === 0) errors.push(loc.at(0, [], `YAML: ${(e as Error).message}`));
    return { ok: false, errors: sortErrors(errors) };
  }
  if (data === null || data === undefined) {
    errors.push(loc.at(0, [], 'the config is empty; it needs at least "version: 1"'));
    return { ok: false, errors: sortErrors(errors) };
  }

  // `outputs:` with every output under it commented out is an empty section, not an error.
  if (isRecord(data)) {
    for (const [k, v] of Object.entries(data)) if (v === null && k !== 'version') delete data[k];
  }

  // A value whose ${VAR} failed still holds the reference: its schema errors would only repeat the
  // problem, so they are not shown, but the value counts as bad (never decoded or checked further).
  const issues = validateConfigData(data);
  const shown = issues.filter((i) => i.at === 'key' || !expansion.failed.some((f) => samePath(f, i.path)));
  issues.push(...expansion.failed.map((path): Issue => ({ path, at: 'value', message: '' })));
  if (!isRecord(data)) return { ok: false, errors: sortErrors([...errors, ...shown.map((i) => loc.issue(i))]) };

  const extra: Issue[] = [];
  const report = (path: Path, message: string, at: 'key' | 'value' = 'value'): void => void extra.push({ path, message, at });

  const sections: Record<string, unknown> = {};
  for (const [name, schema] of Object.entries(SECTIONS)) {
    if (!hasIssueUnder(issues, [name])) sections[name] = decode(schema, data[name] ?? {}, [name], report);
  }

  const components = (kind: 'inputs' | 'outputs', defs: readonly RegisteredComponent[]): Record<string, unknown> => {
    const out: Record<string, unknown> = {};
    const map = isRecord(data[kind]) ? data[kind] : {};
    for (const [id, raw] of Object.entries(map)) {
      out[id] = undefined;
      const def = isRecord(raw) ? defs.find((d) => d.type === raw.type) : undefined;
      if (!def || !isRecord(raw)) continue;
      const own = issues
        .filter((i) => startsWith(i.path, [kind, id]) && !(i.path.length === 2 && i.at === 'key'))
        .map((i) => i.path.slice(2));
      // With schema errors, the cross-field rules still run on the component minus its bad keys, so
      // one run reports both kinds; the component itself is not used.
      const fixed = own.length === 0 ? { value: raw, touched: [] } : withoutBadKeys(raw, own);
      if (!fixed || (own.length > 0 && !Value.Check(def.schema, Value.Default(def.schema, structuredClone(fixed.value))))) continue;
      const cfg = decode<Record<string, unknown>>(def.schema, fixed.value, [kind, id], report);
      if (!cfg) continue;
      def.finish?.(cfg as never, {
        id,
        raw: fixed.value,
        error: (path, message, at) => {
          if (!fixed.touched.some((t) => startsWith(path, t))) report([kind, id, ...path], message, at);
        },
      });
      if (own.length === 0) out[id] = cfg;
    }
    return out;
  };
  const inputs = components('inputs', INPUT_COMPONENTS);
  const outputs = components('outputs', OUTPUT_COMPONENTS);

  const partial = { ...sections, outputs } as PartialConfig;
  finishConfig(partial, data, opts.hostname ?? osHostname(), { error: report });

  errors.push(...[...shown, ...extra].map((i) => loc.issue(i)));
  if (errors.length > 0) return { ok: false, errors: sortErrors(errors) };

  const config: SluiceConfig = {
    version: 1,
    agent: partial.agent!,
    buffer: partial.buffer!,
    inputs: inputs as Record<string, InputConfig>,
    aggregate: partial.aggregate!,
    retention: partial.retention!,
    outputs: outputs as Record<string, OutputConfig>,
    http: partial.http!,
    rules: partial.rules!,
    fleet: partial.fleet!,
  };
  return { ok: true, config };
}
