// The fleet manifest: what a gateway fetches from `fleet.url`.
//
//   { "serial": 7,                                   integer ≥ 0; only a higher one than applied is applied
//     "config": "version: 1\n…",                     optional: the whole config, YAML text
//     "binaries": { "x64":   { "url": "…", "sha256": "hex" },     optional, per architecture; a url may be
//                   "arm64": { "url": "…", "sha256": "hex" } },   relative to the manifest's url
//     "signature": "base64" }                        Ed25519 over the signed bytes below
//
// Signed bytes: the ASCII line `sluice-manifest-v1` and a newline, then the canonical JSON of the
// manifest without `signature`: objects with their keys sorted (JavaScript's default string order,
// i.e. by UTF-16 code unit), no whitespace, strings and numbers as JSON.stringify writes them. Every
// field but the signature is covered, so nothing can be added or changed without the key; the prefix
// keeps a manifest signature from being valid for anything else signed with the same key. Keys a
// version does not know are refused (after the signature is checked), never silently ignored.
import { createHash, sign, verify, type KeyObject } from 'node:crypto';

export const MANIFEST_CONTEXT = 'sluice-manifest-v1\n';
/** A manifest is small (a config of a few KiB); a huge body is a misconfigured server, not a manifest. */
export const MAX_MANIFEST_BYTES = 4 * 1024 * 1024;
export const ARCHES = ['x64', 'arm64'] as const;
export type Arch = (typeof ARCHES)[number];

export interface BinaryRef {
  url: string;
  sha256: string;
}

export interface Manifest {
  serial: number;
  config?: string;
  binaries?: Partial<Record<Arch, BinaryRef>>;
}

export interface SignedManifest extends Manifest {
  signature: string;
}

export class ManifestError extends Error {
  override readonly name = 'ManifestError';
  constructor(
    message: string,
    /** signature: not authentic (bad or missing signature, wrong key); shape: authentic but not understood. */
    readonly kind: 'parse' | 'signature' | 'shape',
  ) {
    super(message);
  }
}

export function canonicalJson(value: unknown): string {
  if (value === null || typeof value === 'string' || typeof value === 'boolean') return JSON.stringify(value);
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) throw new Error('canonical JSON has no NaN or Infinity');
    return JSON.stringify(value);
  }
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
  }
  throw new Error(`canonical JSON cannot hold a ${typeof value}`);
}

export function signedBytes(unsigned: Record<string, unknown>): Buffer {
  return Buffer.from(MANIFEST_CONTEXT + canonicalJson(unsigned), 'utf8');
}

export function signManifest(manifest: Manifest, key: KeyObject): SignedManifest {
  const signature = sign(null, signedBytes(manifest as unknown as Record<string, unknown>), key).toString('base64');
  return { ...manifest, signature };
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

/**
 * Parses and authenticates a manifest: the signature is checked before anything in it is believed,
 * then its shape. Throws ManifestError saying what is wrong.
 */
export function verifyManifest(text: string, key: KeyObject): Manifest {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    throw new ManifestError(`not JSON: ${(err as Error).message}`, 'parse');
  }
  if (!isRecord(doc)) throw new ManifestError('not a JSON object', 'parse');
  const { signature, ...unsigned } = doc;
  if (typeof signature !== 'string' || signature === '') throw new ManifestError('it has no signature', 'signature');
  let ok: boolean;
  try {
    ok = verify(null, signedBytes(unsigned), key, Buffer.from(signature, 'base64'));
  } catch (err) {
    throw new ManifestError(`its signature cannot be checked: ${(err as Error).message}`, 'signature');
  }
  if (!ok) throw new ManifestError('its signature does not verify with fleet.public_key (tampered, or signed with another key)', 'signature');
  return checkShape(unsigned);
}

function checkShape(doc: Record<string, unknown>): Manifest {
  const problems: string[] = [];
  const unknown = Object.keys(doc).filter((k) => !['serial', 'config', 'binaries'].includes(k));
  if (unknown.length) problems.push(`keys this version does not understand: ${unknown.join(', ')}`);
  const { serial, config, binaries } = doc;
  if (typeof serial !== 'number' || !Number.isSafeInteger(serial) || serial < 0) problems.push('serial must be an integer ≥ 0');
  if (config !== undefined && typeof config !== 'string') problems.push('config must be a string (the YAML text)');
  const out: Manifest = { serial: serial as number };
  if (typeof config === 'string') out.config = config;
  if (binaries !== undefined) {
    if (!isRecord(binaries)) problems.push('binaries must be an object keyed by architecture');
    else {
      out.binaries = {};
      for (const [arch, ref] of Object.entries(binaries)) {
        if (!(ARCHES as readonly string[]).includes(arch)) {
          problems.push(`binaries.${arch}: unknown architecture (${ARCHES.join(', ')})`);
          continue;
        }
        if (!isRecord(ref) || typeof ref.url !== 'string' || ref.url === '' || typeof ref.sha256 !== 'string' || !/^[0-9a-f]{64}$/.test(ref.sha256)) {
          problems.push(`binaries.${arch} must be { url, sha256 (64 lowercase hex digits) }`);
          continue;
        }
        const extra = Object.keys(ref).filter((k) => k !== 'url' && k !== 'sha256');
        if (extra.length) problems.push(`binaries.${arch}: keys this version does not understand: ${extra.join(', ')}`);
        out.binaries[arch as Arch] = { url: ref.url, sha256: ref.sha256 };
      }
    }
  }
  if (problems.length) throw new ManifestError(problems.join('; '), 'shape');
  return out;
}

export function sha256Hex(data: string | Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

/** This process's architecture in manifest terms, or null where sluice ships no binary. */
export function hostArch(): Arch | null {
  return process.arch === 'x64' || process.arch === 'arm64' ? process.arch : null;
}
