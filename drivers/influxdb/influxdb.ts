// The `influxdb` output: writes batches as line protocol to the v2 (/api/v2/write) or the v1 (/write)
// HTTP API. It only writes: batching, retries, pacing and the delivery cursor are the sync engine's.
//
// api v2 goes through @influxdata/influxdb-client's transport, not its WriteApi: the WriteApi keeps its
// own buffer and retry timer (the ring is the buffer here, and the engine decides about retries), and
// its errors only give Retry-After as whole seconds while we also honour the HTTP-date form. The
// transport hands back status, headers and body (HttpError), which is all the engine needs.
// api v1 is a plain POST with node:http(s) (the v1 endpoint is not what that client speaks).
import { readFile } from 'node:fs/promises';
import http from 'node:http';
import https from 'node:https';
import { promisify } from 'node:util';
import { gzip as gzipCallback } from 'node:zlib';
import { HttpError, InfluxDB } from '@influxdata/influxdb-client';
import { OutputError, type Output, type OutputBatch, type OutputContext, type WriteResult } from '../../src/core/component.js';
import type { InfluxdbOutputConfig } from './schema.js';
import { batchLines, type Lines } from './lines.js';
import { interpret, networkError, type Headers } from './responses.js';

const gzip = promisify(gzipCallback);

interface Encoded {
  lines: Lines;
  /** v2's transport takes a string. */
  text: string | undefined;
  /** v1 with gzip: the body, compressed on libuv's pool from the moment the batch is encoded. */
  gzipped: Promise<Buffer> | undefined;
}

/**
 * Requests are kept below this many bytes before compression (InfluxDB 1.x refuses bodies above 25 MB
 * by default, Cloud above 50 MB): a larger batch is split before it is sent, as after a 413.
 */
export const MAX_REQUEST_BYTES = 16 * 1024 * 1024;

/** Error bodies are read up to this size; InfluxDB lists at most a handful of bad lines. */
const MAX_ERROR_BODY_BYTES = 64 * 1024;

export class InfluxdbOutput implements Output {
  private agent: http.Agent | undefined;
  private client: InfluxDB | undefined;
  private authorization: string | undefined;
  private readonly url: URL;
  private readonly counts = { unsigned_as_float: 0, skipped_fields: 0, skipped_points: 0 };

  constructor(
    private readonly config: InfluxdbOutputConfig,
    private readonly ctx: OutputContext,
  ) {
    this.url = new URL(config.url);
  }

  /**
   * Reads the secrets and the CA (never logged), and builds the HTTP agent. Runs again after an auth
   * pause, so a rotated token_file or password_file is picked up without a restart.
   */
  async connect(): Promise<void> {
    const { config } = this;
    let ca: Buffer | undefined;
    if (config.tls?.ca !== undefined) {
      try {
        ca = await readFile(config.tls.ca);
      } catch (err) {
        throw new OutputError(`cannot read tls.ca ${config.tls.ca}: ${(err as Error).message}`, 'fatal', {}, { cause: err });
      }
    }
    this.agent?.destroy();
    this.agent =
      this.url.protocol === 'https:'
        ? new https.Agent({ keepAlive: true, ca, rejectUnauthorized: !(config.tls?.insecure_skip_verify ?? false) })
        : new http.Agent({ keepAlive: true });
    if (config.api === 'v2') {
      const token = config.token ?? (await readSecret(config.token_file, 'token_file'));
      this.client = new InfluxDB({ url: config.url, token, timeout: config.timeout, transportOptions: { agent: this.agent } });
    } else if (config.username !== undefined) {
      const password = config.password ?? (config.password_file !== undefined ? await readSecret(config.password_file, 'password_file') : '');
      this.authorization = 'Basic ' + Buffer.from(`${config.username}:${password}`).toString('base64');
    }
    this.ctx.log.debug({ url: this.url.origin, api: config.api }, 'influxdb output ready');
  }

  /** The CPU part of a write: the batch as line protocol (the engine runs it ahead for the next request). */
  encode(batch: OutputBatch): Encoded {
    const lines = batchLines(batch, this.config.api);
    const v2 = this.config.api === 'v2';
    let gzipped: Promise<Buffer> | undefined;
    if (!v2 && this.config.gzip && lines.starts.length > 0) {
      gzipped = gzip(lines.payload);
      // An encoding made ahead may be dropped unsent (the output failed or stops): its failure is then nobody's.
      gzipped.catch(() => undefined);
    }
    return { lines, text: v2 ? lines.payload.toString('utf8') : undefined, gzipped };
  }

  async write(batch: OutputBatch, signal: AbortSignal, encoded?: unknown): Promise<WriteResult> {
    const { lines, text, gzipped } = (encoded as Encoded | undefined) ?? this.encode(batch);
    this.counts.unsigned_as_float += lines.unsignedAsFloat;
    this.counts.skipped_fields += lines.skippedFields;
    this.counts.skipped_points += lines.skippedPoints;
    if (lines.starts.length === 0) return { rejectedPoints: lines.skippedPoints, bytes: 0 };
    const bytes = lines.payload.length;
    if (bytes > MAX_REQUEST_BYTES && batch.points > 1) throw new OutputError(`request of ${bytes} bytes is above ${MAX_REQUEST_BYTES}`, 'split');
    if (this.config.api === 'v2') {
      const client = this.client;
      if (!client) throw new OutputError('not connected', 'retry');
      const path = `/api/v2/write?org=${encodeURIComponent(this.config.org ?? '')}&bucket=${encodeURIComponent(this.config.bucket ?? '')}&precision=us`;
      try {
        await client.transport.request(path, text ?? lines.payload.toString('utf8'), {
          method: 'POST',
          headers: { 'content-type': 'text/plain; charset=utf-8', accept: 'application/json' },
          gzipThreshold: this.config.gzip ? 0 : undefined,
          signal,
        });
        return { rejectedPoints: lines.skippedPoints, bytes };
      } catch (err) {
        if (err instanceof HttpError) return { ...interpret(err.statusCode, err.headers ?? {}, err.body ?? '', lines), bytes };
        throw networkError(err);
      }
    }
    const params = new URLSearchParams({ db: this.config.database ?? '' });
    if (this.config.retention_policy !== undefined) params.set('rp', this.config.retention_policy);
    params.set('precision', 'u');
    const payload = gzipped !== undefined ? await gzipped : lines.payload;
    const res = await this.post(`/write?${params.toString()}`, payload, signal);
    return { ...interpret(res.status, res.headers, res.body, lines), bytes };
  }

  async close(): Promise<void> {
    this.agent?.destroy();
    this.agent = undefined;
    this.client = undefined;
    return Promise.resolve();
  }

  counters(): Record<string, number> {
    return { ...this.counts };
  }

  private post(path: string, payload: Buffer, signal: AbortSignal): Promise<{ status: number; headers: Headers; body: string }> {
    const base = this.url.pathname.replace(/\/+$/, '');
    const headers: http.OutgoingHttpHeaders = {
      'content-type': 'text/plain; charset=utf-8',
      'content-length': payload.length,
      'user-agent': 'sluice',
    };
    if (this.config.gzip) headers['content-encoding'] = 'gzip';
    if (this.authorization !== undefined) headers.authorization = this.authorization;
    const request = this.url.protocol === 'https:' ? https.request : http.request;
    return new Promise((resolve, reject) => {
      const req = request(
        {
          protocol: this.url.protocol,
          hostname: this.url.hostname.replace(/^\[|\]$/g, ''),
          port: this.url.port || undefined,
          path: base + path,
          method: 'POST',
          agent: this.agent,
          headers,
          signal,
        },
        (res) => {
          const chunks: Buffer[] = [];
          let size = 0;
          res.on('data', (d: Buffer) => {
            if (size < MAX_ERROR_BODY_BYTES) chunks.push(d);
            size += d.length;
          });
          res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
          res.on('error', (err) => reject(networkError(err)));
        },
      );
      req.on('error', (err) => reject(networkError(err)));
      req.end(payload);
    });
  }
}

/** A secret from a file: trailing line breaks removed; never logged. */
async function readSecret(file: string | undefined, key: string): Promise<string> {
  if (file === undefined) throw new OutputError(`${key} is not set`, 'fatal');
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new OutputError(`cannot read ${key} ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, 'fatal', {}, { cause: err });
  }
  const secret = text.replace(/[\r\n]+$/, '');
  if (secret === '') throw new OutputError(`${key} ${file} is empty`, 'fatal');
  return secret;
}
