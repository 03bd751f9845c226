// What the benchmarks read about the processes they start (Linux /proc) and a free loopback port.
import { execFileSync } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import { createServer } from 'node:net';

const CLK_TCK = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;

export function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

/** The process and its descendants: `sluice run` is a parent that waits and the agent as its child (src/cli/limits.ts). */
export function processTree(pid) {
  const children = new Map();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (!children.has(ppid)) children.set(ppid, []);
      children.get(ppid).push(Number(name));
    } catch {
      // gone meanwhile
    }
  }
  const out = [];
  const visit = (p) => {
    out.push(p);
    for (const c of children.get(p) ?? []) visit(c);
  };
  visit(pid);
  return out;
}

function cpuSecondsOf(pid) {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // Fields after the command name (which may hold spaces) start at ") "; utime and stime are fields 14 and 15.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / CLK_TCK;
}

/** CPU seconds (user + system) a process and its descendants have used so far. */
export function cpuSeconds(pid) {
  let s = 0;
  for (const p of processTree(pid)) {
    try {
      s += cpuSecondsOf(p);
    } catch {
      // gone meanwhile
    }
  }
  return s;
}

function statusMb(pid) {
  let text;
  try {
    text = readFileSync(`/proc/${pid}/status`, 'utf8');
  } catch {
    return null;
  }
  const mb = (key) => Number(new RegExp(`^${key}:\\s+(\\d+)`, 'm').exec(text)?.[1] ?? NaN) / 1024;
  return { rss: mb('VmRSS'), peak: mb('VmHWM'), anon: mb('RssAnon'), file: mb('RssFile') };
}

/**
 * Memory lines of /proc/<pid>/status in MB, summed over the process and its descendants: `VmRSS`,
 * `VmHWM` (peak RSS; the sum of each process's peak, an upper bound of the tree's), `RssAnon`,
 * `RssFile`. Null for a process that has gone.
 */
export function memoryMb(pid) {
  const own = statusMb(pid);
  if (!own) return null;
  for (const p of processTree(pid).slice(1)) {
    const m = statusMb(p);
    if (!m) continue;
    for (const k of Object.keys(own)) own[k] += m[k];
  }
  return own;
}

/**
 * /proc/<pid>/smaps_rollup in MB, summed over the tree: rss, pss (shared pages divided among their
 * users: what the tree costs the machine), private (clean + dirty), anonymous and file-backed (rss − anonymous),
 * and the largest file-backed part of one process (fileMax).
 */
export function smapsMb(pid) {
  const sum = { rss: 0, pss: 0, private: 0, anon: 0, file: 0, fileMax: 0 };
  let any = false;
  for (const p of processTree(pid)) {
    let text;
    try {
      text = readFileSync(`/proc/${p}/smaps_rollup`, 'utf8');
    } catch {
      continue;
    }
    any = true;
    const kb = (key) => Number(new RegExp(`^${key}:\\s+(\\d+)`, 'm').exec(text)?.[1] ?? 0);
    sum.rss += kb('Rss') / 1024;
    sum.pss += kb('Pss') / 1024;
    sum.private += (kb('Private_Clean') + kb('Private_Dirty')) / 1024;
    sum.anon += kb('Anonymous') / 1024;
    sum.file += (kb('Rss') - kb('Anonymous')) / 1024;
    sum.fileMax = Math.max(sum.fileMax, (kb('Rss') - kb('Anonymous')) / 1024);
  }
  return any ? sum : null;
}
