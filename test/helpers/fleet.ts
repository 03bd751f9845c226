// Test helpers for src/fleet: a loopback HTTP server that serves manifests and binaries the way a
// fleet's web server would (ETag, If-None-Match → 304) and records what gateways asked and posted; an
// in-process agent under a FleetController; a logger that keeps its lines.
import { createHash, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { createReadStream, statSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { join } from 'node:path';
import { waitFor } from './cli.js';
import { Agent } from '../../src/agent/agent.js';
import { loadConfig } from '../../src/config/index.js';
import type { Logger } from '../../src/core/component.js';
import { bootConfig, type Boot } from '../../src/fleet/boot.js';
import { FleetController } from '../../src/fleet/controller.js';
import { signManifest, type Manifest } from '../../src/fleet/manifest.js';
import { ringOptions } from '../../src/cli/settings.js';

export interface Request {
  method: string;
  path: string;
  ifNoneMatch: string | undefined;
  status: number;
  body: string;
}

export interface FleetServer {
  readonly url: string;
  readonly requests: Request[];
  /** Serves `body` at `path` (ETag: a hash of the body). */
  set(path: string, body: string): void;
  /** Serves a file at `path`. */
  file(path: string, file: string): void;
  posts(path: string): unknown[];
  close(): Promise<void>;
}

export async function startFleetServer(): Promise<FleetServer> {
  const texts = new Map<string, string>();
  const files = new Map<string, string>();
  const requests: Request[] = [];
  const read = (req: IncomingMessage) =>
    new Promise<string>((resolve) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    });
  const server: Server = createServer((req, res) => {
    void read(req).then((body) => {
      const path = new URL(req.url ?? '/', 'http://x').pathname;
      const inm = req.headers['if-none-match'];
      const record = (status: number) => requests.push({ method: req.method ?? 'GET', path, ifNoneMatch: inm, status, body });
      if (req.method === 'POST') {
        record(204);
        res.writeHead(204).end();
        return;
      }
      const text = texts.get(path);
      const file = files.get(path);
      if (text !== undefined) {
        const etag = `"${createHash('sha256').update(text).digest('hex').slice(0, 16)}"`;
        if (inm === etag) {
          record(304);
          res.writeHead(304, { etag }).end();
          return;
        }
        record(200);
        res.writeHead(200, { 'content-type': 'application/json', etag }).end(text);
      } else if (file !== undefined) {
        record(200);
        res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': statSync(file).size });
        createReadStream(file).pipe(res);
      } else {
        record(404);
        res.writeHead(404).end('not found\n');
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    set: (path, body) => void texts.set(path, body),
    file: (path, file) => void files.set(path, file),
    posts: (path) => requests.filter((r) => r.method === 'POST' && r.path === path).map((r) => JSON.parse(r.body) as unknown),
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

export interface FleetKeys {
  privateKey: KeyObject;
  publicKey: KeyObject;
  /** The inline form of fleet.public_key. */
  publicBase64: string;
}

export function fleetKeys(): FleetKeys {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  return { privateKey, publicKey, publicBase64: publicKey.export({ type: 'spki', format: 'der' }).toString('base64') };
}

export function signed(manifest: Manifest, key: KeyObject): string {
  return JSON.stringify(signManifest(manifest, key), null, 2);
}

export interface LogLine {
  level: 'debug' | 'info' | 'warn' | 'error';
  msg: string;
  [key: string]: unknown;
}

export function memoryLogger(lines: LogLine[] = [], bindings: Record<string, unknown> = {}): Logger {
  const at =
    (level: LogLine['level']) =>
    (obj: object, msg?: string): void =>
      void lines.push({ ...bindings, ...(obj as Record<string, unknown>), level, msg: msg ?? '' });
  return {
    debug: at('debug'),
    info: at('info'),
    warn: at('warn'),
    error: at('error'),
    child: (more) => memoryLogger(lines, { ...bindings, ...more }),
  };
}

export interface RunningAgent {
  agent: Agent;
  fleet: FleetController;
  boot: Boot;
  logs: LogLine[];
  /** Reasons of restarts asked for (the test plays the supervisor). */
  restarts: string[];
  stop(): Promise<void>;
}

/** Writes `text` to `file` and runs an agent from it in this process, as `sluice run -c file` would. */
export async function runAgent(file: string, text: string, health = { minSilentMs: 1000, checkEveryMs: 100 }): Promise<RunningAgent> {
  writeFileSync(file, text);
  const r = loadConfig({ file });
  if (!r.ok) throw new Error(r.errors.map((e) => `${e.path}: ${e.message}`).join('\n'));
  const boot = bootConfig(r.config, file, undefined);
  const logs: LogLine[] = [];
  const log = memoryLogger(logs);
  const agent = new Agent({ config: boot.config, ring: ringOptions(boot.config), log });
  const restarts: string[] = [];
  const fleet = new FleetController({ agent, boot, log: log.child({ component: 'fleet' }), onRestart: (reason) => void restarts.push(reason), health });
  agent.control = fleet;
  await agent.start();
  fleet.start();
  let stopped = false;
  return {
    agent,
    fleet,
    boot,
    logs,
    restarts,
    async stop() {
      if (stopped) return;
      stopped = true;
      await fleet.stop();
      await agent.stop();
    },
  };
}

export function fleetFile(dataDir: string, name: string): string {
  return join(dataDir, 'fleet', name);
}

/** Polls until `probe` returns a truthy value (waitFor with the fleet tests' argument order). */
export function until<T>(probe: () => T | undefined | null | false, what: string, timeoutMs = 15_000): Promise<T> {
  return waitFor(probe, timeoutMs, what);
}
