// The agent hands back the pages of its own executable that only start-up used (the single binary's,
// or node's under `node bin/sluice.js`, with the addon npm install compiled), and this module is how
// `sluice run` executes itself again with its heap limits (src/cli/limits.ts).
//
// The binary is Node plus the bundle, 87 MB on disk. Starting touches a large part of it: Node's
// bootstrap and module loader, the 2 MB bundle read out of the SEA note, the paths that config
// validation and the drivers' first calls take once. The kernel keeps those clean file pages mapped
// until memory pressure reclaims them, and they count in RSS: measured at 10k points/s, 44–55 MB of
// the executable stayed mapped (more when the file sat in the page cache, from fault-around), of which
// steady state maps back 24–28 MB. Before and after the inputs start, and again ten seconds later
// (after the first commits, compactions and rollups: src/cli/run.ts), it asks the kernel to unmap the
// executable's read-only segments: what it still uses comes back on the next access (a minor fault
// from the page cache, no disk read), the rest stops counting in its RSS. The pages stay in the page
// cache, reclaimable as before; what changes is that RSS shows the working set, and that the kernel,
// which shields mapped code from reclaim, can let the start-up-only pages go first.
//
// Only segments that are never writable are dropped (src/sea/pages.c): MADV_DONTNEED on a private
// mapping throws away copied-on-write pages (relocated data), and those are not in the file to come
// back from.
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import * as sea from 'node:sea';
import { fileURLToPath } from 'node:url';
import type { Logger } from '../core/component.js';
import { loadAddon } from './native.js';

export interface PageRelease {
  /** Read-only segments of the executable the kernel unmapped, and their size. */
  segments: number;
  bytes: number;
  /** File-backed RSS of the whole process (executable, libraries, addons) before and after, from /proc/self/status. */
  fileKbBefore: number;
  fileKbAfter: number;
  /** errno of the first segment the kernel refused, 0 when none was. */
  errno: number;
}

interface PagesAddon {
  releaseExecutablePages(): { segments: number; bytes: number; errno: number };
  execve(path: string, argv: string[], env: string[]): number;
}

let nodeAddon: PagesAddon | null | undefined;

/**
 * The addon: the binary's own (an asset, src/sea/native.ts); under node the one `npm install` compiled
 * for this Node (build/addon.mjs) in the package's build/out, when it could. Undefined without one.
 */
function pagesAddon(): PagesAddon | undefined {
  if (process.platform !== 'linux') return undefined;
  if (sea.isSea()) return loadAddon('pages') as PagesAddon;
  if (nodeAddon === undefined) {
    nodeAddon = null;
    // Up from this module (src/sea, or dist/ once bundled) to the package root, the first folder with a package.json.
    for (let dir = dirname(fileURLToPath(import.meta.url)); ; dir = dirname(dir)) {
      if (existsSync(join(dir, 'package.json'))) {
        const file = join(dir, 'build/out/node-addon/pages.node');
        if (existsSync(file)) nodeAddon = createRequire(import.meta.url)(file) as PagesAddon;
        break;
      }
      if (dirname(dir) === dir) break;
    }
  }
  return nodeAddon ?? undefined;
}

/**
 * Replaces the running process with its own executable (same pid): `args` after the program name
 * (under node the script and its arguments), `env` as its whole environment. Returns only when that
 * failed: the errno, or undefined where there is no addon (Node 20 has no process.execve).
 */
export function execSelf(args: readonly string[], env: NodeJS.ProcessEnv): number | undefined {
  const addon = pagesAddon();
  if (!addon) return undefined;
  const envList = Object.entries(env).flatMap(([k, v]) => (v === undefined ? [] : [`${k}=${v}`]));
  return addon.execve(process.execPath, [process.argv0 || process.execPath, ...args], envList);
}

function rssFileKb(): number {
  try {
    const m = /^RssFile:\s+(\d+)/m.exec(readFileSync('/proc/self/status', 'utf8'));
    return m ? Number(m[1]) : NaN;
  } catch {
    return NaN;
  }
}

/**
 * Drops the start-up pages of the running executable: the binary, or node (the mapping is this
 * process's own; other Node programs keep theirs). Undefined where there is no addon.
 */
export function dropStartupPages(): PageRelease | undefined {
  const addon = pagesAddon();
  if (!addon) return undefined;
  const fileKbBefore = rssFileKb();
  const released = addon.releaseExecutablePages();
  return { ...released, fileKbBefore, fileKbAfter: rssFileKb() };
}

/**
 * dropStartupPages(), said in the log at debug level (memory hygiene: the log stays quiet in steady
 * state); a failure is logged and changes nothing else.
 */
export function releaseStartupPages(log: Logger): void {
  try {
    const released = dropStartupPages();
    if (!released) return;
    const mb = (kb: number) => Math.round(kb / 102.4) / 10;
    const fields = { segments: released.segments, segments_mb: mb(released.bytes / 1024), file_mb_before: mb(released.fileKbBefore), file_mb_after: mb(released.fileKbAfter) };
    if (released.errno !== 0) log.warn({ ...fields, errno: released.errno }, 'the kernel kept some start-up pages of the executable');
    else log.debug(fields, 'start-up pages of the executable released');
  } catch (err) {
    // Memory hygiene, not function: the agent runs on with the pages mapped.
    log.warn({ err }, 'could not release the start-up pages of the executable');
  }
}
