// Native addons inside the single binary (build/bin.mjs). A SEA binary can only `require` Node's
// built-in modules, and the dynamic loader needs a file: each addon travels as a SEA asset, is written
// once to a cache directory and loaded with process.dlopen. The build replaces the addon lookups of
// better-sqlite3 (`bindings`) and serialport (`node-gyp-build`) with loadAddon(); our own small addon
// (src/sea/pages.c) is loaded by name.
//
// Where the files go, first usable wins:
//   1. $SLUICE_NATIVE_DIR                     explicit, for read-only systems with one writable spot
//   2. $CACHE_DIRECTORY                       systemd's CacheDirectory= (the unit sets /var/cache/sluice)
//   3. $XDG_CACHE_HOME/sluice, ~/.cache/sluice
//   4. $TMPDIR/sluice-<uid>                    read-only homes; made 0700 and must be ours
// Inside it: <version>-<arch>-<id>/<name>.node, where <id> hashes the addons of this build, so two
// builds never share a file (about 2.5 MB per build; another build's directory goes after a week
// unused). Files are written to a temporary name and renamed, so a process that starts while another
// is writing (an agent and a `sluice status`) never loads half a file.
import { closeSync, fsyncSync, lstatSync, mkdirSync, openSync, readdirSync, renameSync, rmSync, statSync, utimesSync, writeSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import * as sea from 'node:sea';

// Stamped by build/bin.mjs: a hash of this build's addons.
declare const SLUICE_NATIVE_ID: string | undefined;
declare const SLUICE_VERSION: string | undefined;

const loaded = new Map<string, unknown>();
let chosenDir: string | undefined;

export class NativeAddonError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'NativeAddonError';
  }
}

function buildId(): string {
  const version = typeof SLUICE_VERSION === 'string' ? SLUICE_VERSION : 'dev';
  const id = typeof SLUICE_NATIVE_ID === 'string' ? SLUICE_NATIVE_ID : 'dev';
  return `${version}-${process.arch}-${id}`;
}

/** Candidate cache roots in order of preference (see the header). */
export function cacheRoots(env: NodeJS.ProcessEnv = process.env): string[] {
  const roots: string[] = [];
  if (env.SLUICE_NATIVE_DIR) roots.push(env.SLUICE_NATIVE_DIR);
  // systemd passes a colon-separated list when CacheDirectory= names several.
  if (env.CACHE_DIRECTORY) roots.push(join(env.CACHE_DIRECTORY.split(':')[0], 'native'));
  const xdg = env.XDG_CACHE_HOME || (env.HOME || safeHomedir() ? join(env.HOME || safeHomedir(), '.cache') : '');
  if (xdg) roots.push(join(xdg, 'sluice', 'native'));
  roots.push(tmpRoot());
  return roots;
}

/** The last resort, in a directory everyone can write to: only trusted once checked to be ours alone. */
function tmpRoot(): string {
  const uid = typeof process.getuid === 'function' ? process.getuid() : 0;
  return join(tmpdir(), `sluice-${uid}`, 'native');
}

function safeHomedir(): string {
  try {
    return homedir();
  } catch {
    return '';
  }
}

/** A shared directory (tmp) could hold someone else's file under our name: only trust our own. */
function assertPrivate(dir: string): void {
  const st = lstatSync(dir);
  const uid = typeof process.getuid === 'function' ? process.getuid() : st.uid;
  if (!st.isDirectory() || st.uid !== uid || (st.mode & 0o022) !== 0) {
    throw new Error(`${dir} is not a private directory owned by uid ${uid}`);
  }
}

/**
 * mkdir -p, one level at a time. Not mkdirSync's `recursive`: on a pseudo file system (/proc) it
 * retries ENOENT forever, and a start-up that hangs is worse than one that moves to the next candidate.
 */
function makeDirs(dir: string): void {
  const missing: string[] = [];
  let at = dir;
  while (sizeOf(at) === -1) {
    missing.unshift(at);
    const parent = dirname(at);
    if (parent === at) break;
    at = parent;
  }
  for (const d of missing) {
    try {
      mkdirSync(d, { mode: 0o700 });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
  }
}

function writeAtomically(file: string, bytes: Uint8Array): void {
  const tmp = `${file}.${process.pid}.tmp`;
  const fd = openSync(tmp, 'w', 0o500);
  try {
    let offset = 0;
    while (offset < bytes.length) offset += writeSync(fd, bytes, offset, bytes.length - offset);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, file);
}

/** Another build of this architecture unused for this long has its addons removed. */
const PRUNE_AFTER_MS = 7 * 24 * 3600_000;

/**
 * Other builds' directories for this architecture, unused for a week: an upgrade leaves the old
 * addons behind otherwise. Not at once: a self-updated binary and the installed one that launches
 * it may both run, and each would otherwise rewrite its addons on every start.
 */
function pruneSiblings(root: string, keep: string): void {
  try {
    const now = Date.now();
    for (const name of readdirSync(root)) {
      if (name === keep || !name.includes(`-${process.arch}-`)) continue;
      const dir = join(root, name);
      if (now - statSync(dir).mtimeMs > PRUNE_AFTER_MS) rmSync(dir, { recursive: true, force: true });
    }
  } catch {
    // Pruning is housekeeping; a failure costs a few MB of disk, not correctness.
  }
}

/** Marks a build's directory as in use (its mtime), for the pruning above. */
function touch(dir: string): void {
  try {
    const now = new Date();
    utimesSync(dir, now, now);
  } catch {
    // A read-only cache (SLUICE_NATIVE_DIR prepared in advance) is used as it is.
  }
}

/** Writes `name`'s asset under the first usable root (once) and returns the file's path. */
function materialise(name: string, bytes: Uint8Array): string {
  const id = buildId();
  const roots = chosenDir === undefined ? cacheRoots() : [chosenDir];
  const failures: string[] = [];
  for (const root of roots) {
    const dir = join(root, id);
    const file = join(dir, `${name}.node`);
    try {
      makeDirs(dir);
      if (root === tmpRoot()) assertPrivate(dirname(root));
      if (sizeOf(file) !== bytes.length) {
        writeAtomically(file, bytes);
        pruneSiblings(root, id);
      }
      if (chosenDir === undefined) touch(dir);
      chosenDir = root;
      return file;
    } catch (err) {
      failures.push(`${root}: ${(err as Error).message}`);
    }
  }
  throw new NativeAddonError(
    `cannot write the native addon ${name} to any cache directory (${failures.join('; ')}). Set SLUICE_NATIVE_DIR to a writable directory.`,
  );
}

function sizeOf(path: string): number {
  try {
    return statSync(path).size;
  } catch {
    return -1;
  }
}

/**
 * The exports of the native addon `name` (the SEA asset `native/<name>.node`), loaded once per process.
 */
export function loadAddon(name: string): unknown {
  const cached = loaded.get(name);
  if (cached !== undefined) return cached;
  if (!sea.isSea()) throw new NativeAddonError(`loadAddon(${name}) is only for the single binary`);
  let raw: ArrayBuffer;
  try {
    raw = sea.getRawAsset(`native/${name}.node`) as ArrayBuffer;
  } catch (err) {
    throw new NativeAddonError(`this binary carries no native addon ${name}`, { cause: err });
  }
  const file = materialise(name, new Uint8Array(raw));
  const mod = { exports: {} as unknown };
  try {
    process.dlopen(mod, file);
  } catch (err) {
    throw new NativeAddonError(`cannot load ${file}: ${(err as Error).message}`, { cause: err });
  }
  loaded.set(name, mod.exports);
  return mod.exports;
}
