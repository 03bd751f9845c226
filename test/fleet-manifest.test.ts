// Fleet keys and manifests: `sluice fleet keygen` and `sluice fleet sign` as an operator runs them, and
// what a gateway accepts: the signature covers every field, the key is read in each documented form,
// and anything tampered, signed with another key or not understood is refused with the reason.
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { generateKeyPairSync } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { elfArch } from '../src/fleet/elf.js';
import { inlinePublicKey, keySpecKind, loadPrivateKey, loadPublicKey } from '../src/fleet/keys.js';
import { ManifestError, canonicalJson, sha256Hex, signManifest, verifyManifest, type Manifest } from '../src/fleet/manifest.js';
import { loadConfig } from '../src/config/index.js';
import { sluice } from './helpers/cli.js';
import { tmpDir } from './helpers/tmp.js';

const CONFIG = 'version: 1\nagent: { id: gw-test }\ninputs:\n  demo: { type: simulator, interval: 1s }\n';

/** The first 20 bytes of an ELF header for `machine` (e_machine), enough for the architecture check. */
function fakeElf(file: string, machine: number, body = 'payload'): string {
  const header = Buffer.alloc(64);
  header.writeUInt32BE(0x7f454c46, 0);
  header[4] = 2; // 64-bit
  header[5] = 1; // little-endian
  header.writeUInt16LE(machine, 18);
  writeFileSync(file, Buffer.concat([header, Buffer.from(body)]));
  return file;
}

function keygen(dir: string): { key: string; pub: string; base64: string } {
  const r = sluice(['fleet', 'keygen', '--out', dir]);
  expect(r.status, r.stderr).toBe(0);
  const base64 = /public_key: (\S+)/.exec(r.stdout)?.[1];
  expect(base64).toBeDefined();
  return { key: join(dir, 'fleet.key'), pub: join(dir, 'fleet.pub'), base64: base64! };
}

function expectRefused(text: string, key: ReturnType<typeof loadPublicKey>, kind: ManifestError['kind'], message: RegExp): void {
  try {
    verifyManifest(text, key);
  } catch (err) {
    expect(err).toBeInstanceOf(ManifestError);
    expect((err as ManifestError).kind).toBe(kind);
    expect((err as Error).message).toMatch(message);
    return;
  }
  throw new Error('the manifest was accepted');
}

describe('canonical serialisation', () => {
  it('sorts keys at every level, has no whitespace, and does not depend on the order written', () => {
    expect(canonicalJson({ b: 1, a: { d: [1, 'x', { z: true, y: null }], c: 'é"' } })).toBe('{"a":{"c":"é\\"","d":[1,"x",{"y":null,"z":true}]},"b":1}');
    expect(canonicalJson({ serial: 3, config: 'x' })).toBe(canonicalJson({ config: 'x', serial: 3 }));
    expect(() => canonicalJson({ n: NaN })).toThrow(/NaN/);
  });
});

describe('sluice fleet keygen', () => {
  it('writes a private key only its owner can read and a public key, and prints the inline form', () => {
    const dir = tmpDir();
    const k = keygen(dir);
    expect(statSync(k.key).mode & 0o777).toBe(0o600);
    expect(readFileSync(k.pub, 'utf8')).toMatch(/^-----BEGIN PUBLIC KEY-----/);
    const fromFile = loadPublicKey(k.pub);
    for (const spec of [k.base64, readFileSync(k.pub, 'utf8')]) {
      expect(inlinePublicKey(spec).export({ type: 'spki', format: 'der' })).toEqual(fromFile.export({ type: 'spki', format: 'der' }));
    }
    // The raw 32-byte key in base64 is accepted too.
    const raw = fromFile.export({ format: 'jwk' }).x!;
    const rawB64 = Buffer.from(raw, 'base64url').toString('base64');
    expect(keySpecKind(rawB64)).toBe('base64');
    expect(inlinePublicKey(rawB64).export({ format: 'jwk' }).x).toBe(raw);
    expect(loadPrivateKey(k.key).asymmetricKeyType).toBe('ed25519');
  });

  it('never overwrites an existing key', () => {
    const dir = tmpDir();
    const k = keygen(dir);
    const before = readFileSync(k.key, 'utf8');
    const again = sluice(['fleet', 'keygen', '--out', dir]);
    expect(again.status).toBe(73);
    expect(again.stderr).toMatch(/fleet\.key exists; not overwriting/);
    expect(readFileSync(k.key, 'utf8')).toBe(before);
  });
});

describe('sluice fleet sign', () => {
  it('signs a config and binaries (architecture from the ELF header); the manifest verifies and carries their sha256', () => {
    const dir = tmpDir();
    const k = keygen(dir);
    writeFileSync(join(dir, 'gw.yaml'), CONFIG);
    const x64 = fakeElf(join(dir, 'sluice-a'), 0x3e, 'x64 build');
    const arm = fakeElf(join(dir, 'sluice-b'), 0xb7, 'arm64 build');
    const out = join(dir, 'manifest.json');
    const r = sluice(['fleet', 'sign', '--key', k.key, '--serial', '12', '--config', join(dir, 'gw.yaml'), '--binary', x64, '--url', 'bin/x64', '--binary', arm, '--url', 'https://cdn.example/arm64', '--out', out]);
    expect(r.status, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ serial: 12, config: true });
    const text = readFileSync(out, 'utf8');
    const m = verifyManifest(text, loadPublicKey(k.pub));
    expect(m).toEqual({
      serial: 12,
      config: CONFIG,
      binaries: {
        x64: { url: 'bin/x64', sha256: sha256Hex(readFileSync(x64)) },
        arm64: { url: 'https://cdn.example/arm64', sha256: sha256Hex(readFileSync(arm)) },
      },
    });
    // Key order and whitespace in the file do not matter: the canonical form is what is signed.
    const doc = JSON.parse(text) as Record<string, unknown>;
    const reordered = JSON.stringify(Object.fromEntries(Object.entries(doc).reverse()));
    expect(verifyManifest(reordered, loadPublicKey(k.base64)).serial).toBe(12);
  });

  it('reads the architecture from e_machine and refuses what is not an x64 or arm64 ELF binary', () => {
    const dir = tmpDir();
    expect(elfArch(fakeElf(join(dir, 'a'), 0x3e))).toBe('x64');
    expect(elfArch(fakeElf(join(dir, 'b'), 0xb7))).toBe('arm64');
    expect(() => elfArch(fakeElf(join(dir, 'c'), 0x28))).toThrow(/machine 0x28, not x86-64/);
    writeFileSync(join(dir, 'd'), '#!/bin/sh\necho hi\n');
    expect(() => elfArch(join(dir, 'd'))).toThrow(/not an ELF binary/);
    const k = keygen(join(dir, 'k'));
    const r = sluice(['fleet', 'sign', '--key', k.key, '--serial', '1', '--binary', join(dir, 'd'), '--url', 'x', '--out', join(dir, 'm.json')]);
    expect(r.status).toBe(65);
    expect(r.stderr).toMatch(/not signed: .*not an ELF binary/);
  });

  it('refuses to sign an invalid config, and flags that do not pair up', () => {
    const dir = tmpDir();
    const k = keygen(dir);
    writeFileSync(join(dir, 'bad.yaml'), 'version: 1\ninputs:\n  demo: { type: simulator, interval: 5 }\n');
    const bad = sluice(['fleet', 'sign', '--key', k.key, '--serial', '1', '--config', join(dir, 'bad.yaml'), '--out', join(dir, 'm.json')]);
    expect(bad.status).toBe(78);
    expect(bad.stderr).toMatch(/bad\.yaml:3:\d+: inputs\.demo\.interval: bare number 5 has no unit/);
    const unpaired = sluice(['fleet', 'sign', '--key', k.key, '--serial', '1', '--binary', 'x', '--out', join(dir, 'm.json')]);
    expect(unpaired.status).toBe(64);
    expect(unpaired.stderr).toMatch(/each --binary needs its --url/);
    expect(sluice(['fleet', 'sign', '--key', k.key, '--serial', '-3', '--out', join(dir, 'm.json')]).status).toBe(64);
  });
});

describe('verification', () => {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  const other = generateKeyPairSync('ed25519');
  const base: Manifest = { serial: 4, config: CONFIG, binaries: { x64: { url: 'bin', sha256: 'a'.repeat(64) } } };
  const signed = () => JSON.parse(JSON.stringify(signManifest(base, privateKey))) as Record<string, unknown>;

  it('refuses a tampered config, serial or binary hash', () => {
    for (const change of [
      (m: Record<string, unknown>) => (m.config = CONFIG.replace('1s', '2s')),
      (m: Record<string, unknown>) => (m.serial = 5),
      (m: Record<string, unknown>) => ((m.binaries as { x64: { sha256: string } }).x64.sha256 = 'b'.repeat(64)),
      (m: Record<string, unknown>) => (m.extra = 1),
    ]) {
      const m = signed();
      change(m);
      expectRefused(JSON.stringify(m), publicKey, 'signature', /signature does not verify/);
    }
  });

  it('refuses a manifest signed with another key, or unsigned, or not JSON', () => {
    expectRefused(JSON.stringify(signManifest(base, other.privateKey)), publicKey, 'signature', /does not verify with fleet\.public_key/);
    const m = signed();
    delete m.signature;
    expectRefused(JSON.stringify(m), publicKey, 'signature', /no signature/);
    expectRefused('{"serial": 1,', publicKey, 'parse', /not JSON/);
  });

  it('refuses authentic manifests it does not understand, rather than ignoring part of them', () => {
    const odd = signManifest({ serial: 1, min_version: '2.0' } as unknown as Manifest, privateKey);
    expectRefused(JSON.stringify(odd), publicKey, 'shape', /keys this version does not understand: min_version/);
    const badArch = signManifest({ serial: 1, binaries: { riscv64: { url: 'x', sha256: 'a'.repeat(64) } } } as unknown as Manifest, privateKey);
    expectRefused(JSON.stringify(badArch), publicKey, 'shape', /riscv64: unknown architecture/);
    const badSerial = signManifest({ serial: 1.5 }, privateKey);
    expectRefused(JSON.stringify(badSerial), publicKey, 'shape', /serial must be an integer/);
  });

  it('fleet.public_key: inline keys are checked by `check`, a url needs a key', () => {
    const pem = publicKey.export({ type: 'spki', format: 'pem' }).toString();
    const ok = loadConfig({ text: `version: 1\nfleet:\n  url: https://fleet.example/gw.json\n  public_key: |\n${pem.replace(/^/gm, '    ')}`, env: {} });
    expect(ok.ok).toBe(true);
    // 60 base64 characters are read as an inline SPKI; these 44 bytes are not an Ed25519 one.
    const notAKey = Buffer.alloc(44, 7).toString('base64');
    const bad = loadConfig({ text: `version: 1\nfleet:\n  url: https://fleet.example/gw.json\n  public_key: ${notAKey}\n`, env: {} });
    expect(bad.ok ? [] : bad.errors.map((e) => `${e.path}: ${e.message}`)).toEqual([
      'fleet.public_key: base64 key is neither a raw 32-byte Ed25519 key nor an Ed25519 SPKI (the line between the PEM markers of fleet.pub)',
    ]);
    const noKey = loadConfig({ text: 'version: 1\nfleet:\n  url: https://fleet.example/gw.json\n', env: {} });
    expect(noKey.ok ? [] : noKey.errors.map((e) => `${e.line}:${e.col} ${e.path}: ${e.message}`)).toEqual([
      '3:8 fleet.url: a fleet url needs fleet.public_key: manifests are applied only when signed with that key',
    ]);
  });
});
