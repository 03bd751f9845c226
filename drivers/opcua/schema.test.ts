// The opcua input's config: the sample is valid and is what the README shows; the rules a JSON Schema
// cannot say are reported at their FILE:LINE:COL.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { formatConfigError, loadConfig } from '../../src/config/index.js';
import type { OpcuaInputConfig } from './schema.js';

const here = (name: string): string => readFileSync(new URL(name, import.meta.url), 'utf8');

function load(lines: string[]) {
  return loadConfig({ text: lines.join('\n') + '\n', file: 'test.yaml', env: {}, hostname: 'h' });
}

function errors(lines: string[]): string[] {
  const r = load(lines);
  return r.ok ? [] : r.errors.map((e) => formatConfigError(e).replace(/^test\.yaml:(\d+:\d+): /, '$1 '));
}

const head = ['version: 1', 'inputs:', '  plc:', '    type: opcua', '    url: opc.tcp://10.0.0.5:4840/path'];
const nodes = ['    nodes:', '      - { name: t, node_id: "ns=2;s=T" }'];

describe('opcua config', () => {
  it('sample.yaml is a complete, valid config, and the README embeds it verbatim', () => {
    const text = here('sample.yaml');
    const r = loadConfig({ text, file: 'sample.yaml', env: {}, hostname: 'h' });
    if (!r.ok) throw new Error(r.errors.map(formatConfigError).join('\n'));
    expect(Object.values(r.config.inputs).map((i) => (i as OpcuaInputConfig).mode)).toEqual(['subscribe', 'poll', 'subscribe']);
    expect(here('README.md')).toContain('```yaml\n' + text + '```');
  });

  it('fills the defaults: anonymous, no security, subscribe at 1 s, source time, the id as measurement', () => {
    const r = load([...head, ...nodes]);
    expect(r.ok && r.config.inputs.plc).toEqual({
      type: 'opcua',
      url: 'opc.tcp://10.0.0.5:4840/path',
      security_policy: 'None',
      security_mode: 'None',
      trust_server_certificate: false,
      mode: 'subscribe',
      publishing_interval: 1000,
      interval: 10_000,
      timestamp: 'source',
      timeout: 10_000,
      measurement: 'plc',
      tags: {},
      nodes: [{ name: 't', node_id: 'ns=2;s=T' }],
    });
  });

  it('a security mode that does not fit the policy, and unknown policies, are refused where they are written', () => {
    expect(errors([...head, '    security_policy: Basic256Sha256', ...nodes])).toEqual([
      '6:22 inputs.plc.security_policy: security_policy Basic256Sha256 and security_mode None do not go together: both None, or a policy with Sign or SignAndEncrypt',
    ]);
    expect(errors([...head, '    security_mode: Sign', ...nodes])).toEqual([
      '6:20 inputs.plc.security_mode: security_policy None and security_mode Sign do not go together: both None, or a policy with Sign or SignAndEncrypt',
    ]);
    expect(errors([...head, '    security_policy: Basic128Rsa15', '    security_mode: Sign', ...nodes])[0]).toMatch(/^6:22 inputs\.plc\.security_policy: "Basic128Rsa15" is not allowed; one of: None, Basic256Sha256, Aes128_Sha256_RsaOaep, Aes256_Sha256_RsaPss/);
  });

  it('auth takes one identity, complete', () => {
    expect(errors([...head, '    auth: { username: op }', ...nodes])).toEqual(['6:13 inputs.plc.auth.username: a username needs password or password_file']);
    expect(errors([...head, '    auth: { password: x }', ...nodes])).toEqual(['6:11 inputs.plc.auth: password and password_file need a username']);
    expect(errors([...head, '    auth: { username: op, password: x, password_file: /p }', ...nodes])).toEqual(['6:40 inputs.plc.auth.password_file: set either password or password_file, not both']);
    expect(errors([...head, '    auth: { username: op, password: x, certificate: /c.pem, private_key: /k.pem }', ...nodes])).toEqual([
      '6:11 inputs.plc.auth: choose one identity: username with password/password_file, or certificate with private_key',
    ]);
    expect(errors([...head, '    auth: { certificate: /c.pem }', ...nodes])).toEqual(['6:13 inputs.plc.auth.certificate: certificate and private_key go together']);
    expect(errors([...head, '    auth: {}', ...nodes])).toEqual(['6:5 inputs.plc.auth: auth is empty: leave it out for anonymous, or give username and password, or certificate and private_key']);
  });

  it('nodes: field names unique and plain, node ids well-formed, the keys of the other mode refused', () => {
    expect(
      errors([
        ...head,
        '    mode: poll',
        '    publishing_interval: 1s',
        '    nodes:',
        '      - { name: t, node_id: "ns=2;s=T", sampling_interval: 1s }',
        '      - { name: t, node_id: "ns=2;i=7" }',
        '      - { name: 2x, node_id: "Line3.T" }',
      ]),
    ).toEqual([
      '11:17 inputs.plc.nodes[2].name: "2x" is not valid; expected a field name of letters, digits and _, not starting with a digit',
      '11:30 inputs.plc.nodes[2].node_id: "Line3.T" is not valid; expected a node id such as "ns=2;s=Line3.SupplyTemp" or "ns=2;i=1042"',
    ]);
    expect(errors([...head, '    mode: poll', '    publishing_interval: 1s', '    nodes:', '      - { name: t, node_id: "ns=2;s=T", sampling_interval: 1s }', '      - { name: t, node_id: "ns=2;i=7" }'])).toEqual([
      '7:5 inputs.plc.publishing_interval: publishing_interval applies to mode: subscribe; poll uses interval',
      '9:41 inputs.plc.nodes[0].sampling_interval: sampling_interval applies to mode: subscribe (poll reads every interval)',
      '10:17 inputs.plc.nodes[1].name: field name "t" is already used by nodes[0]',
    ]);
    expect(errors([...head, '    interval: 5s', ...nodes])).toEqual(['6:5 inputs.plc.interval: interval applies to mode: poll; subscribe uses publishing_interval']);
    expect(errors([...head.slice(0, 4), '    url: opc.tcp://plc:99999', ...nodes])).toEqual(['5:10 inputs.plc.url: port 99999 is not 1-65535']);
    expect(errors([...head.slice(0, 4), '    url: http://plc', ...nodes])).toEqual(['5:10 inputs.plc.url: "http://plc" is not valid; expected an endpoint url opc.tcp://host[:port][/path] (port 4840 by default)']);
  });
});
