// `sluice fleet keygen --out DIR` and `sluice fleet sign --key KEY --serial N [--config FILE]
// [--binary FILE --url URL]… --out MANIFEST`: what the person who runs the fleet types.
import { createHash } from 'node:crypto';
import { createReadStream, existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { formatConfigError, loadConfig } from '../config/index.js';
import { elfArch } from '../fleet/elf.js';
import { writeFileAtomic } from '../fleet/files.js';
import { generateKeys, loadPrivateKey } from '../fleet/keys.js';
import { signManifest, type Arch, type BinaryRef, type Manifest } from '../fleet/manifest.js';
import { UsageError } from './args.js';

/** sysexits.h EX_CANTCREAT: a key is already there and is not overwritten. */
export const EXIT_CANTCREAT = 73;
const EXIT_CONFIG = 78;

export function runKeygen(outDir: string): number {
  const keyFile = join(outDir, 'fleet.key');
  const pubFile = join(outDir, 'fleet.pub');
  for (const f of [keyFile, pubFile]) {
    if (existsSync(f)) {
      // Overwriting a fleet key strands every gateway that trusts the old one.
      process.stderr.write(`sluice: ${f} exists; not overwriting a fleet key (gateways trust it). Remove it first if you mean to.\n`);
      return EXIT_CANTCREAT;
    }
  }
  mkdirSync(outDir, { recursive: true });
  const keys = generateKeys();
  writeFileAtomic(keyFile, keys.privatePem, 0o600);
  writeFileAtomic(pubFile, keys.publicPem, 0o644);
  process.stdout.write(
    [
      `wrote ${keyFile} (private: keep it off the gateways) and ${pubFile}`,
      'gateways trust it with, in their config:',
      '  fleet:',
      `    public_key: ${keys.publicBase64}    # or the path of ${pubFile}`,
      '',
    ].join('\n'),
  );
  return 0;
}

function sha256File(file: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const h = createHash('sha256');
    createReadStream(file)
      .on('data', (c) => h.update(c))
      .on('end', () => resolve(h.digest('hex')))
      .on('error', reject);
  });
}

export interface SignOptions {
  key: string;
  serial: string;
  config?: string;
  binaries: string[];
  urls: string[];
  out: string;
}

/** sysexits.h EX_DATAERR: a key or binary that is not what it should be. */
export const EXIT_DATAERR = 65;

export async function runSign(o: SignOptions): Promise<number> {
  try {
    return await sign(o);
  } catch (err) {
    if (err instanceof UsageError) throw err;
    process.stderr.write(`sluice: not signed: ${(err as Error).message}\n`);
    return EXIT_DATAERR;
  }
}

async function sign(o: SignOptions): Promise<number> {
  if (!/^\d+$/.test(o.serial) || !Number.isSafeInteger(Number(o.serial))) throw new UsageError(`--serial must be a whole number ≥ 0, not "${o.serial}"`);
  if (o.binaries.length !== o.urls.length) throw new UsageError(`each --binary needs its --url (got ${o.binaries.length} --binary and ${o.urls.length} --url)`);
  const key = loadPrivateKey(o.key);
  const manifest: Manifest = { serial: Number(o.serial) };
  if (o.config !== undefined) {
    const text = readFileSync(o.config, 'utf8');
    // Refuse to sign what every gateway would refuse to apply. ${VAR}s are expanded from this
    // environment for the check only; the manifest carries the text as written.
    const r = loadConfig({ file: o.config, text });
    if (!r.ok) {
      process.stderr.write(r.errors.map(formatConfigError).join('\n') + '\n');
      process.stderr.write(`sluice: not signed: ${o.config} is invalid (variables it uses must be set when signing, e.g. INFLUX_TOKEN=x)\n`);
      return EXIT_CONFIG;
    }
    manifest.config = text;
  }
  if (o.binaries.length) {
    const binaries: Partial<Record<Arch, BinaryRef>> = {};
    for (let i = 0; i < o.binaries.length; i++) {
      const file = o.binaries[i];
      const arch = elfArch(file);
      if (binaries[arch]) throw new UsageError(`two --binary files for ${arch}: ${file} and the one before it`);
      binaries[arch] = { url: o.urls[i], sha256: await sha256File(file) };
    }
    manifest.binaries = binaries;
  }
  const signed = signManifest(manifest, key);
  writeFileAtomic(o.out, JSON.stringify(signed, null, 2) + '\n');
  const summary = {
    serial: signed.serial,
    config: signed.config !== undefined,
    binaries: Object.fromEntries(Object.entries(signed.binaries ?? {}).map(([a, b]) => [a, b.sha256])),
    out: o.out,
  };
  process.stdout.write(JSON.stringify(summary) + '\n');
  return 0;
}
