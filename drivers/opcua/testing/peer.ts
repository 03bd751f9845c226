// The node-opcua test server (server.mjs) as a peer of the tests, the contract rig and the benchmark:
// started in a child process that dies with the test process, stopped (or killed) by the test.
import { type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { spawnPeer, stopPeer } from '../../../test/helpers/peer.js';
import { freePort } from '../../../test/helpers/http.js';

export const SERVER_SCRIPT = fileURLToPath(new URL('./server.mjs', import.meta.url));

export interface OpcuaServerSpec {
  /** Folder of the server's PKI (kept between restarts so its certificate stays the same). */
  pki: string;
  port?: number;
  /** user name → password; when given, anonymous sessions are refused. */
  users?: Record<string, string>;
  /** Bench.<i> Double variables. */
  items?: number;
}

export interface OpcuaServer {
  port: number;
  url: string;
  /** The server's own certificate (PEM), for the client's trusted_certs. */
  certificate: string;
  proc: ChildProcess;
  set(node: string, value: unknown, options?: { status?: string; sourceMs?: number }): Promise<void>;
  tick(from: number, count: number, value: number): Promise<void>;
  /** Every session times out now, as when its client has been silent too long; resolves with how many there were. */
  expireSessions(): Promise<number>;
  /** How many sessions the server holds. */
  sessions(): Promise<number>;
  /** SIGKILL: the server vanishes without closing anything, as a crashed or powered-off one does. */
  kill(): Promise<void>;
  stop(): Promise<void>;
}

const running = new Set<ChildProcess>();
process.once('exit', () => {
  for (const p of running) p.kill('SIGKILL');
});

/** Starts the server and resolves once it listens. */
export async function startOpcuaServer(spec: OpcuaServerSpec, startTimeoutMs = 60_000): Promise<OpcuaServer> {
  const port = spec.port ?? (await freePort());
  const proc = spawnPeer(process.execPath, [SERVER_SCRIPT, JSON.stringify({ ...spec, port })], { stdio: ['pipe', 'pipe', 'pipe'] });
  running.add(proc);
  proc.once('exit', () => running.delete(proc));
  let stderr = '';
  proc.stderr!.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-4000)));
  const lines = createInterface({ input: proc.stdout! });
  const waiting: ((line: string) => void)[] = [];
  // Only the script's own answers are JSON objects; node-opcua's chatter is not.
  lines.on('line', (line) => {
    if (line.startsWith('{"')) waiting.shift()?.(line);
  });
  const next = () => new Promise<string>((resolve) => waiting.push(resolve));
  const ready = await new Promise<{ certificate: string }>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the OPC UA test server did not start within ${startTimeoutMs} ms:\n${stderr}`)), startTimeoutMs);
    proc.once('exit', (code) => reject(new Error(`the OPC UA test server exited (${code}):\n${stderr}`)));
    void next().then((line) => {
      clearTimeout(timer);
      resolve(JSON.parse(line) as { certificate: string });
    });
  });
  let queue: Promise<unknown> = Promise.resolve();
  const command = (cmd: object): Promise<Record<string, unknown>> => {
    const answer = queue.then(async () => {
      const reply = next();
      proc.stdin!.write(JSON.stringify(cmd) + '\n');
      const r = JSON.parse(await reply) as { ok: boolean; error?: string } & Record<string, unknown>;
      if (!r.ok) throw new Error(`server command ${JSON.stringify(cmd)}: ${r.error}`);
      return r;
    });
    queue = answer.catch(() => undefined);
    return answer;
  };
  return {
    port,
    url: `opc.tcp://127.0.0.1:${port}/sluice`,
    certificate: ready.certificate,
    proc,
    set: async (node, value, options = {}) => void (await command({ set: { node, value, status: options.status, source_ms: options.sourceMs } })),
    tick: async (from, count, value) => void (await command({ tick: { from, count, value } })),
    expireSessions: async () => (await command({ expire_sessions: {} })).sessions as number,
    sessions: async () => (await command({ sessions: {} })).sessions as number,
    kill: () => stopPeer(proc, 'SIGKILL', 1000),
    stop: () => stopPeer(proc, 'SIGTERM', 5000),
  };
}
