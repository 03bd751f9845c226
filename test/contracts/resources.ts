// What a component holds on to, for the lifecycle contracts ("stop resolves when every timer, socket
// and file handle is released"). Three views, because none sees everything:
//   - libuv handles by identity (process._getActiveHandles: sockets, servers, child processes), so an
//     in-process peer's own sockets (the v2 fake) can be told from the component's;
//   - ref'ed timers and immediates by identity, which handles omit: an async hook keeps the live ones
//     (counting process.getActiveResourcesInfo's 'Timeout' entries lets one timer cleared meanwhile
//     hide one leaked);
//   - file descriptors other than sockets and pipes (/proc/self/fd), which is how a native addon's
//     handle shows (serialport opens the tty in C++, invisible to the two views above).
import { createHook } from 'node:async_hooks';
import { readdirSync, readlinkSync } from 'node:fs';
import type { Socket } from 'node:net';

export interface ResourceSnapshot {
  handles: Set<unknown>;
  timers: Set<object>;
  files: Map<string, number>;
}

interface TimerLike {
  hasRef?(): boolean;
  _destroyed?: boolean;
  _idleTimeout?: number;
  _onTimeout?: { name?: string };
  _onImmediate?: { name?: string };
}

/** Timers and immediates not yet fired or cleared, by async id (the hook's destroy says when they go). */
const liveTimers = new Map<number, { timer: TimerLike; origin: Error }>();
/** Where each timer was made, formatted only when one is reported. */
const origins = new WeakMap<object, Error>();
createHook({
  init(asyncId, type, _trigger, resource) {
    if (type !== 'Timeout' && type !== 'Immediate') return;
    const origin = new Error('created');
    liveTimers.set(asyncId, { timer: resource, origin });
    origins.set(resource, origin);
  },
  destroy(asyncId) {
    liveTimers.delete(asyncId);
  },
}).enable();

function refedTimers(): Set<object> {
  const out = new Set<object>();
  // An unref'ed timer keeps nothing alive (and the contract's "every timer" is about what keeps running).
  // The destroy hook runs a little after a timer is cleared or fired; its own flags say so at once.
  for (const { timer } of liveTimers.values()) {
    if (timer._destroyed === true || timer._idleTimeout === -1) continue;
    if (timer.hasRef?.() ?? true) out.add(timer);
  }
  return out;
}

/** The first frame of the timer's creation outside node's internals and node_modules, or the first at all. */
function originOf(t: object): string {
  const frames = (origins.get(t)?.stack ?? '').split('\n').slice(1).map((l) => l.trim().replace(/^at /, ''));
  const ours = frames.find((f) => !f.includes('node:') && !f.includes('/resources.ts') && !f.includes('node_modules'));
  const theirs = frames.find((f) => !f.includes('node:') && !f.includes('/resources.ts'));
  return ours === theirs || !theirs ? (ours ?? '?') : `${theirs}, from ${ours ?? '?'}`;
}

function describeTimer(t: TimerLike): string {
  const what = t._idleTimeout !== undefined ? `timer of ${t._idleTimeout} ms` : 'immediate';
  return `${what} made at ${originOf(t)}`;
}

function activeHandles(): unknown[] {
  // Undocumented but stable since Node 0.x; the only view that gives the handle objects themselves.
  return (process as unknown as { _getActiveHandles(): unknown[] })._getActiveHandles();
}

function tally(names: Iterable<string>): Map<string, number> {
  const out = new Map<string, number>();
  for (const n of names) out.set(n, (out.get(n) ?? 0) + 1);
  return out;
}

function openFiles(): Map<string, number> {
  const targets: string[] = [];
  for (const fd of readdirSync('/proc/self/fd')) {
    try {
      const target = readlinkSync(`/proc/self/fd/${fd}`);
      // Sockets and pipes are the handles' business (by identity); /proc/self/fd itself is this read.
      if (/^(socket|pipe|anon_inode):/.test(target) || target.startsWith('/proc/')) continue;
      targets.push(target);
    } catch {
      // Closed between readdir and readlink (the directory listing's own fd): not ours.
    }
  }
  return tally(targets);
}

export function snapshot(): ResourceSnapshot {
  return {
    handles: new Set(activeHandles()),
    timers: refedTimers(),
    files: openFiles(),
  };
}

function describeHandle(h: unknown): string {
  const name = (h as { constructor?: { name?: string } })?.constructor?.name ?? typeof h;
  const s = h as Partial<Socket>;
  if (name === 'Socket' || name === 'TLSSocket') return `${name} ${s.localAddress ?? '?'}:${s.localPort ?? '?'} -> ${s.remoteAddress ?? '?'}:${s.remotePort ?? '?'}`;
  return name;
}

/**
 * What is held now that was not in `before`, as readable lines ([] when nothing). `ignore` passes over
 * handles that belong to a peer running in this process (a fake server's accepted sockets).
 */
export function leaked(before: ResourceSnapshot, ignore: (handle: unknown) => boolean = () => false): string[] {
  const now = snapshot();
  const out: string[] = [];
  for (const h of now.handles) if (!before.handles.has(h) && !ignore(h)) out.push(`handle ${describeHandle(h)}`);
  for (const t of now.timers) if (!before.timers.has(t)) out.push(describeTimer(t));
  for (const [file, n] of now.files) if (n > (before.files.get(file) ?? 0)) out.push(`file ${file}`);
  return out;
}

/** True for a socket whose local port is `port`: the server side of a connection to an in-process peer. */
export function serverSideOf(port: number): (handle: unknown) => boolean {
  return (h) => (h as Partial<Socket>)?.localPort === port;
}
