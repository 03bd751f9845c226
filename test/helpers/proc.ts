// What the tests read about the processes they start (Linux /proc).
import { readFileSync, readdirSync } from 'node:fs';

/** Pids whose parent is `pid` (from /proc/<pid>/stat): `sluice run` should leave none behind it. */
export function childrenOf(pid: number): number[] {
  return readdirSync('/proc')
    .filter((name) => /^\d+$/.test(name))
    .filter((name) => {
      try {
        const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
        return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === pid;
      } catch {
        return false; // gone meanwhile
      }
    })
    .map(Number);
}
