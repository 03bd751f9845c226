// The agent's HTTP endpoint (`http.listen`, default 127.0.0.1:9273; `off` disables):
//   /             the status page (one HTML file with inline JS/CSS, bundled as text: no CDN)
//   /metrics      Prometheus text
//   /healthz      200 {"status":"ok"} or 503 with the reasons
//   /api/status   `status --json` plus version, inputs and health
//   /api/series   recent values of a measurement's series, thinned for a chart
//   /api/latest   the latest row of a measurement's series
//   /api/measurements
// Read-only, no per-request logging (quiet in steady state). node:http: no framework for seven routes.
import { getHeapStatistics } from 'node:v8';
import { memoryBudgets } from '../core/memory.js';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { isIP } from 'node:net';
import type { Logger } from '../core/component.js';
import { VERSION } from '../version.js';
import { DEFAULT_HEALTH, type HealthOptions } from './health.js';
import { createMetrics } from './metrics.js';
import page from './page.html';
import { AgentProbe } from './probe.js';
import { listMeasurements, readLatest, readSeries } from './series.js';
import type { AgentView } from './view.js';

/** A port that is taken at start (another agent, a restart racing the old process) is retried. */
const BIND_RETRY_MS = 30_000;
const MAX_SERIES = 50;
const MAX_POINTS = 2000;

export interface HttpOptions {
  /** Overrides config.http.listen (tests use port 0). */
  listen?: string;
  health?: Partial<HealthOptions>;
}

export interface HttpEndpoint {
  /** http://host:port once listening; empty while a bind is being retried. */
  readonly url: string;
  readonly probe: AgentProbe;
  close(): Promise<void>;
}

export function parseListen(listen: string): { host: string; port: number } {
  const i = listen.lastIndexOf(':');
  let host = listen.slice(0, i);
  if (host.startsWith('[') && host.endsWith(']')) host = host.slice(1, -1);
  return { host, port: Number(listen.slice(i + 1)) };
}

function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\./.test(host);
}

/**
 * Starts the endpoint unless `listen` is `off`. Resolves once listening, or once the first bind failed
 * (logged, retried in the background): metrics are not worth stopping data collection for.
 */
export async function startHttp(view: AgentView, log: Logger, options: HttpOptions = {}): Promise<HttpEndpoint | undefined> {
  const listen = options.listen ?? view.config.http.listen;
  if (listen === 'off') return undefined;
  const { host, port } = parseListen(listen);
  const probe = new AgentProbe(view, { ...DEFAULT_HEALTH, ...options.health });
  view.ring.onCommit = (e) => probe.onCommit(e);
  const registry = createMetrics(probe);
  const loopbackOnly = isLoopback(host);

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    // A loopback endpoint answers loopback names only: a web page cannot DNS-rebind its way in.
    if (loopbackOnly && !isLoopback(hostnameOf(req.headers.host))) return send(res, 421, 'text/plain', 'misdirected request\n');
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.setHeader('Allow', 'GET, HEAD');
      return send(res, 405, 'text/plain', 'method not allowed\n');
    }
    const url = new URL(req.url ?? '/', 'http://localhost');
    switch (url.pathname) {
      case '/':
      case '/index.html':
        res.setHeader('Content-Security-Policy', "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; img-src data:");
        return send(res, 200, 'text/html; charset=utf-8', page);
      case '/metrics':
        return send(res, 200, registry.contentType, await registry.metrics());
      case '/healthz': {
        const report = probe.health();
        return sendJson(res, report.status === 'ok' ? 200 : 503, report);
      }
      case '/api/status':
        return sendJson(res, 200, apiStatus(probe));
      case '/api/measurements':
        return sendJson(res, 200, { measurements: listMeasurements(view.ring) });
      case '/api/series': {
        const q = url.searchParams;
        const measurement = q.get('measurement');
        if (!measurement) return sendJson(res, 400, { error: 'measurement is required' });
        const now = Date.now();
        const sinceMs = timeParam(q.get('since'), now - 15 * 60_000, now);
        const untilMs = timeParam(q.get('until'), now, now);
        return sendJson(
          res,
          200,
          readSeries(view.ring, {
            measurement,
            field: q.get('field') || undefined,
            sinceMs,
            untilMs: Math.max(untilMs, sinceMs + 1),
            maxSeries: intParam(q.get('limit'), 8, 1, MAX_SERIES),
            maxPoints: intParam(q.get('points'), 300, 2, MAX_POINTS),
          }),
        );
      }
      case '/api/latest': {
        const q = url.searchParams;
        const measurement = q.get('measurement');
        if (!measurement) return sendJson(res, 400, { error: 'measurement is required' });
        const now = Date.now();
        return sendJson(res, 200, { measurement, ...readLatest(view.ring, measurement, timeParam(q.get('since'), now - 10 * 60_000, now), intParam(q.get('limit'), 8, 1, MAX_SERIES)) });
      }
      default:
        return send(res, 404, 'text/plain', 'not found\n');
    }
  };

  const server = createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      log.warn({ err, path: req.url }, 'http request failed');
      if (!res.headersSent) send(res, 500, 'text/plain', 'internal error\n');
      else res.destroy();
    });
  });
  // Idle keep-alive sockets must not hold stop() up.
  server.keepAliveTimeout = 5_000;

  let url = '';
  let retry: NodeJS.Timeout | undefined;
  let closed = false;
  const bind = () =>
    new Promise<void>((resolve) => {
      const onError = (err: NodeJS.ErrnoException) => {
        server.off('listening', onListening);
        log.warn({ err: { code: err.code, message: err.message }, listen }, `http: cannot listen on ${listen}; retrying every ${BIND_RETRY_MS / 1000}s (data collection goes on)`);
        if (!closed) {
          retry = setTimeout(() => void bind(), BIND_RETRY_MS);
          retry.unref();
        }
        resolve();
      };
      const onListening = () => {
        server.off('error', onError);
        const addr = server.address();
        const actualPort = typeof addr === 'object' && addr ? addr.port : port;
        url = `http://${isIP(host) === 6 ? `[${host}]` : host}:${actualPort}`;
        log.info({ url }, 'http endpoint listening');
        resolve();
      };
      server.once('error', onError);
      server.once('listening', onListening);
      server.listen(port, host);
    });
  await bind();

  return {
    get url() {
      return url;
    },
    probe,
    close: async () => {
      closed = true;
      if (retry) clearTimeout(retry);
      if (view.ring.onCommit) view.ring.onCommit = undefined;
      if (!server.listening) return;
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
    },
  };
}

function apiStatus(probe: AgentProbe): Record<string, unknown> {
  const snap = probe.snap();
  const health = probe.health();
  const outputStats = probe.outputStats();
  const outputs: Record<string, unknown> = {};
  for (const [id, o] of Object.entries(snap.store.outputs)) {
    // A cursor whose output left the config keeps its id; its type is then unknown (null).
    const type = probe.outputType(id);
    outputs[id] = { type: type === 'unknown' ? null : type, ...o, ...(outputStats[id] ? { stats: outputStats[id] } : {}) };
  }
  const inputs: Record<string, unknown> = {};
  for (const [id, s] of Object.entries(snap.inputs)) {
    inputs[id] = {
      type: s.type,
      measurement: s.measurement,
      interval_ms: s.interval_ms,
      points: s.points,
      errors: s.errors,
      refused: s.refused,
      last_point_ms: s.lastPointMs,
      counters: s.counters ?? {},
    };
  }
  return {
    version: VERSION,
    agent_id: probe.view.config.agent.id,
    started_ms: probe.startedMs,
    now_ms: snap.nowMs,
    ...snap.store,
    outputs,
    inputs,
    health: { status: health.status, reasons: health.reasons },
    // Config reloads and fleet management (src/fleet): null when the agent runs without them.
    config: probe.view.control?.configStatus() ?? null,
    fleet: probe.view.control?.fleetStatus() ?? null,
    rules: probe.view.rules?.stats() ?? null,
    // agent.memory_limit and the heap limit V8 works with (`sluice run` sets it from the former, src/cli/limits.ts).
    memory: {
      limit_bytes: probe.view.config.agent.memory_limit,
      heap_limit_bytes: getHeapStatistics().heap_size_limit,
      intake_limit_bytes: memoryBudgets(probe.view.config.agent.memory_limit).intakeBytes,
    },
  };
}

function hostnameOf(host: string | undefined): string {
  if (!host) return '';
  if (host.startsWith('[')) return host.slice(1, host.indexOf(']'));
  const i = host.lastIndexOf(':');
  return i === -1 ? host : host.slice(0, i);
}

function timeParam(v: string | null, fallback: number, nowMs: number): number {
  if (v === null || v === '') return fallback;
  // Relative (`-15m`, `-1h`) for the page, absolute epoch ms or RFC 3339 for anyone else.
  const rel = /^-(\d+(?:\.\d+)?)(ms|s|m|h|d)$/.exec(v);
  if (rel) return nowMs - Number(rel[1]) * { ms: 1, s: 1e3, m: 6e4, h: 36e5, d: 864e5 }[rel[2] as 'ms' | 's' | 'm' | 'h' | 'd'];
  const n = /^\d+$/.test(v) ? Number(v) : Date.parse(v);
  return Number.isFinite(n) ? n : fallback;
}

function intParam(v: string | null, fallback: number, min: number, max: number): number {
  const n = v === null ? NaN : Number.parseInt(v, 10);
  return Number.isFinite(n) ? Math.min(max, Math.max(min, n)) : fallback;
}

function send(res: ServerResponse, status: number, type: string, body: string): void {
  res.statusCode = status;
  res.setHeader('Content-Type', type);
  res.setHeader('Cache-Control', 'no-store');
  res.setHeader('X-Content-Type-Options', 'nosniff');
  res.setHeader('Content-Length', Buffer.byteLength(body));
  res.end(res.req.method === 'HEAD' ? undefined : body);
}

function sendJson(res: ServerResponse, status: number, value: unknown): void {
  send(res, status, 'application/json', JSON.stringify(value) + '\n');
}
