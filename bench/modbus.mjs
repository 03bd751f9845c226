// Modbus polling cost: a real pymodbus TCP server simulating 10 devices (unit ids 1-10) × 100 holding
// registers whose values move every second, and the real agent (built CLI) polling all of them every
// 1 s into its ring. The figure is the agent's CPU time (utime + stime from /proc/<pid>/stat) over
// ~20 s of steady polling, as a percentage of one core; start-up is excluded. Target: ≤ 5 %.
import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpuSeconds, freePort, memoryMb } from './proc.mjs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const ROOT = new URL('..', import.meta.url).pathname;
const CLI = join(ROOT, 'bin', 'sluice.js');
const PYTHON = '/usr/bin/python3'; // Debian's, with python3-pymodbus
const SERVER = join(ROOT, 'drivers', 'modbus', 'testing', 'server.py');
const DEVICES = 10;
const REGISTERS = 100;
const INTERVAL_MS = 1000;
const MEASURE_MS = Number(process.env.SLUICE_BENCH_MODBUS_MS ?? 20_000);
const WARMUP_MS = 3000;

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const rssMb = (pid) => memoryMb(pid)?.rss ?? NaN;

/** Per device: 50 uint16 scaled 0.1, 30 int16, 10 float32 (20 registers) = 100 registers, 90 fields. */
function deviceRegisters() {
  const regs = [];
  for (let a = 0; a < 50; a++) regs.push(`{ name: u${a}, table: holding, address: ${a}, scale: 0.1 }`);
  for (let a = 50; a < 80; a++) regs.push(`{ name: i${a}, table: holding, address: ${a}, type: int16 }`);
  for (let a = 80; a < 100; a += 2) regs.push(`{ name: f${a}, table: holding, address: ${a}, type: float32 }`);
  return regs;
}

function startServer(port) {
  const units = {};
  for (let u = 1; u <= DEVICES; u++) units[u] = { hr: { 0: Array.from({ length: REGISTERS }, (_, i) => (i * 7 + u) & 0xffff) } };
  const proc = spawn(PYTHON, [SERVER, JSON.stringify({ tcp: { port }, units })], { stdio: ['pipe', 'pipe', 'pipe'] });
  let stderr = '';
  proc.stderr.on('data', (d) => (stderr += d));
  return new Promise((resolve, reject) => {
    proc.once('error', (err) => reject(new Error(`cannot start ${PYTHON} ${SERVER}: ${err.message}`)));
    proc.once('exit', (code) => reject(new Error(`pymodbus server exited (${code}): ${stderr}`)));
    proc.stdout.once('data', () => resolve(proc));
  });
}

/** Moves every device's values a little, as live sensors would (so the store sees changing data). */
function wiggle(server, tick) {
  for (let u = 1; u <= DEVICES; u++) {
    const values = Array.from({ length: 80 }, (_, i) => (500 + i + Math.round(20 * Math.sin((tick + i + u) / 7))) & 0xffff);
    server.stdin.write(JSON.stringify({ set: { unit: u, table: 'hr', address: 0, values } }) + '\n');
  }
}

export async function modbusBench() {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-bench-modbus-'));
  const port = await freePort();
  const server = await startServer(port);
  const devices = [];
  for (let u = 1; u <= DEVICES; u++) {
    devices.push(`      - unit_id: ${u}`, `        name: dev${String(u).padStart(2, '0')}`, '        registers:', ...deviceRegisters().map((r) => `          - ${r}`));
  }
  const cfg = join(dir, 'bench.yaml');
  writeFileSync(
    cfg,
    [
      'version: 1',
      'agent: { id: bench }',
      'http: { listen: "off" }',
      'inputs:',
      '  plc:',
      '    type: modbus',
      `    url: tcp://127.0.0.1:${port}`,
      `    interval: ${INTERVAL_MS}ms`,
      '    timeout: 1s',
      '    devices:',
      ...devices,
      '',
    ].join('\n'),
  );
  const agent = spawn(process.execPath, [CLI, 'run', '-c', cfg, '--data-dir', join(dir, 'data')], { stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  agent.stdout.on('data', (d) => (log += d));
  agent.stderr.on('data', (d) => (log += d));
  const exited = new Promise((resolve) => agent.once('exit', (code) => resolve(code)));
  let tick = 0;
  const wiggler = setInterval(() => wiggle(server, tick++), INTERVAL_MS);
  try {
    await sleep(WARMUP_MS);
    const cpu0 = cpuSeconds(agent.pid);
    const server0 = cpuSeconds(server.pid);
    const t0 = performance.now();
    const rss = [rssMb(agent.pid)];
    while (performance.now() - t0 < MEASURE_MS) {
      await sleep(1000);
      rss.push(rssMb(agent.pid));
    }
    if (process.env.SLUICE_BENCH_TRACE) console.error('rss MB per second:', rss.map((r) => r.toFixed(0)).join(' '));
    const wallS = (performance.now() - t0) / 1000;
    const cpuPct = ((cpuSeconds(agent.pid) - cpu0) / wallS) * 100;
    const serverPct = ((cpuSeconds(server.pid) - server0) / wallS) * 100;
    agent.kill('SIGTERM');
    const code = await exited;
    if (code !== 0) throw new Error(`agent exited ${code}:\n${log}`);
    const status = JSON.parse(execFileSync(process.execPath, [CLI, 'status', '--json', '--data-dir', join(dir, 'data')], { encoding: 'utf8' }));
    const warnings = log.split('\n').filter((l) => /"level":(40|50)/.test(l)).length;
    return [
      {
        figure: `modbus TCP: ${DEVICES} devices × ${REGISTERS} holding registers every ${INTERVAL_MS / 1000} s`,
        devices: DEVICES,
        registers: DEVICES * REGISTERS,
        fields_per_poll: DEVICES * 90,
        seconds: Math.round(wallS * 10) / 10,
        agent_cpu_pct_one_core: cpuPct,
        target_cpu_pct: 5,
        agent_rss_mb_start: rss[0],
        agent_rss_mb_end: rss.at(-1),
        server_cpu_pct_one_core: serverPct,
        points_stored: status.points,
        values_stored: status.values,
        warnings_logged: warnings,
      },
    ];
  } finally {
    clearInterval(wiggler);
    if (agent.exitCode === null) agent.kill('SIGKILL');
    server.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
}

// `node bench/modbus.mjs` runs it alone.
if (import.meta.url === `file://${process.argv[1]}`) {
  console.log(JSON.stringify(await modbusBench(), null, 2));
}
