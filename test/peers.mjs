#!/usr/bin/env node
// The real peers the tests start on loopback (mosquitto, InfluxDB 1.6.7, PostgreSQL 15, pymodbus, socat,
// qemu-user, …), each found by what the tests actually run, not by a package database: a package that
// is installed without one of its Recommends (python3-pymodbus without python3-serial) is missing here
// too. As root on Debian the missing packages are installed; anywhere else the script names them and
// the exact command, and exits 1, so `npm test` never starts a suite that is bound to fail half-way.
//
// Every package is named explicitly: `--no-install-recommends` keeps CI small, so nothing a test needs
// may arrive only as a Recommends.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';

/** Debian's python3, which carries python3-pymodbus (a pyenv python3 earlier on PATH does not). */
const PYTHON = '/usr/bin/python3';

const onPath = (command) => spawnSync('sh', ['-c', `command -v ${command}`], { stdio: 'ignore' }).status === 0;
const file = (path) => () => existsSync(path);
const command = (name) => () => onPath(name);
const pythonModule = (name) => () => existsSync(PYTHON) && spawnSync(PYTHON, ['-c', `import ${name}`], { stdio: 'ignore' }).status === 0;

/** What each Debian package brings that a test uses, and how to tell it is there. */
const PEERS = [
  { pkg: 'mosquitto', why: 'MQTT broker', present: file('/usr/sbin/mosquitto') },
  { pkg: 'influxdb', why: 'InfluxDB 1.6.7', present: command('influxd') },
  { pkg: 'postgresql-15', why: 'PostgreSQL 15', present: file('/usr/lib/postgresql/15/bin/postgres') },
  { pkg: 'python3', why: "Debian's python3 for pymodbus", present: file(PYTHON) },
  { pkg: 'python3-pymodbus', why: 'Modbus TCP/RTU server', present: pythonModule('pymodbus') },
  // pymodbus imports both at start; Debian lists them only as Recommends of python3-pymodbus.
  { pkg: 'python3-serial', why: 'pymodbus serial framer', present: pythonModule('serial') },
  { pkg: 'python3-serial-asyncio', why: 'pymodbus serial server', present: pythonModule('serial_asyncio') },
  { pkg: 'socat', why: 'pseudo-terminal pairs', present: command('socat') },
  { pkg: 'mbpoll', why: 'a second Modbus master', present: command('mbpoll') },
  { pkg: 'openssl', why: 'an X.509 user certificate for the OPC UA tests', present: command('openssl') },
  { pkg: 'gcc', why: 'the page-release addon (x64)', present: command('gcc') },
  { pkg: 'g++-aarch64-linux-gnu', why: 'arm64 addons and binary', present: () => ['aarch64-linux-gnu-g++', 'aarch64-linux-gnu-gcc', 'aarch64-linux-gnu-strip'].every(onPath) },
  { pkg: 'qemu-user-static', why: 'runs the arm64 binary', present: file('/usr/bin/qemu-aarch64-static') },
  { pkg: 'systemd', why: 'systemd-analyze verify of the unit', present: file('/usr/bin/systemd-analyze') },
  { pkg: 'util-linux', why: 'setpriv: peers die with the test process', present: command('setpriv') },
  { pkg: 'procps', why: 'pgrep: tests that look for leftover processes', present: command('pgrep') },
  { pkg: 'chromium', why: 'the status page in a browser', present: file('/usr/bin/chromium') },
  { pkg: 'fonts-dejavu-core', why: 'a font for the page screenshots', present: file('/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf') },
];

const missing = () => PEERS.filter((p) => !p.present());

const lacking = missing();
if (lacking.length === 0) process.exit(0);

const names = lacking.map((p) => p.pkg);
const installCommand = `apt-get install -y --no-install-recommends ${names.join(' ')}`;
const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
const isDebian = existsSync('/etc/debian_version') && onPath('apt-get');

if (!isRoot || !isDebian) {
  const how = isDebian ? `sudo apt-get update && sudo ${installCommand}` : `on Debian: apt-get update && ${installCommand}`;
  console.error(`test peers missing: ${lacking.map((p) => `${p.pkg} (${p.why})`).join(', ')}; install them with: ${how}`);
  process.exit(1);
}

console.error(`installing test peers: ${names.join(' ')}`);
const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
const run = (args) => spawnSync('apt-get', args, { stdio: ['ignore', 'ignore', 'inherit'], env }).status === 0;
if (!run(['update', '-qq']) || !run(['install', '-y', '-qq', '--no-install-recommends', ...names])) {
  console.error(`apt-get failed; run it by hand: apt-get update && ${installCommand}`);
  process.exit(1);
}
const still = missing();
if (still.length > 0) {
  console.error(`still missing after apt-get: ${still.map((p) => p.pkg).join(', ')}`);
  process.exit(1);
}
