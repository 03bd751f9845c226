// A FAKE of InfluxDB 2's write endpoint, for the v2 contract tests: InfluxDB 2 is not packaged here
// (the real line-protocol checks run against influxd 1.6.7). It speaks the documented contract of
// POST /api/v2/write (docs.influxdata.com/influxdb/v2/api/#operation/PostWrite):
//   ?org=&bucket=&precision=ns|us|ms|s, `Authorization: Token …`, optional `Content-Encoding: gzip`;
//   204 when every line was written; 400 {"code":"invalid","message":…,"line":N} naming the refused
//   lines, either as a partial write (the good lines written; InfluxDB Cloud and newer servers) or
//   first-malformed-line-only with nothing written (OSS 2.x); 401 for a wrong token; 404 for an unknown
//   org or bucket; 413 above its body limit; and whatever fault a test queues (429/503 with
//   Retry-After, 500, a slow answer, a reset connection). It records every request and every accepted
//   point with the time it arrived, so tests assert on what the server saw rather than on wall clocks.
import http from 'node:http';
import https from 'node:https';
import type net from 'node:net';
import { gunzipSync } from 'node:zlib';
import { parseLine, seriesKey } from '../../src/core/line-protocol.js';
import { fieldType, type FieldType, type Fields, type Point } from '../../src/core/point.js';
import type { Precision } from '../../src/core/time.js';

export type FakeFault =
  | { kind: 'status'; status: number; body?: string; headers?: Record<string, string> }
  /** Answer normally, but only after `ms`. */
  | { kind: 'delay'; ms: number }
  /** Destroy the connection without an answer. */
  | { kind: 'reset' };

export interface FakeWrite {
  atMs: number;
  status: number;
  /** Lines in the body, and how many were written. */
  lines: number;
  written: number;
  /** Body bytes as received (compressed when gzip). */
  bytes: number;
  gzip: boolean;
  fault?: FakeFault['kind'];
}

export interface Arrival {
  series: string;
  timeUs: number;
  atMs: number;
  /** Index into writes. */
  request: number;
}

export interface FakeOptions {
  org?: string;
  bucket?: string;
  token?: string;
  /** Serve https with this key and certificate (PEM). */
  tls?: { key: string | Buffer; cert: string | Buffer };
}

export class FakeInfluxV2 {
  readonly org: string;
  readonly bucket: string;
  token: string;
  /** Requests in arrival order (every status). */
  readonly writes: FakeWrite[] = [];
  /** Every accepted point, in arrival order (a re-sent point appears again). */
  readonly arrivals: Arrival[] = [];
  /** What is stored: `series\ntimeUs` → fields (later writes overwrite fields, as InfluxDB does). */
  readonly points = new Map<string, Fields>();
  /** Faults applied to the next requests, one each, in order. */
  readonly faults: FakeFault[] = [];
  /** Requests with a (received) body larger than this get 413. */
  maxBodyBytes = Infinity;
  /**
   * How a batch with refused lines is answered: a partial write naming them, the first one only with
   * nothing written, or (blind) a bare 400 that names nothing, with nothing written.
   */
  mode: 'partial' | 'first-line' | 'blind' = 'partial';
  /** Lines to refuse besides unparsable ones and field type conflicts. */
  refuse?: (point: Point) => boolean;
  private readonly fieldTypes = new Map<string, FieldType>();
  private server: http.Server | https.Server;
  private readonly tls: FakeOptions['tls'];
  private readonly sockets = new Set<net.Socket>();
  private port = 0;

  private constructor(options: FakeOptions) {
    this.org = options.org ?? 'acme';
    this.bucket = options.bucket ?? 'edge';
    this.token = options.token ?? 'fake-token';
    this.tls = options.tls;
    this.server = this.makeServer();
  }

  static async start(options: FakeOptions = {}): Promise<FakeInfluxV2> {
    const fake = new FakeInfluxV2(options);
    await fake.listen(0);
    return fake;
  }

  get url(): string {
    return `${this.tls ? 'https' : 'http'}://127.0.0.1:${this.port}`;
  }

  /** Goes away: stops listening and drops every connection (clients see connection refused). */
  async down(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  /** Comes back on the same port. */
  async up(): Promise<void> {
    this.server = this.makeServer();
    await this.listen(this.port);
  }

  async close(): Promise<void> {
    if (this.server.listening) await this.down();
  }

  /** Accepted points of one series in arrival order. */
  arrivalsOf(series: string): Arrival[] {
    return this.arrivals.filter((a) => a.series === series);
  }

  private listen(port: number): Promise<void> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, '127.0.0.1', () => {
        this.port = (this.server.address() as net.AddressInfo).port;
        resolve();
      });
    });
  }

  private makeServer(): http.Server | https.Server {
    const handler = (req: http.IncomingMessage, res: http.ServerResponse) => {
      const chunks: Buffer[] = [];
      req.on('data', (d: Buffer) => chunks.push(d));
      req.on('end', () => {
        void this.handle(req, res, Buffer.concat(chunks));
      });
    };
    const server = this.tls ? https.createServer({ key: this.tls.key, cert: this.tls.cert }, handler) : http.createServer(handler);
    server.on(this.tls ? 'secureConnection' : 'connection', (s: net.Socket) => {
      this.sockets.add(s);
      s.on('close', () => this.sockets.delete(s));
    });
    return server;
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse, raw: Buffer): Promise<void> {
    const atMs = Date.now();
    const url = new URL(req.url ?? '/', 'http://fake');
    const gzip = req.headers['content-encoding'] === 'gzip';
    const record: FakeWrite = { atMs, status: 0, lines: 0, written: 0, bytes: raw.length, gzip };
    this.writes.push(record);
    const index = this.writes.length - 1;
    const send = (status: number, body?: object, headers: Record<string, string> = {}) => {
      record.status = status;
      res.writeHead(status, body ? { 'content-type': 'application/json; charset=utf-8', ...headers } : headers);
      res.end(body ? JSON.stringify(body) : undefined);
    };
    if (req.method !== 'POST' || url.pathname !== '/api/v2/write') return send(404, { code: 'not found', message: 'path not found' });
    if (req.headers.authorization !== `Token ${this.token}`) return send(401, { code: 'unauthorized', message: 'unauthorized access' });
    if (url.searchParams.get('org') !== this.org) return send(404, { code: 'not found', message: `organization name "${url.searchParams.get('org')}" not found` });
    if (url.searchParams.get('bucket') !== this.bucket) return send(404, { code: 'not found', message: `bucket "${url.searchParams.get('bucket')}" not found` });
    const fault = this.faults.shift();
    if (fault) {
      record.fault = fault.kind;
      if (fault.kind === 'reset') {
        record.status = -1;
        req.socket.destroy();
        return;
      }
      if (fault.kind === 'status') {
        record.status = fault.status;
        res.writeHead(fault.status, { 'content-type': 'application/json; charset=utf-8', ...fault.headers });
        res.end(fault.body ?? JSON.stringify({ code: 'internal error', message: `injected ${fault.status}` }));
        return;
      }
      await new Promise((r) => setTimeout(r, fault.ms));
      if (req.socket.destroyed) {
        record.status = -2;
        return;
      }
    }
    if (raw.length > this.maxBodyBytes) return send(413, { code: 'request too large', message: `unable to read data: points batch is too large (${raw.length} > ${this.maxBodyBytes} bytes)` });
    const text = (gzip ? gunzipSync(raw) : raw).toString('utf8');
    const precision = (url.searchParams.get('precision') ?? 'ns') as Precision;
    const lines = text.split('\n');
    const good: { point: Point; line: number }[] = [];
    const bad: { line: number; text: string; reason: string }[] = [];
    const seenTypes = new Map<string, FieldType>();
    lines.forEach((line, i) => {
      if (line.trim() === '') return;
      record.lines++;
      let point: Point;
      try {
        point = parseLine(line, precision);
      } catch (err) {
        bad.push({ line: i + 1, text: line, reason: (err as Error).message });
        return;
      }
      for (const [name, value] of Object.entries(point.fields)) {
        const key = `${point.measurement}\u0000${name}`;
        const known = this.fieldTypes.get(key) ?? seenTypes.get(key);
        const type = fieldType(value);
        if (known !== undefined && known !== type) {
          bad.push({ line: i + 1, text: line, reason: `field type conflict: input field "${name}" on measurement "${point.measurement}" is type ${type}, already exists as type ${known}` });
          return;
        }
      }
      if (this.refuse?.(point)) {
        bad.push({ line: i + 1, text: line, reason: 'refused by the test' });
        return;
      }
      for (const [name, value] of Object.entries(point.fields)) seenTypes.set(`${point.measurement}\u0000${name}`, fieldType(value));
      good.push({ point, line: i + 1 });
    });
    if (bad.length > 0 && this.mode === 'blind') return send(400, { code: 'invalid', message: 'bad request' });
    if (bad.length > 0 && this.mode === 'first-line') {
      return send(400, { code: 'invalid', message: `unable to parse '${bad[0].text}': ${bad[0].reason}`, line: bad[0].line });
    }
    for (const [k, t] of seenTypes) this.fieldTypes.set(k, t);
    for (const { point } of good) {
      const series = seriesKey(point.measurement, point.tags);
      const key = `${series}\n${point.timeUs}`;
      this.points.set(key, { ...this.points.get(key), ...point.fields });
      this.arrivals.push({ series, timeUs: point.timeUs, atMs, request: index });
    }
    record.written = good.length;
    if (bad.length > 0) {
      return send(400, {
        code: 'invalid',
        message: `partial write has occurred, errors encountered on line(s): ${bad.map((b) => `line ${b.line}: ${b.reason}`).join('\n')}`,
        line: bad[0].line,
      });
    }
    send(204);
  }
}
