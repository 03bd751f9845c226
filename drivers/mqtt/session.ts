// The broker session as this input sees it: the mqtt.js client options (a persistent session,
// reconnection left to us), and a marker in the data dir so a broker that forgot the session can be
// told from a first run.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { IClientOptions } from 'mqtt';
import type { Logger } from '../../src/core/component.js';
import type { MqttInputConfig } from './schema.js';

export async function clientOptions(c: MqttInputConfig, clientId: string): Promise<IClientOptions> {
  const options: IClientOptions = {
    clientId,
    protocolVersion: c.protocol_version,
    // A persistent session: the broker keeps our subscriptions and QoS 1/2 messages while we are away.
    clean: false,
    // Reconnection is ours (bounded exponential backoff); mqtt.js only knows a fixed period.
    reconnectPeriod: 0,
    connectTimeout: 10_000,
    keepalive: 60,
    resubscribe: false,
    queueQoSZero: false,
    // mqtt-packet otherwise pre-builds a 2-byte Buffer for each of the 65,536 packet ids: 6.3 MB of
    // heap for the life of the agent (measured in a heap snapshot), to save an allocation per packet.
    writeCache: false,
  };
  if (c.protocol_version === 5) {
    options.properties = { sessionExpiryInterval: Math.floor(c.session_expiry / 1000), receiveMaximum: c.max_inflight };
  }
  if (c.username !== undefined) options.username = c.username;
  if (c.password !== undefined) options.password = c.password;
  if (c.password_file !== undefined) options.password = (await readFile(c.password_file, 'utf8')).replace(/\r?\n$/, '');
  if (c.tls) {
    if (c.tls.ca !== undefined) options.ca = await readFile(c.tls.ca);
    if (c.tls.cert !== undefined) options.cert = await readFile(c.tls.cert);
    if (c.tls.key !== undefined) options.key = await readFile(c.tls.key);
    options.rejectUnauthorized = !c.tls.insecure_skip_verify;
  }
  return options;
}

/** The marker file `mqtt-<id>.session`: url and client id of the session QoS 1/2 subscriptions were made in. */
export class SessionMarker {
  private readonly file: string;
  private readonly identity: string;

  constructor(
    dataDir: string,
    inputId: string,
    url: string,
    clientId: string,
    private readonly log: Logger,
  ) {
    this.file = join(dataDir, `mqtt-${inputId}.session`);
    this.identity = `${url} ${clientId}`;
  }

  /** A session of this url and client id was made before (by this process or an earlier one). */
  existedBefore(): boolean {
    try {
      return existsSync(this.file) && readFileSync(this.file, 'utf8').trim() === this.identity;
    } catch {
      return false;
    }
  }

  remember(): void {
    try {
      writeFileSync(this.file, `${this.identity}\n`);
    } catch (err) {
      this.log.debug({ err }, 'cannot write the session marker');
    }
  }
}
