// The opcua input: one client, one session, one subscription (or a poll timer) per input.
//
// Session life. node-opcua can repair a broken connection by itself, but it does so out of sight and,
// in the versions we know, not always all the way (a session the server forgot, a subscription that
// timed out while the network was down). So its own reconnection is off (connectionStrategy.maxRetry
// 0) and this input owns the cycle: connect, create the session, create the subscription and its
// monitored items (or start polling); on any sign that this chain broke (the socket closed, the
// secure channel could not be renewed, the session closed or timed out, the subscription terminated,
// a keep-alive or a read failed for the session's sake) the whole chain is torn down and built again
// after a delay from the project's backoff (src/core/backoff.ts). Every state change is counted and
// logged once; the agent is never restarted.
//
// Two of node-opcua's own mechanisms stay on and need care:
// - The socket closes after `timeout` without traffic (node-opcua's transportTimeout). A quiet
//   connection (a subscription whose values do not change, a poll interval longer than the timeout)
//   carries only keep-alives, so the session's keep-alive reads come at least every half timeout
//   (keepAliveInterval: node-opcua reads once nothing was heard for half of it, then again after all
//   of it). Left to node-opcua's defaults the reads came every 10 s against a 10 s timeout, and a
//   quiet connection dropped now and then (every 2 s with `timeout: 2s`).
// - A request the server refuses with BadSessionIdInvalid (it forgot the session: expired, or closed
//   it) makes node-opcua repair the session in place, a new session with the subscription carried
//   over or not. That is a broken chain here like any other: its repair events break it.
// Secure channel token renewals (node-opcua renews at 75 % of the token's lifetime) are no state
// change: the session and its subscription carry on; they are counted, not logged.
//
// Values. Each data change (subscribe) or read result (poll) with a Good status becomes a field named
// after its node (values.ts has the type rules); a Bad or Uncertain status is not stored, counted by
// its name (`status_<Name>`) and logged once per node when its status changes.
import { existsSync, mkdirSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { format } from 'node:util';
import {
  AttributeIds,
  ClientMonitoredItemGroup,
  ClientSubscription,
  DataChangeFilter,
  DataChangeTrigger,
  DeadbandType,
  MessageSecurityMode,
  OPCUAClient,
  SecurityPolicy,
  TimestampsToReturn,
  UserTokenType,
  setErrorLogger,
  setWarningLogger,
  type ClientSession,
  type DataValue,
  type UserIdentityInfo,
} from 'node-opcua-client';
import { OPCUACertificateManager } from 'node-opcua-certificate-manager';
import { readCertificate } from 'node-opcua-crypto';
import { Backoff } from '../../src/core/backoff.js';
import { sinkRefusal, type Input, type InputContext, type InputStats, type Logger } from '../../src/core/component.js';
import type { FieldValue, Point } from '../../src/core/point.js';
import { ReceiptClock } from '../../src/core/time.js';
import type { OpcuaInputConfig, OpcuaNodeConfig } from './schema.js';
import { pointTimeUs, toFields } from './values.js';

/** Timings, overridable by tests. */
export interface OpcuaTuning {
  reconnectMinMs: number;
  reconnectMaxMs: number;
  /** A session that lasted this long resets the reconnect backoff. */
  stableAfterMs: number;
  /** How long the server keeps our session while we cannot reach it. */
  sessionTimeoutMs: number;
  /** How long stop() waits for the session and subscription to close politely. */
  stopTimeoutMs: number;
  /** The secure channel token lifetime asked of the server (which may shorten it); renewed at 75 % of it. */
  secureTokenLifetimeMs: number;
}

export const DEFAULT_TUNING: OpcuaTuning = {
  reconnectMinMs: 1000,
  reconnectMaxMs: 30_000,
  stableAfterMs: 10_000,
  sessionTimeoutMs: 60_000,
  stopTimeoutMs: 3000,
  // node-opcua's default.
  secureTokenLifetimeMs: 600_000,
};

/** The PKI folder under the data dir: own/ (the client's certificate, made on first start), trusted/, rejected/. */
export const PKI_FOLDER = 'opcua-pki';

/** node-opcua's CloseSecureChannel callback timer (client_secure_channel_layer.js), plus a margin. */
const CLOSE_SECURE_CHANNEL_TIMER_MS = 150;

/** Everything one connection holds, torn down as a unit. */
interface Chain {
  client: OPCUAClient;
  session?: ClientSession;
  subscription?: ClientSubscription;
  pollTimer?: NodeJS.Timeout;
  /** subscribe: checks that the subscription still speaks (data or keep-alives). */
  watchdog?: NodeJS.Timeout;
  broken: boolean;
}

class Timeout extends Error {
  override name = 'Timeout';
}

async function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([promise, new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Timeout(`${what} took longer than ${ms} ms`)), ms)))]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * node-opcua prints its warnings and errors with console.log, which would break the agent's JSON log
 * lines on stdout. They go to the log of the last opcua input made, at debug level: everything a user
 * must know this input logs itself, in its own words.
 */
let libraryLog: Logger | undefined;
const forward = (level: 'warning' | 'error') => (_context: unknown, ...args: unknown[]) => libraryLog?.debug({ library: 'node-opcua', level, text: format(...args) }, 'node-opcua message');
setWarningLogger(forward('warning'));
setErrorLogger(forward('error'));

const errorText = (err: unknown): string => (err instanceof Error ? err.message.split('\n')[0] : String(err));

export class OpcuaInput implements Input {
  private readonly tuning: OpcuaTuning;
  private readonly log: Logger;
  private readonly backoff: Backoff;
  private readonly totals: InputStats & { counters: Record<string, number> };
  private chain: Chain | undefined;
  private attempt: Promise<void> | undefined;
  private retryTimer: NodeJS.Timeout | undefined;
  private stableTimer: NodeJS.Timeout | undefined;
  private flushHandle: NodeJS.Immediate | undefined;
  private certificates: OPCUACertificateManager | undefined;
  /** Teardowns still closing, awaited by stop() so that it resolves only once every socket is gone. */
  private readonly closing = new Set<Promise<void>>();
  private stopping = false;
  private up = false;
  private downSinceMs = Date.now();
  /** The last failure logged, so repeats of the same failure stay quiet. */
  private lastFailure: string | undefined;
  /** Per node index: the status last seen ('Good' or a status name), for one log line per change. */
  private readonly nodeStatus = new Map<number, string>();
  private readonly unsupportedLogged = new Set<number>();
  /** Poll deadbands: the last value stored per node. */
  private readonly lastStored = new Map<number, number>();
  private pending: { index: number; value: DataValue; agentUs: number }[] = [];
  private readonly receipts = new ReceiptClock();

  constructor(
    private readonly config: OpcuaInputConfig,
    private readonly ctx: InputContext,
    tuning: Partial<OpcuaTuning> = {},
  ) {
    this.tuning = { ...DEFAULT_TUNING, ...tuning };
    this.log = ctx.log;
    libraryLog = ctx.log;
    this.backoff = new Backoff({ minMs: this.tuning.reconnectMinMs, maxMs: this.tuning.reconnectMaxMs });
    this.totals = {
      points: 0,
      errors: 0,
      refused: 0,
      lastPointMs: null,
      counters: { connects: 0, connect_failures: 0, connection_losses: 0, token_renewals: 0, items_created: 0, items_failed: 0, values_unsupported: 0, reads: 0 },
    };
  }

  start(): Promise<void> {
    this.stopping = false;
    this.downSinceMs = Date.now();
    this.attempt = this.connect();
    return Promise.resolve();
  }

  async stop(): Promise<void> {
    this.stopping = true;
    clearTimeout(this.retryTimer);
    clearTimeout(this.stableTimer);
    this.retryTimer = undefined;
    // The chain that is up, or being built: closing its socket also cuts a connect in progress short.
    const current = this.chain;
    this.chain = undefined;
    if (current) await this.teardown(current, true);
    await this.attempt;
    // An attempt that was before its first await when stop began may have made a chain since.
    const late = this.chain as Chain | undefined;
    this.chain = undefined;
    if (late) await this.teardown(late, true);
    if (this.flushHandle) clearImmediate(this.flushHandle);
    this.flushHandle = undefined;
    this.pending = [];
    await Promise.all([...this.closing]);
    await this.certificates?.dispose();
    this.certificates = undefined;
  }

  stats(): InputStats & { counters: Record<string, number> } {
    return { ...this.totals, counters: { ...this.totals.counters } };
  }

  // ------------------------------------------------------------------------------ connection cycle

  private count(name: string, by = 1): void {
    this.totals.counters[name] = (this.totals.counters[name] ?? 0) + by;
  }

  private async certificateManager(): Promise<OPCUACertificateManager> {
    if (this.certificates) return this.certificates;
    const rootFolder = join(this.ctx.dataDir, PKI_FOLDER);
    mkdirSync(rootFolder, { recursive: true });
    const manager = new OPCUACertificateManager({ rootFolder, automaticallyAcceptUnknownCertificate: this.config.trust_server_certificate });
    await manager.initialize();
    this.certificates = manager;
    return manager;
  }

  /** Copies the certificates of trusted_certs into the PKI's trusted store (read at each start). */
  private async trustFolder(manager: OPCUACertificateManager): Promise<void> {
    const folder = this.config.trusted_certs;
    if (folder === undefined) return;
    if (!existsSync(folder)) throw new Error(`trusted_certs folder ${folder} does not exist`);
    for (const name of readdirSync(folder)) {
      if (!/\.(?:pem|der|crt|cer)$/i.test(name)) continue;
      await manager.trustCertificate(readCertificate(join(folder, name)));
    }
  }

  private identity(): UserIdentityInfo {
    const auth = this.config.auth;
    if (auth?.username !== undefined) {
      const password = auth.password ?? readFileSync(auth.password_file!, 'utf8').replace(/\r?\n$/, '');
      return { type: UserTokenType.UserName, userName: auth.username, password };
    }
    if (auth?.certificate !== undefined) {
      return { type: UserTokenType.Certificate, certificateData: readCertificate(auth.certificate), privateKey: readFileSync(auth.private_key!, 'utf8') };
    }
    return { type: UserTokenType.Anonymous };
  }

  private async connect(): Promise<void> {
    const timeoutMs = this.config.timeout;
    let chain: Chain | undefined;
    try {
      const certificates = await this.certificateManager();
      await this.trustFolder(certificates);
      const identity = this.identity();
      if (this.stopping) return;
      const client = OPCUAClient.create({
        applicationName: 'sluice',
        clientName: `sluice-${this.ctx.agentId}-${this.ctx.id}`,
        clientCertificateManager: certificates,
        securityMode: MessageSecurityMode[this.config.security_mode],
        securityPolicy: SecurityPolicy[this.config.security_policy],
        endpointMustExist: false,
        keepSessionAlive: true,
        // Keep-alive reads at least every half timeout, so the socket is never idle for a whole one
        // (see the header), and well within the session timeout.
        keepAliveInterval: Math.floor(Math.min(timeoutMs / 2, (2 * this.tuning.sessionTimeoutMs) / 3)),
        requestedSessionTimeout: this.tuning.sessionTimeoutMs,
        transportTimeout: timeoutMs,
        defaultSecureTokenLifetime: this.tuning.secureTokenLifetimeMs,
        // This input reconnects itself (see the header comment).
        connectionStrategy: { maxRetry: 0, initialDelay: 1000, maxDelay: 1000 },
      });
      chain = { client, broken: false };
      this.chain = chain;
      const lost = (why: string) => () => this.lose(chain!, why);
      client.on('connection_lost', lost('the connection to the OPC UA server was lost'));
      client.on('close', lost('the connection to the OPC UA server closed'));
      client.on('security_token_renewed', () => {
        if (!chain!.broken) this.count('token_renewals');
      });
      await within(client.connect(this.config.url), timeoutMs, 'connecting');
      if (this.stopping || chain.broken) return;
      const session = await within(client.createSession(identity), timeoutMs, 'creating the session');
      chain.session = session;
      session.on('session_closed', lost('the server closed the session'));
      session.on('keepalive_failure', lost('the session keep-alive failed'));
      // node-opcua's repair of a session the server no longer knew (see the header): done or given up,
      // the chain is rebuilt here.
      const forgotten = lost('the server no longer knew the session (it expired or was closed by the server)');
      session.on('session_repaired', forgotten);
      session.on('session_repaired_failed', forgotten);
      session.on('session_restored', forgotten);
      if (this.stopping || chain.broken) return;
      if (this.config.mode === 'subscribe') await this.subscribe(chain, session);
      else this.schedulePoll(chain, session, 0);
      if (this.stopping || chain.broken) return;
      this.connected(chain);
    } catch (err) {
      if (this.stopping) return;
      this.failed(chain, err);
    }
  }

  private connected(chain: Chain): void {
    this.up = true;
    this.lastFailure = undefined;
    this.count('connects');
    this.log.info(
      { url: this.config.url, security_policy: this.config.security_policy, security_mode: this.config.security_mode, mode: this.config.mode, down_ms: Date.now() - this.downSinceMs },
      'connected to the OPC UA server',
    );
    this.stableTimer = setTimeout(() => {
      if (this.chain === chain && !chain.broken) this.backoff.reset();
    }, this.tuning.stableAfterMs);
  }

  /** A connection attempt failed: log it when it is news, tear down what was built, try again later. */
  private failed(chain: Chain | undefined, err: unknown): void {
    this.count('connect_failures');
    const text = explain(err);
    if (text !== this.lastFailure) {
      this.lastFailure = text;
      this.log.warn({ url: this.config.url, err: text }, 'cannot connect to the OPC UA server (retrying)');
    }
    if (chain && !chain.broken) {
      if (this.chain === chain) this.chain = undefined;
      this.close(chain);
    }
    this.scheduleRetry();
  }

  /** The chain that was up broke (or one being built): once per chain. */
  private lose(chain: Chain, why: string): void {
    if (chain.broken || this.stopping) return;
    chain.broken = true;
    if (this.chain !== chain) return;
    this.chain = undefined;
    clearTimeout(this.stableTimer);
    if (this.up) {
      this.up = false;
      this.downSinceMs = Date.now();
      this.count('connection_losses');
      this.log.warn({ url: this.config.url, reason: why }, 'connection to the OPC UA server lost (reconnecting)');
    }
    this.close(chain);
    // An attempt still building this chain notices `broken` and returns; the retry follows it.
    void Promise.resolve(this.attempt).then(() => this.scheduleRetry());
  }

  private scheduleRetry(): void {
    if (this.stopping || this.retryTimer || this.chain) return;
    const delayMs = this.backoff.nextDelayMs();
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      if (this.stopping || this.chain) return;
      this.attempt = this.connect();
    }, delayMs);
  }

  /** Tears a broken chain down in the background; stop() waits for it. */
  private close(chain: Chain): void {
    const done = this.teardown(chain, false).finally(() => this.closing.delete(done));
    this.closing.add(done);
  }

  private async teardown(chain: Chain, polite: boolean): Promise<void> {
    // From here on the chain's events (close, terminated, …) are its own end, not news.
    chain.broken = true;
    clearTimeout(chain.pollTimer);
    clearInterval(chain.watchdog);
    const closeMs = polite ? this.tuning.stopTimeoutMs : 1000;
    try {
      if (chain.subscription) await within(chain.subscription.terminate(), closeMs, 'terminating the subscription');
    } catch {
      // the server may be gone; the session's close below ends the subscription anyway
    }
    try {
      if (chain.session) {
        await within(chain.session.close(true), closeMs, 'closing the session');
      }
    } catch {
      // nothing to close on a dead connection
    }
    try {
      await within(chain.client.disconnect(), closeMs, 'disconnecting');
    } catch {
      // disconnect of a broken client; its socket is destroyed either way
    }
    // node-opcua arms a 100 ms timer when it sends CloseSecureChannel (it expects no answer) and does
    // not clear it when the server closes first; waiting it out keeps "after stop, nothing runs" true.
    await new Promise((resolve) => setTimeout(resolve, CLOSE_SECURE_CHANNEL_TIMER_MS));
  }

  // --------------------------------------------------------------------------------- subscribe

  private async subscribe(chain: Chain, session: ClientSession): Promise<void> {
    const publishingMs = this.config.publishing_interval;
    const subscription = await within(
      session.createSubscription2({
        requestedPublishingInterval: publishingMs,
        // Keep-alives every ~10 s at most, and the server gives up on us after ~3 missed keep-alives.
        requestedMaxKeepAliveCount: Math.max(3, Math.ceil(10_000 / publishingMs)),
        requestedLifetimeCount: Math.max(10, 3 * Math.ceil(10_000 / publishingMs)),
        maxNotificationsPerPublish: 0,
        publishingEnabled: true,
        priority: 1,
      }),
      this.config.timeout,
      'creating the subscription',
    );
    chain.subscription = subscription;
    subscription.on('terminated', () => this.lose(chain, 'the subscription ended'));
    subscription.on('internal_error', () => this.lose(chain, 'the subscription failed'));
    // A server that forgot the session (it expired while the network was down) answers publish requests
    // with BadSessionClosed, upon which node-opcua stops publishing without a word: the subscription
    // then falls silent. Silence for three keep-alive periods breaks the chain.
    let heardMs = Date.now();
    const heard = () => (heardMs = Date.now());
    subscription.on('keepalive', heard);
    subscription.on('received_notifications', heard);
    const keepAliveMs = Math.max(subscription.publishingInterval, 1) * Math.max(subscription.maxKeepAliveCount, 1);
    chain.watchdog = setInterval(() => {
      if (Date.now() - heardMs > 3 * keepAliveMs + this.config.timeout) this.lose(chain, 'the subscription fell silent (no data or keep-alive)');
    }, keepAliveMs);
    // Nodes with the same sampling interval and deadband share one CreateMonitoredItems request.
    const groups = new Map<string, number[]>();
    this.config.nodes.forEach((n, i) => {
      const key = `${n.sampling_interval ?? publishingMs}/${n.deadband ?? ''}`;
      groups.set(key, [...(groups.get(key) ?? []), i]);
    });
    for (const indices of groups.values()) {
      const first = this.config.nodes[indices[0]];
      const group = await within(
        Promise.resolve(
          ClientMonitoredItemGroup.create(
            subscription,
            indices.map((i) => ({ nodeId: this.config.nodes[i].node_id, attributeId: AttributeIds.Value })),
            { samplingInterval: first.sampling_interval ?? publishingMs, discardOldest: true, queueSize: 10, filter: deadbandFilter(first) },
            TimestampsToReturn.Both,
          ),
        ).then(async (g) => {
          await new Promise<void>((resolve, reject) => {
            g.once('initialized', () => resolve());
            g.once('err', (message: string) => reject(new Error(message)));
          });
          return g;
        }),
        this.config.timeout,
        'creating the monitored items',
      );
      group.monitoredItems.forEach((item, k) => {
        const index = indices[k];
        const status = item.statusCode;
        if (status.isGood()) this.count('items_created');
        else {
          this.count('items_failed');
          this.log.warn({ node: this.config.nodes[index].name, node_id: this.config.nodes[index].node_id, status: status.name }, 'the server refused to monitor a node');
        }
      });
      // `k` is the item's place in the group, as created.
      group.on('changed', (_item, dataValue, k) => {
        const index = indices[k];
        if (index !== undefined) this.receive(index, dataValue);
      });
    }
  }

  private receive(index: number, value: DataValue): void {
    if (this.stopping) return;
    this.pending.push({ index, value, agentUs: this.receipts.nowUs() });
    this.flushHandle ??= setImmediate(() => {
      this.flushHandle = undefined;
      const batch = this.pending;
      this.pending = [];
      this.emit(batch);
    });
  }

  // -------------------------------------------------------------------------------------- poll

  private schedulePoll(chain: Chain, session: ClientSession, delayMs: number): void {
    chain.pollTimer = setTimeout(() => {
      chain.pollTimer = undefined;
      void this.poll(chain, session);
    }, delayMs);
  }

  private async poll(chain: Chain, session: ClientSession): Promise<void> {
    const startedMs = Date.now();
    try {
      const results = await within(
        session.read(this.config.nodes.map((n) => ({ nodeId: n.node_id, attributeId: AttributeIds.Value })), 0),
        this.config.timeout,
        'reading',
      );
      if (chain.broken || this.stopping) return;
      this.count('reads');
      const agentUs = startedMs * 1000;
      this.emit(results.map((value, index) => ({ index, value, agentUs })));
    } catch (err) {
      if (chain.broken || this.stopping) return;
      this.lose(chain, `a read failed: ${errorText(err)}`);
      return;
    }
    // Later reads at multiples of the interval since the epoch, so the points of all inputs line up.
    const interval = this.config.interval;
    this.schedulePoll(chain, session, interval - (Date.now() % interval));
  }

  // ------------------------------------------------------------------------------------ points

  private emit(values: readonly { index: number; value: DataValue; agentUs: number }[]): void {
    const byTime = new Map<number, Point[]>();
    for (const { index, value, agentUs } of values) {
      const node = this.config.nodes[index];
      const fields = this.fields(index, node, value);
      if (fields === undefined) continue;
      const timeUs = pointTimeUs(this.config.timestamp, stamp(value.sourceTimestamp, value.sourcePicoseconds), stamp(value.serverTimestamp, value.serverPicoseconds), agentUs);
      const points = byTime.get(timeUs) ?? [];
      byTime.set(timeUs, points);
      // Two values of one node at one instant stay two points; different nodes share one.
      let point = points.find((p) => Object.keys(fields).every((f) => !(f in p.fields)));
      if (!point) {
        point = { measurement: this.config.measurement, tags: { ...this.config.tags }, fields: {}, timeUs };
        points.push(point);
      }
      Object.assign(point.fields, fields);
    }
    const points = [...byTime.values()].flat().filter((p) => Object.keys(p.fields).length > 0);
    if (points.length === 0) return;
    this.totals.points += points.length;
    this.totals.lastPointMs = Date.now();
    this.ctx.sink.write(points).catch((err: unknown) => {
      if (sinkRefusal(err) === undefined) this.log.error({ err: errorText(err) }, 'writing points to the store failed');
      this.totals.refused += points.length;
    });
  }

  /** The fields of one value, or undefined when it is not stored (bad status, unsupported type, deadband). */
  private fields(index: number, node: OpcuaNodeConfig, value: DataValue): Record<string, FieldValue> | undefined {
    const status = value.statusCode;
    const statusName = status.isGood() ? 'Good' : status.name;
    const before = this.nodeStatus.get(index);
    if (statusName !== before) {
      this.nodeStatus.set(index, statusName);
      if (statusName !== 'Good') this.log.warn({ node: node.name, node_id: node.node_id, status: statusName }, 'values of this node are not stored while its status is not Good');
      else if (before !== undefined) this.log.info({ node: node.name, node_id: node.node_id }, 'the node\'s status is Good again');
    }
    if (statusName !== 'Good') {
      this.count(`status_${statusName}`);
      this.totals.errors++;
      return undefined;
    }
    const converted = toFields(node.name, { dataType: value.value.dataType, arrayType: value.value.arrayType, value: value.value.value });
    if (!converted.ok) {
      this.count('values_unsupported');
      this.totals.errors++;
      if (!this.unsupportedLogged.has(index)) {
        this.unsupportedLogged.add(index);
        this.log.warn({ node: node.name, node_id: node.node_id, value_type: converted.unsupported }, 'the node\'s value is of a type sluice does not store (see the opcua README, Values)');
      }
      return undefined;
    }
    if (this.config.mode === 'poll' && node.deadband !== undefined) {
      const v = converted.fields[node.name];
      const n = typeof v === 'number' ? v : typeof v === 'bigint' ? Number(v) : undefined;
      if (n !== undefined) {
        const last = this.lastStored.get(index);
        if (last !== undefined && Math.abs(n - last) <= node.deadband) return undefined;
        this.lastStored.set(index, n);
      }
    }
    return converted.fields;
  }
}

function stamp(date: Date | null, picoseconds: number | undefined): Date | null {
  if (!date || !picoseconds) return date;
  return Object.assign(new Date(date.getTime()), { picoseconds });
}

function deadbandFilter(node: OpcuaNodeConfig): DataChangeFilter | null {
  if (node.deadband === undefined) return null;
  return new DataChangeFilter({ trigger: DataChangeTrigger.StatusValue, deadbandType: DeadbandType.Absolute, deadbandValue: node.deadband });
}

/** A connection failure as a user can act on it (node-opcua's messages are long and nested). */
export function explain(err: unknown): string {
  const full = err instanceof Error ? err.message : String(err);
  // node-opcua wraps a refused connection in three lines; the cause is in the last ("Err = (…)").
  const cause = /Err = \((.*)\)\s*$/s.exec(full)?.[1]?.split('\n')[0];
  if (cause) return `${cause} (the server is down or not listening there)`;
  const text = errorText(err);
  if (/BadUserAccessDenied|BadIdentityTokenRejected|BadIdentityTokenInvalid/.test(text)) return `the server refused the user credentials (${text})`;
  if (/BadCertificateUntrusted|BadSecurityChecksFailed|certificate.*(?:untrusted|not trusted)/i.test(text)) {
    return `the server certificate is not trusted: put it in trusted_certs or DATA_DIR/${PKI_FOLDER}/trusted/certs (it was saved in DATA_DIR/${PKI_FOLDER}/rejected) (${text})`;
  }
  return text;
}
