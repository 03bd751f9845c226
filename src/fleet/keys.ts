// Ed25519 key files for signing fleet manifests: reading them, and making a pair for `sluice fleet
// keygen`. How a config names a public key (inline or a path) is src/core/keys.ts.
import { createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { assertEd25519, inlinePublicKey, keySpecKind } from '../core/keys.js';

export { inlinePublicKey, keySpecKind, type KeySpecKind } from '../core/keys.js';

/** The key `public_key` names: inline, or read from the file it names. */
export function loadPublicKey(spec: string): KeyObject {
  if (keySpecKind(spec) !== 'file') return inlinePublicKey(spec);
  let pem: string;
  try {
    pem = readFileSync(spec, 'utf8');
  } catch (err) {
    throw new Error(`cannot read the public key file ${spec}: ${(err as Error).message}`, { cause: err });
  }
  try {
    return assertEd25519(createPublicKey(pem), `${spec}`);
  } catch (err) {
    throw new Error(`${spec} does not hold an Ed25519 public key: ${(err as Error).message}`, { cause: err });
  }
}

export function loadPrivateKey(file: string): KeyObject {
  let pem: string;
  try {
    pem = readFileSync(file, 'utf8');
  } catch (err) {
    throw new Error(`cannot read the key file ${file}: ${(err as Error).message}`, { cause: err });
  }
  try {
    return assertEd25519(createPrivateKey(pem), file);
  } catch (err) {
    throw new Error(`${file} does not hold an Ed25519 private key: ${(err as Error).message}`, { cause: err });
  }
}

export interface GeneratedKeys {
  privatePem: string;
  publicPem: string;
  /** The base64 line of the public PEM: usable inline as `fleet.public_key`. */
  publicBase64: string;
}

export function generateKeys(): GeneratedKeys {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  const publicPem = publicKey.export({ type: 'spki', format: 'pem' }).toString();
  return {
    privatePem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
    publicPem,
    publicBase64: publicKey.export({ type: 'spki', format: 'der' }).toString('base64'),
  };
}
