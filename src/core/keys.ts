// Ed25519 public keys as a config names them (pure: no files). Reading key files and making keys is
// src/fleet/keys.ts. Ed25519 keys sign fleet manifests (node:crypto, no dependency).
//
// `sluice fleet keygen` writes the private key as PKCS#8 PEM (fleet.key, mode 0600) and the public key
// as SPKI PEM (fleet.pub). `fleet.public_key` in a gateway's config takes any of:
//   - a path to a PEM public key file (fleet.pub), relative to the working directory like data_dir;
//   - the PEM text itself (a YAML block scalar);
//   - the base64 line between the PEM markers (the DER SPKI, 60 characters), or the raw 32-byte key
//     in base64 (44 characters): one line that fits in a config template or an env variable.
import { createPublicKey, type KeyObject } from 'node:crypto';

const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/;
/** DER SPKI of an Ed25519 key: this 12-byte prefix then the 32-byte key. */
const SPKI_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');

export type KeySpecKind = 'pem' | 'base64' | 'file';

/** How a `public_key` value is read: inline PEM, inline base64, or a file path. Pure. */
export function keySpecKind(spec: string): KeySpecKind {
  const s = spec.trim();
  if (s.startsWith('-----BEGIN')) return 'pem';
  if (BASE64.test(s) && (s.length === 44 || s.length === 60)) return 'base64';
  return 'file';
}

export function assertEd25519(key: KeyObject, what: string): KeyObject {
  if (key.asymmetricKeyType !== 'ed25519') throw new Error(`${what} is a ${key.asymmetricKeyType ?? 'symmetric'} key, not Ed25519`);
  return key;
}

/** Parses an inline public key (PEM or base64). Throws with a message fit for a config error. */
export function inlinePublicKey(spec: string): KeyObject {
  const s = spec.trim();
  if (keySpecKind(s) === 'pem') {
    try {
      return assertEd25519(createPublicKey(s), 'the public key');
    } catch (err) {
      throw new Error(`not a PEM public key: ${(err as Error).message}`, { cause: err });
    }
  }
  const der = Buffer.from(s, 'base64');
  let spki: Buffer;
  if (der.length === 32) spki = Buffer.concat([SPKI_PREFIX, der]);
  else if (der.length === 44 && der.subarray(0, 12).equals(SPKI_PREFIX)) spki = der;
  else throw new Error('base64 key is neither a raw 32-byte Ed25519 key nor an Ed25519 SPKI (the line between the PEM markers of fleet.pub)');
  return createPublicKey({ key: spki, format: 'der', type: 'spki' });
}

