// `npm install` / `npm ci` (the package's install script): src/sea/pages.c compiled for the Node that
// installs the package, into build/out/node-addon/pages.node. With it `sluice run` under node does what
// the single binary does: it executes itself with its heap limits (one process, no parent waiting) and
// hands back its start-up pages (src/cli/limits.ts, src/sea/pages.ts). It needs a C compiler and Node's
// headers (beside the node executable, as the official builds ship them); where either is missing it
// says so in one line and the install goes on: the agent then runs as a child with its limits, as
// before. No node-gyp: it would fetch the headers from the network, which a gateway often lacks.
//
// build/bin.mjs compiles the same source for the binaries with compilePagesAddon().
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');

/** Where `npm install` puts the addon for this Node (src/sea/pages.ts looks for it there). */
export const NODE_ADDON = join(root, 'build/out/node-addon/pages.node');

/** Compiles src/sea/pages.c to `out` with `cc` against this Node's headers (Node-API only: one source serves x64 and arm64). */
export function compilePagesAddon({ cc, strip, out }) {
  const headers = join(dirname(process.execPath), '../include/node');
  if (!existsSync(join(headers, 'node_api.h'))) throw new Error(`Node's headers are missing (${headers}/node_api.h)`);
  mkdirSync(dirname(out), { recursive: true });
  const run = (cmd, args) => execFileSync(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  run(cc, ['-std=gnu11', '-O2', '-Wall', '-Wextra', '-Werror', '-fPIC', '-shared', `-I${headers}`, '-o', out, join(root, 'src/sea/pages.c')]);
  run(strip, ['--strip-unneeded', out]);
  return out;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  if (process.platform !== 'linux') process.exit(0);
  try {
    compilePagesAddon({ cc: process.env.CC ?? 'cc', strip: 'strip', out: NODE_ADDON });
  } catch (err) {
    const why = err.stderr?.toString().trim().split('\n')[0] || err.message.split('\n')[0];
    process.stderr.write(`sluice: the memory addon was not built (${why}); \`sluice run\` will run the agent as a child process with its limits\n`);
  }
}
