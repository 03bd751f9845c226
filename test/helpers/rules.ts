// Shared bits of the rules tests: configs from YAML (through the real loader), points, loggers, and a
// webhook receiver on loopback (node:http) that answers as a test script tells it to.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { formatConfigError, loadConfig } from '../../src/config/index.js';
import type { Logger } from '../../src/core/component.js';
import type { FieldValue, Point } from '../../src/core/point.js';
import type { RulesConfig } from '../../src/rules/schema.js';

export const quiet: Logger = { debug() {}, info() {}, warn() {}, error() {}, child: () => quiet };

/** A logger that keeps its lines, to assert what was said (and that it was said once). */
export function recordingLogger(): Logger & { lines: { level: string; msg: string; obj: object }[] } {
  const lines: { level: string; msg: string; obj: object }[] = [];
  const at =
    (level: string) =>
    (obj: object, msg = ''): void =>
      void lines.push({ level, msg, obj });
  const log = { lines, debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error'), child: () => log };
  return log;
}

/** A YAML document from lines. */
export const yaml = (...lines: string[]): string => lines.join('\n') + '\n';

/** `rules` decoded by the real loader from the lines under `rules:`; throws with the errors if invalid. */
export function rulesConfig(...lines: string[]): RulesConfig {
  const r = loadConfig({ text: yaml('version: 1', 'rules:', ...lines.map((l) => `  ${l}`)), file: 'test.yaml', env: {}, hostname: 'gw-test' });
  if (!r.ok) throw new Error(`invalid rules config:\n${r.errors.map(formatConfigError).join('\n')}`);
  return r.config.rules;
}

/** The errors of a config with this `rules` section, as `LINE:COL path: message`. */
export function rulesErrors(...lines: string[]): string[] {
  const r = loadConfig({ text: yaml('version: 1', 'rules:', ...lines.map((l) => `  ${l}`)), file: 'test.yaml', env: {}, hostname: 'gw-test' });
  if (r.ok) throw new Error('expected errors, the config is valid');
  return r.errors.map((e) => `${e.line}:${e.col} ${e.path}: ${e.message}`);
}

export function point(measurement: string, tags: Record<string, string>, fields: Record<string, FieldValue>, timeMs = Date.now()): Point {
  return { measurement, tags, fields, timeUs: timeMs * 1000 };
}

export interface WebhookRequest {
  method: string;
  url: string;
  headers: IncomingMessage['headers'];
  body: string;
}

export interface Webhook {
  url: string;
  requests: WebhookRequest[];
  /** Answers to give, in order; after they run out, 200. */
  answers: { status: number; headers?: Record<string, string> }[];
  close(): Promise<void>;
}

/** A real HTTP server on loopback that records every request. */
export async function startWebhook(): Promise<Webhook> {
  const requests: WebhookRequest[] = [];
  const answers: Webhook['answers'] = [];
  const server: Server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      requests.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, body: Buffer.concat(chunks).toString('utf8') });
      const answer = answers.shift() ?? { status: 200 };
      res.writeHead(answer.status, { 'content-type': 'text/plain', ...answer.headers });
      res.end('ok\n');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/hook`,
    requests,
    answers,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
