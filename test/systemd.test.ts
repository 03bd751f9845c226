// The systemd unit and the install script: the unit passes `systemd-analyze verify` without a warning
// and carries the hardening that Node survives; build/install.sh installs, upgrades and uninstalls
// under a staging root (DESTDIR), keeping the user's config and data unless asked.
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { sluice } from './helpers/cli.js';
import { tmpDir } from './helpers/tmp.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const UNIT = join(ROOT, 'systemd/sluice.service');
const INSTALL = join(ROOT, 'build/install.sh');
const ANALYZE = '/usr/bin/systemd-analyze';

function directives(text: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const line of text.split('\n')) {
    const m = /^([A-Za-z]+)=(.*)$/.exec(line);
    if (m) out.set(m[1], [...(out.get(m[1]) ?? []), m[2]]);
  }
  return out;
}

describe('systemd/sluice.service', () => {
  const unit = readFileSync(UNIT, 'utf8');
  const d = directives(unit);

  it('passes systemd-analyze verify without warnings', () => {
    if (!existsSync(ANALYZE)) throw new Error(`${ANALYZE} is missing: apt-get install systemd`);
    // verify insists that ExecStart= binaries exist: point them at a stand-in.
    const dir = tmpDir();
    const fake = join(dir, 'sluice');
    writeFileSync(fake, '#!/bin/sh\nexit 0\n');
    chmodSync(fake, 0o755);
    const unitFile = join(dir, 'sluice.service');
    writeFileSync(unitFile, unit.replaceAll('/usr/local/bin/sluice', fake));
    const r = spawnSync(ANALYZE, ['verify', unitFile], { encoding: 'utf8' });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
  });

  it('runs as a dedicated user with serial access, checks its config first and restarts forever', () => {
    expect(d.get('User')).toEqual(['sluice']);
    expect(d.get('SupplementaryGroups')).toEqual(['dialout']);
    expect(d.get('StateDirectory')).toEqual(['sluice']);
    expect(d.get('ExecStartPre')).toEqual(['/usr/local/bin/sluice check -c /etc/sluice/sluice.yaml']);
    expect(d.get('ExecStart')).toEqual(['/usr/local/bin/sluice run -c /etc/sluice/sluice.yaml']);
    expect(d.get('ExecStartPost')?.[0]).toMatch(/^\/usr\/local\/bin\/sluice health -c \/etc\/sluice\/sluice\.yaml --wait \d+s$/);
    expect(d.get('Restart')).toEqual(['always']);
    expect(d.get('StartLimitIntervalSec')).toEqual(['0']);
    expect(d.get('KillSignal')).toEqual(['SIGTERM']);
  });

  it('sets no memory flags of its own: `sluice run` sizes its heap from agent.memory_limit (test/memory.test.ts)', () => {
    const env = [...(d.get('Environment') ?? [])].join(' ');
    expect(env).not.toMatch(/NODE_OPTIONS|MALLOC_ARENA_MAX|max-old-space-size|max-semi-space-size/);
    expect(d.get('ExecStart')).toEqual(['/usr/local/bin/sluice run -c /etc/sluice/sluice.yaml']);
  });

  it('is hardened in ways Node survives', () => {
    // V8's JIT needs writable+executable memory; PrivateDevices hides the serial ports.
    expect(d.has('MemoryDenyWriteExecute')).toBe(false);
    expect(d.has('PrivateDevices')).toBe(false);
    expect(d.has('DevicePolicy')).toBe(false);
    for (const [key, value] of Object.entries({ NoNewPrivileges: 'yes', ProtectSystem: 'strict', ProtectHome: 'yes', PrivateTmp: 'yes', CapabilityBoundingSet: '', SystemCallErrorNumber: 'EPERM' })) {
      expect(d.get(key), key).toEqual([value]);
    }
  });

  it('ships a default config that validates', () => {
    const r = sluice(['check', '-c', join(ROOT, 'systemd/sluice.yaml')]);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
  });
});

describe('build/install.sh', () => {
  function install(args: string[], env: Record<string, string>) {
    return spawnSync('/bin/sh', [INSTALL, ...args], { encoding: 'utf8', env: { PATH: process.env.PATH, ...env } });
  }

  function fakeBinary(dir: string, version: string): string {
    const file = join(dir, `sluice-${version}`);
    writeFileSync(file, `#!/bin/sh\necho "sluice ${version}"\n`);
    chmodSync(file, 0o755);
    return file;
  }

  it('installs, upgrades keeping the config, uninstalls keeping data, and purges on request', () => {
    const root = tmpDir();
    const bins = tmpDir();
    const first = install([fakeBinary(bins, '1.0.0')], { DESTDIR: root });
    expect(first.stderr).toBe('');
    expect(first.status).toBe(0);
    expect(first.stdout).toContain('installed');
    expect(spawnSync(join(root, 'usr/local/bin/sluice'), { encoding: 'utf8' }).stdout).toBe('sluice 1.0.0\n');
    const unit = readFileSync(join(root, 'etc/systemd/system/sluice.service'), 'utf8');
    expect(unit).toBe(readFileSync(UNIT, 'utf8'));
    expect(readFileSync(join(root, 'etc/sluice/sluice.yaml'), 'utf8')).toBe(readFileSync(join(ROOT, 'systemd/sluice.yaml'), 'utf8'));

    // The user's edits and data survive an upgrade and an uninstall.
    writeFileSync(join(root, 'etc/sluice/sluice.yaml'), 'version: 1 # mine\n');
    mkdirSync(join(root, 'var/lib/sluice'), { recursive: true });
    writeFileSync(join(root, 'var/lib/sluice/sluice.db'), 'data');
    const upgrade = install([fakeBinary(bins, '1.1.0')], { DESTDIR: root });
    expect(upgrade.status).toBe(0);
    expect(upgrade.stdout).toContain('kept');
    expect(spawnSync(join(root, 'usr/local/bin/sluice'), { encoding: 'utf8' }).stdout).toBe('sluice 1.1.0\n');
    expect(readFileSync(join(root, 'etc/sluice/sluice.yaml'), 'utf8')).toBe('version: 1 # mine\n');

    const remove = install(['--uninstall'], { DESTDIR: root });
    expect(remove.status).toBe(0);
    expect(existsSync(join(root, 'usr/local/bin/sluice'))).toBe(false);
    expect(existsSync(join(root, 'etc/systemd/system/sluice.service'))).toBe(false);
    expect(readFileSync(join(root, 'etc/sluice/sluice.yaml'), 'utf8')).toBe('version: 1 # mine\n');
    expect(readFileSync(join(root, 'var/lib/sluice/sluice.db'), 'utf8')).toBe('data');

    const purge = install(['--uninstall', '--purge'], { DESTDIR: root });
    expect(purge.status).toBe(0);
    expect(existsSync(join(root, 'etc/sluice'))).toBe(false);
    expect(existsSync(join(root, 'var/lib/sluice'))).toBe(false);
  });

  it('rewrites the unit for another prefix', () => {
    const root = tmpDir();
    const r = install([fakeBinary(tmpDir(), '2.0.0')], { DESTDIR: root, PREFIX: '/opt/sluice' });
    expect(r.status).toBe(0);
    const unit = readFileSync(join(root, 'etc/systemd/system/sluice.service'), 'utf8');
    expect(directives(unit).get('ExecStart')).toEqual(['/opt/sluice/bin/sluice run -c /etc/sluice/sluice.yaml']);
    expect(unit).not.toContain('/usr/local/');
    expect(existsSync(join(root, 'opt/sluice/bin/sluice'))).toBe(true);
  });

  it('refuses a missing binary and unknown options', () => {
    const root = tmpDir();
    const missing = install(['/nonexistent/sluice'], { DESTDIR: root });
    expect(missing.status).toBe(1);
    expect(missing.stderr).toContain('/nonexistent/sluice not found');
    expect(install(['--bogus'], { DESTDIR: root }).stderr).toContain('unknown option --bogus');
  });
});
