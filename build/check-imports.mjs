// `npm run lint` part: the layers of ARCHITECTURE.md, enforced. Every relative import of production
// code (src/, drivers/; tests and test peers excluded) must point to its own folder or a lower layer,
// drivers import only the core, only the agent and the CLI open a store (everything else depends on
// the store's roles, src/store/roles.ts), and no module imports itself back through a cycle. ESLint's
// no-restricted-imports matches import strings, not the folder a relative path lands in, and cannot
// see cycles, hence this small checker: it reads the files as text, so it needs no build.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

// The tree to check: this repository, or the folder given (the checker's own test gives it small trees).
const root = resolve(process.argv[2] ?? join(dirname(fileURLToPath(import.meta.url)), '..'));

/** Bottom first. A module may import its own unit and any unit of a lower layer. */
const LAYERS = [
  ['src/core'],
  ['drivers', 'src/store', 'src/io', 'src/net', 'src/sea', 'src/log', 'src/version'],
  ['src/sync', 'src/query', 'src/rules'],
  ['src/config'],
  ['src/http'],
  ['src/agent'],
  ['src/fleet'],
  ['src/cli'],
];

/**
 * What of src/store a module outside the store, the agent and the CLI may import: the roles and the
 * store's pure helpers over row groups. The ring itself (ring.ts and the modules behind it) is opened
 * by the agent and the CLI, which hand the rest of the program a role.
 */
const STORE_FACE = ['src/store/roles.ts', 'src/store/builder.ts', 'src/store/rollup.ts', 'src/store/errors.ts'];
const STORE_OPENERS = ['src/store', 'src/agent', 'src/cli'];
/** Bare imports of the SQLite binding: only the store opens a database. */
const SQLITE = /(?:^|[\s;])(?:import|export)\s[^'"]*?from\s*['"]better-sqlite3['"]|import\(\s*['"]better-sqlite3['"]\s*\)/;

/** The unit a file belongs to: a folder of src/, a driver's folder, or the drivers' list itself. */
function unitOf(file) {
  const parts = file.split('/');
  if (parts[0] === 'drivers') return parts.length > 2 ? `drivers/${parts[1]}` : 'drivers';
  if (parts[0] === 'src') return `src/${parts[1].replace(/\.ts$/, '')}`;
  return parts[0];
}

function layerOf(unit) {
  const key = unit.startsWith('drivers/') ? 'drivers' : unit;
  const i = LAYERS.findIndex((names) => names.includes(key));
  return i < 0 ? undefined : i;
}

function* sources(dir) {
  for (const name of readdirSync(join(root, dir))) {
    const path = join(dir, name);
    if (statSync(join(root, path)).isDirectory()) {
      if (name !== 'testing' && name !== 'node_modules') yield* sources(path);
    } else if (name.endsWith('.ts') && !name.endsWith('.test.ts') && !name.endsWith('.d.ts')) yield path;
  }
}

const IMPORT = /(?:^|[\s;])(?:import|export)\s[^'"]*?from\s*['"](\.[^'"]+)['"]|import\(\s*['"](\.[^'"]+)['"]\s*\)|(?:^|[\s;])import\s*['"](\.[^'"]+)['"]/g;

const exists = (dir) => { try { return statSync(join(root, dir)).isDirectory(); } catch { return false; } };
const files = ['src', 'drivers'].filter(exists).flatMap((dir) => [...sources(dir)]);
const graph = new Map();
const problems = [];

for (const file of files) {
  const text = readFileSync(join(root, file), 'utf8');
  const targets = [];
  if (unitOf(file) !== 'src/store' && SQLITE.test(text)) problems.push(`${file}: imports better-sqlite3; only src/store opens a database`);
  for (const m of text.matchAll(IMPORT)) {
    const spec = m[1] ?? m[2] ?? m[3];
    const target = relative(root, resolve(root, dirname(file), spec)).replace(/\.js$/, '.ts');
    targets.push(target);
    const from = unitOf(file);
    const to = unitOf(target);
    if (from === to) continue;
    if (from.startsWith('drivers/') && to !== 'src/core') {
      problems.push(`${file}: imports ${spec} (${to}); a driver imports only src/core`);
      continue;
    }
    if (from === 'drivers' && !(to.startsWith('drivers/') && target.endsWith('/index.ts')) && to !== 'src/core') {
      problems.push(`${file}: imports ${spec}; the drivers' list imports only each driver's index.ts`);
      continue;
    }
    if (to === 'src/store' && !STORE_OPENERS.includes(from) && !STORE_FACE.includes(target)) {
      problems.push(`${file}: imports ${spec}; only src/agent and src/cli open a store, the rest use a role from src/store/roles.ts`);
      continue;
    }
    const [lf, lt] = [layerOf(from), layerOf(to)];
    if (lt === undefined) {
      if (!to.startsWith('src/') && !to.startsWith('drivers')) continue; // text assets (config/default.yaml)
      problems.push(`${file}: imports ${spec} (${to}), a folder with no layer in build/check-imports.mjs`);
    } else if (lf === undefined) {
      problems.push(`${file}: ${from} has no layer in build/check-imports.mjs`);
    } else if (lt > lf) {
      problems.push(`${file}: imports ${spec} (${to}), which is above ${from}; layers point down (ARCHITECTURE.md)`);
    }
  }
  graph.set(file, targets);
}

// Cycles between modules, type-only imports included: a cycle of types is still two modules that
// cannot be understood apart. Depth-first search, each cycle reported once by its first module.
const state = new Map();
const stack = [];
const cycles = new Set();
function visit(file) {
  state.set(file, 'open');
  stack.push(file);
  for (const next of graph.get(file) ?? []) {
    if (!graph.has(next)) continue;
    if (state.get(next) === 'open') {
      const cycle = stack.slice(stack.indexOf(next));
      const start = cycle.indexOf([...cycle].sort()[0]);
      cycles.add([...cycle.slice(start), ...cycle.slice(0, start)].join(' -> '));
    } else if (!state.has(next)) visit(next);
  }
  stack.pop();
  state.set(file, 'done');
}
for (const file of graph.keys()) if (!state.has(file)) visit(file);
for (const c of cycles) problems.push(`import cycle: ${c} -> (back to the first)`);

if (problems.length > 0) {
  console.error(problems.join('\n'));
  console.error(`check-imports: ${problems.length} problem(s) in ${files.length} files`);
  process.exit(1);
}
console.log(`check-imports: ${files.length} files, layers point down, no cycles`);
