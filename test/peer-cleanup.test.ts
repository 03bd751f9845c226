// Peers die with the test process that started them, even when it is killed and no afterEach runs: a
// test worker that times out or crashes must not leave socat or a broker running on the machine.
import { spawn, spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { describe, expect, it } from 'vitest';
import { tmpDir } from './helpers/tmp.js';

const HELPERS = fileURLToPath(new URL('./helpers/', import.meta.url));

/** Pids of live processes whose command line contains `needle`. */
const pidsWith = (needle: string): number[] =>
  (spawnSync('pgrep', ['-f', needle], { encoding: 'utf8' }).stdout ?? '')
    .split('\n')
    .filter(Boolean)
    .map(Number);

async function waitFor(check: () => boolean, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (check()) return true;
    await new Promise((r) => setTimeout(r, 50));
  }
  return check();
}

/** Asserts that no process naming `needle` outlives the killed worker; ends any that did. */
async function expectGone(needle: string): Promise<void> {
  const gone = await waitFor(() => pidsWith(needle).length === 0, 5_000);
  for (const pid of pidsWith(needle)) process.kill(pid, 'SIGKILL');
  expect(gone, `a process naming ${needle} outlived the test process`).toBe(true);
}

/**
 * Bundles `body` (which may import the helpers) into a plain script, runs it as a stand-in for a test
 * worker until it prints "ready", then kills it with SIGKILL so no cleanup code of its own can run.
 */
async function killMidTest(dir: string, body: string): Promise<void> {
  const entry = join(dir, 'worker.ts');
  writeFileSync(entry, body);
  const out = join(dir, 'worker.mjs');
  await build({ entryPoints: [entry], outfile: out, bundle: true, platform: 'node', format: 'esm', nodePaths: [HELPERS], logLevel: 'silent', external: ['vitest'] });
  const worker = spawn(process.execPath, [out], { stdio: ['ignore', 'pipe', 'inherit'] });
  try {
    await new Promise<void>((resolve, reject) => {
      let text = '';
      worker.stdout.on('data', (d: Buffer) => {
        text += d.toString();
        if (text.includes('ready')) resolve();
      });
      worker.once('exit', (code) => reject(new Error(`worker exited (${code}) before it was ready`)));
    });
  } finally {
    worker.kill('SIGKILL');
  }
}

describe('peers started by a test', () => {
  it('a socat pty pair ends when the test process is killed with SIGKILL', async () => {
    const dir = tmpDir('sluice-peer-cleanup-');
    await killMidTest(dir, `import { startPtyPair } from ${JSON.stringify(join(HELPERS, 'pty.ts'))};\nawait startPtyPair(${JSON.stringify(dir)});\nconsole.log('ready');\nsetInterval(() => {}, 1000);\n`);
    // socat's command line names the link paths, which live in this test's own directory.
    await expectGone(join(dir, 'tty'));
  });

  it('a mosquitto broker ends when the test process is killed with SIGKILL', async () => {
    const dir = tmpDir('sluice-peer-cleanup-');
    const dirFile = join(dir, 'broker-dir');
    await killMidTest(
      dir,
      `import { writeFileSync } from 'node:fs';\nimport { startMosquitto } from ${JSON.stringify(join(HELPERS, 'mosquitto.ts'))};\nconst m = await startMosquitto();\nwriteFileSync(${JSON.stringify(dirFile)}, m.dir);\nconsole.log('ready');\nsetInterval(() => {}, 1000);\n`,
    );
    // The broker's config file lives in its own directory, which its command line names.
    const brokerDir = readFileSync(dirFile, 'utf8');
    await expectGone(brokerDir);
  });
});
