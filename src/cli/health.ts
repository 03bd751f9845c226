// `sluice health [-c FILE] [--url URL] [--wait D]`: asks a running agent's /healthz. For the systemd
// unit's ExecStartPost (readiness without sd_notify), container health checks and scripts.
// Exit 0 healthy, 1 unhealthy, 69 (EX_UNAVAILABLE) when no agent answers.
import { get } from 'node:http';
import { parseDuration } from '../core/schema/units.js';
import { parseListen } from '../http/server.js';
import { UsageError } from './args.js';
import { loadConfigOrThrow } from './settings.js';

export const EXIT_UNAVAILABLE = 69;
const RETRY_EVERY_MS = 250;
const REQUEST_TIMEOUT_MS = 5_000;

/** The address to ask: a wildcard listen address is reached on loopback. */
export function healthUrl(listen: string): string {
  const { host, port } = parseListen(listen);
  const reach = host === '0.0.0.0' || host === '' ? '127.0.0.1' : host === '::' ? '::1' : host;
  return `http://${reach.includes(':') ? `[${reach}]` : reach}:${port}/healthz`;
}

function ask(url: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = get(url, { timeout: REQUEST_TIMEOUT_MS }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`no answer within ${REQUEST_TIMEOUT_MS} ms`)));
    req.on('error', reject);
  });
}

export async function runHealth(opts: { configFile?: string; url?: string; wait?: string }): Promise<number> {
  let url = opts.url;
  if (url === undefined) {
    const listen = loadConfigOrThrow(opts.configFile).http.listen;
    if (listen === 'off') {
      process.stdout.write('http endpoint is off (http.listen: off): nothing to ask\n');
      return 0;
    }
    url = healthUrl(listen);
  } else if (!/\/healthz$/.test(url)) {
    url = url.replace(/\/$/, '') + '/healthz';
  }
  let waitMs = 0;
  if (opts.wait !== undefined) {
    const d = parseDuration(opts.wait);
    if (d === null) throw new UsageError(`--wait: "${opts.wait}" is not a duration (e.g. 30s)`);
    waitMs = d;
  }
  const deadline = Date.now() + waitMs;
  for (;;) {
    let outcome: { code: number; text: string };
    try {
      const { status, body } = await ask(url);
      outcome = status === 200 ? { code: 0, text: body } : { code: 1, text: body || `HTTP ${status}\n` };
    } catch (err) {
      outcome = { code: EXIT_UNAVAILABLE, text: `sluice: no agent answers at ${url}: ${(err as Error).message}\n` };
    }
    // While waiting, an agent that is still starting (no answer) or not yet healthy gets more time.
    if (outcome.code === 0 || Date.now() + RETRY_EVERY_MS > deadline) {
      (outcome.code === EXIT_UNAVAILABLE ? process.stderr : process.stdout).write(outcome.text);
      return outcome.code;
    }
    await new Promise((r) => setTimeout(r, RETRY_EVERY_MS));
  }
}
