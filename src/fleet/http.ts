// The fleet's HTTP: fetching the manifest (conditional GET) and downloading a binary (streamed to disk,
// hashed on the way, fsynced, renamed into place only once its sha256 matches). fetch (undici) speaks
// HTTP and HTTPS; the system's CA store applies.
import { createHash } from 'node:crypto';
import { chmodSync, closeSync, fsyncSync, openSync, renameSync, rmSync, statfsSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import { VERSION } from '../version.js';
import { fsyncDir } from './files.js';
import { MAX_MANIFEST_BYTES } from './manifest.js';

const MANIFEST_TIMEOUT_MS = 30_000;
/** A binary on a slow cellular link: minutes, not hours. */
const DOWNLOAD_TIMEOUT_MS = 30 * 60_000;
export const MAX_BINARY_BYTES = 512 * 1024 * 1024;
/** Left free on the data directory's file system after a download: the store must keep room to write. */
const DISK_MARGIN_BYTES = 64 * 1024 * 1024;

export type ManifestResponse = { status: 304 } | { status: 200; body: string; etag: string | null };

/** The request gives up after `ms`, or when the agent stops (a download must not hold a shutdown up). */
function withTimeout(ms: number, signal: AbortSignal | undefined): AbortSignal {
  return signal ? AbortSignal.any([AbortSignal.timeout(ms), signal]) : AbortSignal.timeout(ms);
}

function userAgent(agentId: string): string {
  return `sluice/${VERSION} (${agentId})`;
}

async function readCapped(res: Response, maxBytes: number, what: string): Promise<Buffer> {
  const length = Number(res.headers.get('content-length') ?? NaN);
  if (length > maxBytes) throw new Error(`${what} is ${length} bytes, more than the ${maxBytes} allowed`);
  const chunks: Buffer[] = [];
  let total = 0;
  if (!res.body) return Buffer.alloc(0);
  for await (const chunk of res.body as AsyncIterable<Uint8Array>) {
    total += chunk.byteLength;
    if (total > maxBytes) throw new Error(`${what} is more than the ${maxBytes} bytes allowed`);
    chunks.push(Buffer.from(chunk));
  }
  return Buffer.concat(chunks);
}

/** GET the manifest; with the ETag of the last one, a 304 means nothing changed. */
export async function fetchManifest(url: string, etag: string | null, agentId: string, signal?: AbortSignal): Promise<ManifestResponse> {
  const headers: Record<string, string> = { 'user-agent': userAgent(agentId), accept: 'application/json' };
  if (etag) headers['if-none-match'] = etag;
  const res = await fetch(url, { headers, signal: withTimeout(MANIFEST_TIMEOUT_MS, signal), redirect: 'follow' });
  if (res.status === 304) {
    await res.body?.cancel();
    return { status: 304 };
  }
  if (res.status !== 200) {
    await res.body?.cancel();
    throw new Error(`HTTP ${res.status} ${res.statusText} from ${url}`);
  }
  const body = (await readCapped(res, MAX_MANIFEST_BYTES, 'the manifest')).toString('utf8');
  return { status: 200, body, etag: res.headers.get('etag') };
}

/**
 * Downloads `url` to `dest` when its sha256 is `sha256`: written to `dest.part`, fsynced, then renamed
 * (executable). On any failure nothing is left behind.
 */
export async function downloadVerified(url: string, sha256: string, dest: string, agentId: string, signal?: AbortSignal): Promise<{ bytes: number }> {
  const part = `${dest}.part`;
  const res = await fetch(url, { headers: { 'user-agent': userAgent(agentId) }, signal: withTimeout(DOWNLOAD_TIMEOUT_MS, signal), redirect: 'follow' });
  if (res.status !== 200 || !res.body) {
    await res.body?.cancel();
    throw new Error(`HTTP ${res.status} ${res.statusText} from ${url}`);
  }
  const length = Number(res.headers.get('content-length') ?? NaN);
  if (length > MAX_BINARY_BYTES) throw new Error(`the binary is ${length} bytes, more than the ${MAX_BINARY_BYTES} allowed`);
  if (Number.isFinite(length)) {
    const fs = statfsSync(dirname(dest));
    const free = fs.bavail * fs.bsize;
    if (free - length < DISK_MARGIN_BYTES) throw new Error(`not enough disk for the binary: ${length} bytes, ${free} free, ${DISK_MARGIN_BYTES} kept for the store`);
  }
  const hash = createHash('sha256');
  const fd = openSync(part, 'w', 0o600);
  let bytes = 0;
  try {
    for await (const chunk of res.body as AsyncIterable<Uint8Array>) {
      bytes += chunk.byteLength;
      if (bytes > MAX_BINARY_BYTES) throw new Error(`the binary is more than the ${MAX_BINARY_BYTES} bytes allowed`);
      const buf = Buffer.from(chunk);
      hash.update(buf);
      let off = 0;
      while (off < buf.length) off += writeSync(fd, buf, off, buf.length - off);
    }
    fsyncSync(fd);
  } catch (err) {
    closeSync(fd);
    rmSync(part, { force: true });
    throw err;
  }
  closeSync(fd);
  const got = hash.digest('hex');
  if (got !== sha256) {
    rmSync(part, { force: true });
    throw new Error(`sha256 mismatch: the manifest says ${sha256}, the download from ${url} is ${got}`);
  }
  chmodSync(part, 0o755);
  renameSync(part, dest);
  fsyncDir(dirname(dest));
  return { bytes };
}
