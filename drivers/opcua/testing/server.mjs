// A real OPC UA server for the opcua tests and benchmark: node-opcua's own OPCUAServer in a child
// process. `node server.mjs '<json spec>'`; spec: { port, pki, users?: {name: password}, anonymous?: false, items?: n }.
// It serves folder Test with one variable per OPC UA type (node ids ns=1;s=Test.<Type>), plus `items`
// Double variables ns=1;s=Bench.<i> for the benchmark. Prints one JSON line {"ready":true,...} on
// stdout when it listens, then takes commands as JSON lines on stdin, answering each with a line:
//   {"set": {"node": "Double", "value": 1.5, "status"?: "UncertainLastUsableValue", "source_ms"?: n}}
//   {"tick": {"from": 0, "count": 100, "value": 3.5}}   (Bench items)
//   {"expire_sessions": {}}   every session times out now, as the server's session watchdog times one
//                             out (its subscriptions are kept for a transfer); answers {"ok":true,"sessions":n}
//   {"sessions": {}}          answers {"ok":true,"sessions":n}: the sessions the server holds
// Int64/UInt64 values are strings of decimal digits (JSON numbers cannot hold them).
import {
  DataType,
  MessageSecurityMode,
  OPCUACertificateManager,
  OPCUAServer,
  SecurityPolicy,
  StatusCodes,
  Variant,
  VariantArrayType,
  nodesets,
} from 'node-opcua';
import { createInterface } from 'node:readline';

const spec = JSON.parse(process.argv[2] ?? '{}');
// stdout carries the answers to the test; node-opcua's warnings go to stderr.
console.log = console.info = console.warn = console.error;

/** The test variables: browse name → data type, initial value, array kind. */
const VARIABLES = {
  Boolean: [DataType.Boolean, true],
  SByte: [DataType.SByte, -128],
  Byte: [DataType.Byte, 255],
  Int16: [DataType.Int16, -32768],
  UInt16: [DataType.UInt16, 65535],
  Int32: [DataType.Int32, -2147483648],
  UInt32: [DataType.UInt32, 4294967295],
  Int64: [DataType.Int64, '-9223372036854775807'],
  UInt64: [DataType.UInt64, '18446744073709551615'],
  Float: [DataType.Float, 21.3],
  Double: [DataType.Double, 0.1 + 0.2],
  String: [DataType.String, 'grüße, "quoted"'],
  DateTime: [DataType.DateTime, '2024-05-01T12:00:00.123Z'],
  DoubleArray: [DataType.Double, [1.5, -2.5, 3], VariantArrayType.Array],
  Structure: [DataType.ExtensionObject, null],
  Counter: [DataType.UInt32, 0],
};

/** [high, low] words, node-opcua's representation of a 64-bit integer. */
function words(text, signed) {
  let v = BigInt(text);
  if (signed) v = BigInt.asUintN(64, v);
  return [Number(v >> 32n), Number(v & 0xffffffffn)];
}

function toValue(dataType, value) {
  if (dataType === DataType.Int64) return words(value, true);
  if (dataType === DataType.UInt64) return words(value, false);
  if (dataType === DataType.DateTime) return new Date(value);
  return value;
}

const policies = [SecurityPolicy.None, SecurityPolicy.Basic256Sha256, SecurityPolicy.Aes128_Sha256_RsaOaep, SecurityPolicy.Aes256_Sha256_RsaPss];
const users = spec.users ?? null;
const server = new OPCUAServer({
  port: spec.port,
  resourcePath: '/sluice',
  nodeset_filename: [nodesets.standard],
  securityPolicies: policies,
  securityModes: [MessageSecurityMode.None, MessageSecurityMode.Sign, MessageSecurityMode.SignAndEncrypt],
  allowAnonymous: spec.anonymous !== false,
  userManager: users === null ? undefined : { isValidUser: (name, password) => users[name] === password },
  // The tests are about the client's trust decisions; this server accepts any client certificate.
  serverCertificateManager: new OPCUACertificateManager({ rootFolder: `${spec.pki}/server`, automaticallyAcceptUnknownCertificate: true }),
  userCertificateManager: new OPCUACertificateManager({ rootFolder: `${spec.pki}/user`, automaticallyAcceptUnknownCertificate: true }),
  buildInfo: { productName: 'sluice-test-server' },
});

await server.initialize();
const addressSpace = server.engine.addressSpace;
const ns = addressSpace.getOwnNamespace();
const folder = ns.addFolder(addressSpace.rootFolder.objects, { browseName: 'Test', nodeId: 's=Test' });
const variables = new Map();
for (const [name, [dataType, initial, arrayType]] of Object.entries(VARIABLES)) {
  const v = ns.addVariable({
    componentOf: folder,
    browseName: name,
    nodeId: `s=Test.${name}`,
    dataType: name === 'Structure' ? 'BuildInfo' : DataType[dataType],
    valueRank: arrayType === VariantArrayType.Array ? 1 : -1,
  });
  if (name === 'Structure') {
    v.setValueFromSource(new Variant({ dataType: DataType.ExtensionObject, value: addressSpace.constructExtensionObject(v.dataType, { productName: 'x' }) }));
  } else {
    v.setValueFromSource(new Variant({ dataType, arrayType: arrayType ?? VariantArrayType.Scalar, value: toValue(dataType, initial) }));
  }
  variables.set(name, { v, dataType, arrayType });
}
const bench = [];
if (spec.items) {
  const benchFolder = ns.addFolder(addressSpace.rootFolder.objects, { browseName: 'Bench', nodeId: 's=Bench' });
  for (let i = 0; i < spec.items; i++) {
    const v = ns.addVariable({ componentOf: benchFolder, browseName: `B${i}`, nodeId: `s=Bench.${i}`, dataType: 'Double' });
    v.setValueFromSource(new Variant({ dataType: DataType.Double, value: 0 }));
    bench.push(v);
  }
}

await server.start();
process.stdout.write(
  JSON.stringify({ ready: true, port: server.endpoints[0].port, url: server.getEndpointUrl(), certificate: server.certificateFile }) + '\n',
);

/** Runs one command; returns the reply's fields beyond `ok`, if any. */
function apply(cmd) {
  if (cmd.sessions) return { sessions: Object.keys(server.engine._sessions).length };
  if (cmd.expire_sessions) {
    // The engine keeps no public list of its sessions (hence _sessions). "timeout" is what a session's
    // own watchdog emits when its client has been silent for the session timeout; the engine's
    // handler closes the session the way an expiry does.
    const sessions = Object.values(server.engine._sessions);
    for (const session of sessions) session.emit('timeout');
    return { sessions: sessions.length };
  }
  if (cmd.set) {
    const { node, value, status, source_ms: sourceMs } = cmd.set;
    const entry = variables.get(node);
    if (!entry) throw new Error(`no variable ${node}`);
    const statusCode = status ? StatusCodes[status] : StatusCodes.Good;
    if (!statusCode) throw new Error(`no status code ${status}`);
    const variant = new Variant({ dataType: entry.dataType, arrayType: entry.arrayType ?? VariantArrayType.Scalar, value: toValue(entry.dataType, value) });
    entry.v.setValueFromSource(variant, statusCode, sourceMs === undefined ? new Date() : new Date(sourceMs));
  } else if (cmd.tick) {
    const { from, count, value } = cmd.tick;
    const now = new Date();
    for (let i = from; i < from + count && i < bench.length; i++) bench[i].setValueFromSource(new Variant({ dataType: DataType.Double, value }), StatusCodes.Good, now);
  } else throw new Error(`unknown command ${JSON.stringify(cmd)}`);
}

const lines = createInterface({ input: process.stdin });
lines.on('line', (line) => {
  try {
    process.stdout.write(JSON.stringify({ ok: true, ...apply(JSON.parse(line)) }) + '\n');
  } catch (err) {
    process.stdout.write(JSON.stringify({ ok: false, error: String(err) }) + '\n');
  }
});
lines.on('close', () => void server.shutdown(0).then(() => process.exit(0)));
process.once('SIGTERM', () => void server.shutdown(0).then(() => process.exit(0)));
