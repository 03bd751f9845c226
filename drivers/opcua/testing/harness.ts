// The opcua input under test: a config decoded by the real loader, a recording sink, a logger that keeps
// its lines, and a wait for what the input produced.
import { loadConfig } from '../../../src/config/index.js';
import type { InputContext, Logger } from '../../../src/core/component.js';
import type { Point } from '../../../src/core/point.js';
import type { OpcuaInputConfig } from '../schema.js';

export interface LogLine {
  level: 'debug' | 'info' | 'warn' | 'error';
  msg: string;
  obj: Record<string, unknown>;
}

export function opcuaConfig(lines: readonly string[], id = 'line3'): OpcuaInputConfig {
  const text = ['version: 1', 'inputs:', `  ${id}:`, '    type: opcua', ...lines.map((l) => `    ${l}`)].join('\n') + '\n';
  const r = loadConfig({ text, file: 'opcua.yaml', env: {}, hostname: 'test' });
  if (!r.ok) throw new Error(r.errors.map((e) => `${e.line}:${e.col} ${e.path}: ${e.message}`).join('\n'));
  return r.config.inputs[id] as OpcuaInputConfig;
}

export interface Recording {
  ctx: InputContext;
  points: Point[];
  logs: LogLine[];
  /** Every value stored of `field`, in arrival order. */
  values(field: string): unknown[];
}

export function recording(dataDir: string, id = 'line3'): Recording {
  const logs: LogLine[] = [];
  const logger = (): Logger => {
    const at = (level: LogLine['level']) => (obj: object, msg?: string) => logs.push({ level, msg: msg ?? '', obj: obj as Record<string, unknown> });
    const l: Logger = { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error'), child: () => l };
    return l;
  };
  const points: Point[] = [];
  return {
    points,
    logs,
    values: (field) => points.filter((p) => field in p.fields).map((p) => p.fields[field]),
    ctx: {
      id,
      agentId: 'test',
      dataDir,
      log: logger(),
      sink: {
        write(batch) {
          points.push(...batch);
          return Promise.resolve();
        },
      },
    },
  };
}

export async function until(probe: () => boolean, what: string, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!probe()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
