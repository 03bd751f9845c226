// `sluice opcua browse URL [--node ID] [--depth N]`: the server's address space as an indented tree
// of browse names, node ids, node classes and (for variables) data types, so a config's `nodes` can be
// written without another tool. Loaded only by that command (it pulls node-opcua in).
//
// Browsing from the root or the Objects folder, the standard nodes (namespace 0: the Server object and
// its hundreds of diagnostics) are listed but not descended into: they are rarely what a user stores,
// and they would bury the device's own nodes. `--node i=2253` browses them.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AttributeIds, BrowseDirection, MessageSecurityMode, NodeClass, OPCUAClient, SecurityPolicy, resolveNodeId, setErrorLogger, setWarningLogger, type ClientSession, type ReferenceDescription } from 'node-opcua-client';
import { OPCUACertificateManager } from 'node-opcua-certificate-manager';
import { DATA_TYPE_NAMES } from './values.js';

export interface BrowseOptions {
  url: string;
  /** Where to start; default the Objects folder (i=85). */
  nodeId?: string;
  /** Levels below the start node; default 3. */
  depth?: number;
  timeoutMs?: number;
}

interface Row {
  depth: number;
  name: string;
  nodeId: string;
  nodeClass: string;
  dataType?: string;
}

async function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([promise, new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what} took longer than ${ms} ms`)), ms)))]);
  } finally {
    clearTimeout(timer);
  }
}

/** Browses the server anonymously over security None and writes one line per node to `out`. */
export async function browseServer(options: BrowseOptions, out: (line: string) => void): Promise<number> {
  // node-opcua prints its warnings on stdout, in the middle of the listing; the command reports failures itself.
  setWarningLogger(() => undefined);
  setErrorLogger(() => undefined);
  const timeoutMs = options.timeoutMs ?? 10_000;
  const depth = options.depth ?? 3;
  const start = resolveNodeId(options.nodeId ?? 'i=85');
  // A throwaway client certificate: browsing keeps nothing.
  const pki = mkdtempSync(join(tmpdir(), 'sluice-opcua-browse-'));
  const certificates = new OPCUACertificateManager({ rootFolder: pki });
  const client = OPCUAClient.create({
    applicationName: 'sluice-browse',
    clientCertificateManager: certificates,
    securityMode: MessageSecurityMode.None,
    securityPolicy: SecurityPolicy.None,
    endpointMustExist: false,
    transportTimeout: timeoutMs,
    connectionStrategy: { maxRetry: 0, initialDelay: 500, maxDelay: 500 },
  });
  let session: ClientSession | undefined;
  try {
    await within(client.connect(options.url), timeoutMs, `connecting to ${options.url}`);
    session = await within(client.createSession(), timeoutMs, 'creating the session');
    const rows: Row[] = [];
    // Starting at the root or the Objects folder, the standard nodes stay folded; starting inside them, not.
    const expandStandard = start.namespace === 0 && start.value !== 84 && start.value !== 85;
    await walk(session, start.toString(), 0, depth, rows, timeoutMs, expandStandard);
    const width = Math.max(...rows.map((r) => 2 * r.depth + r.name.length), 4) + 2;
    const idWidth = Math.max(...rows.map((r) => r.nodeId.length), 7) + 2;
    out(`${'name'.padEnd(width)}${'node_id'.padEnd(idWidth)}${'class'.padEnd(10)}data_type`);
    for (const r of rows) out(`${('  '.repeat(r.depth) + r.name).padEnd(width)}${r.nodeId.padEnd(idWidth)}${r.nodeClass.padEnd(10)}${r.dataType ?? ''}`.trimEnd());
    return rows.length;
  } finally {
    if (session) await within(session.close(), timeoutMs, 'closing the session').catch(() => undefined);
    await within(client.disconnect(), timeoutMs, 'disconnecting').catch(() => undefined);
    await certificates.dispose();
    rmSync(pki, { recursive: true, force: true });
  }
}

/** "i=2253" rather than node-opcua's "ns=0;i=2253": the form users write. */
const shortId = (ref: ReferenceDescription): string => ref.nodeId.toString().replace(/^ns=0;/, '');

async function walk(session: ClientSession, nodeId: string, level: number, maxDepth: number, rows: Row[], timeoutMs: number, expandStandard: boolean): Promise<void> {
  if (level >= maxDepth) return;
  const result = await within(
    session.browse({ nodeId, browseDirection: BrowseDirection.Forward, referenceTypeId: 'HierarchicalReferences', includeSubtypes: true, nodeClassMask: 0, resultMask: 63 }),
    timeoutMs,
    `browsing ${nodeId}`,
  );
  if (!result.statusCode.isGood()) throw new Error(`browsing ${nodeId}: ${result.statusCode.name}`);
  const refs: ReferenceDescription[] = result.references ?? [];
  // ReferenceDescription types nodeClass as the mask enum; the values are NodeClass's.
  const variables = refs.filter((r) => Number(r.nodeClass) === Number(NodeClass.Variable));
  const types = await dataTypes(session, variables.map(shortId), timeoutMs);
  for (const ref of refs) {
    const id = shortId(ref);
    rows.push({ depth: level, name: ref.browseName.name ?? id, nodeId: id, nodeClass: NodeClass[ref.nodeClass] ?? String(ref.nodeClass), dataType: types.get(id) });
    if (expandStandard || ref.nodeId.namespace !== 0) await walk(session, id, level + 1, maxDepth, rows, timeoutMs, expandStandard);
  }
}

/** Data type names of variables, "[]" appended for arrays; structures by their type's browse name. */
async function dataTypes(session: ClientSession, ids: string[], timeoutMs: number): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  if (ids.length === 0) return out;
  const values = await within(
    session.read(ids.flatMap((nodeId) => [{ nodeId, attributeId: AttributeIds.DataType }, { nodeId, attributeId: AttributeIds.ValueRank }])),
    timeoutMs,
    'reading data types',
  );
  const named = new Map<string, string>();
  const unknown = new Set<string>();
  for (let i = 0; i < ids.length; i++) {
    const type = values[2 * i].value.value as { namespace: number; value: unknown; toString(): string } | null;
    if (!type) continue;
    const key = type.toString();
    if (type.namespace === 0 && typeof type.value === 'number' && DATA_TYPE_NAMES[type.value] !== undefined) named.set(key, DATA_TYPE_NAMES[type.value]);
    else unknown.add(key);
  }
  const unknownIds = [...unknown];
  if (unknownIds.length > 0) {
    const names = await within(session.read(unknownIds.map((nodeId) => ({ nodeId, attributeId: AttributeIds.BrowseName }))), timeoutMs, 'reading data type names');
    unknownIds.forEach((id, k) => named.set(id, (names[k].value.value as { name?: string } | null)?.name ?? id));
  }
  for (let i = 0; i < ids.length; i++) {
    const type = values[2 * i].value.value as { toString(): string } | null;
    if (!type) continue;
    const rank = values[2 * i + 1].value.value as number | null;
    out.set(ids[i], (named.get(type.toString()) ?? type.toString()) + (typeof rank === 'number' && rank >= 1 ? '[]' : ''));
  }
  return out;
}
