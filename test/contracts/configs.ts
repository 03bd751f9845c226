// Driver configs for the contract rigs, decoded by the real config loader (defaults, units, checks),
// as the agent would hand them to a descriptor's create().
import { loadConfig } from '../../src/config/index.js';

function load(section: 'inputs' | 'outputs', type: string, lines: readonly string[]): Record<string, unknown> {
  const body = [`  under_test:`, `    type: ${type}`, ...lines.map((l) => `    ${l}`)];
  const text = ['version: 1', ...(section === 'outputs' ? ['inputs:', '  demo: { type: simulator }'] : []), `${section}:`, ...body].join('\n') + '\n';
  const r = loadConfig({ text, file: 'contract.yaml', env: {}, hostname: 'contract' });
  if (!r.ok) throw new Error(r.errors.map((e) => `${e.line}:${e.col} ${e.path}: ${e.message}`).join('\n'));
  return r.config[section].under_test;
}

export const inputConfig = (type: string, lines: readonly string[]) => load('inputs', type, lines);
export const outputConfig = (type: string, lines: readonly string[]) => load('outputs', type, lines);
