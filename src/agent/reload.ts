// What a config change means for a running agent: a plan of which components stop and start, and
// which keys cannot change without a new process. Pure: the agent carries the plan out (Agent.apply).
//
// Applied in place (the ring stays open, so nothing buffered is lost and output cursors carry on):
//   inputs.*, outputs.*     by id: unchanged ones keep running, changed ones restart, removed ones
//                           stop, added ones start
//   agent.tags              every input restarts (the tags are part of its sink), rules restart
//   rules                   the rules engine restarts
//   retention               rescheduled
//   aggregate.functions     outputs that ship rollups restart (the store keeps every function's state)
//   http                    the endpoint is re-bound
//   fleet                   the fleet controller picks it up (polling, heartbeat)
// Need a restart (RESTART_KEYS): the store is opened with them, or they name the agent everywhere.
import { isDeepStrictEqual } from 'node:util';
import type { Config } from '../config/index.js';

export const RESTART_KEYS = [
  'agent.id',
  'agent.data_dir',
  'agent.commit_interval',
  'buffer.max_size',
  'buffer.when_full',
  'aggregate.windows',
] as const;

export interface ComponentSteps {
  /** Stop these first (removed and changed), then start `start` (changed and added). */
  stop: string[];
  start: string[];
  added: string[];
  removed: string[];
  changed: string[];
  unchanged: string[];
}

export interface ReloadPlan {
  /** Keys whose change needs a new process; empty when everything applies in place. */
  restartKeys: string[];
  inputs: ComponentSteps;
  outputs: ComponentSteps;
  rules: boolean;
  retention: boolean;
  http: boolean;
  fleet: boolean;
  /** Anything at all differs. */
  changed: boolean;
}

function get(config: Config, dotted: string): unknown {
  let v: unknown = config;
  for (const k of dotted.split('.')) v = (v as Record<string, unknown> | undefined)?.[k];
  return v;
}

function steps(before: Record<string, unknown>, after: Record<string, unknown>, alsoRestart: (id: string) => boolean): ComponentSteps {
  const s: ComponentSteps = { stop: [], start: [], added: [], removed: [], changed: [], unchanged: [] };
  for (const id of Object.keys(before)) {
    if (!(id in after)) s.removed.push(id);
    else if (!isDeepStrictEqual(before[id], after[id]) || alsoRestart(id)) s.changed.push(id);
    else s.unchanged.push(id);
  }
  for (const id of Object.keys(after)) if (!(id in before)) s.added.push(id);
  s.stop = [...s.removed, ...s.changed];
  s.start = [...s.changed, ...s.added];
  return s;
}

export function planReload(before: Config, after: Config): ReloadPlan {
  const restartKeys = RESTART_KEYS.filter((k) => !isDeepStrictEqual(get(before, k), get(after, k)));
  const tagsChanged = !isDeepStrictEqual(before.agent.tags, after.agent.tags);
  const functionsChanged = !isDeepStrictEqual(before.aggregate.functions, after.aggregate.functions);
  const inputs = steps(before.inputs, after.inputs, () => tagsChanged);
  const outputs = steps(before.outputs, after.outputs, (id) => functionsChanged && after.outputs[id]?.resolution !== 'raw');
  const plan: ReloadPlan = {
    restartKeys,
    inputs,
    outputs,
    rules: tagsChanged || !isDeepStrictEqual(before.rules, after.rules),
    retention: !isDeepStrictEqual(before.retention, after.retention),
    http: !isDeepStrictEqual(before.http, after.http),
    fleet: !isDeepStrictEqual(before.fleet, after.fleet),
    changed: !isDeepStrictEqual(before, after),
  };
  return plan;
}

/** One line for the log: what the plan does. */
export function describePlan(plan: ReloadPlan): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const kind of ['inputs', 'outputs'] as const) {
    const s = plan[kind];
    for (const what of ['added', 'removed', 'changed'] as const) if (s[what].length) out[`${kind}_${what}`] = s[what];
    if (s.unchanged.length) out[`${kind}_kept`] = s.unchanged;
  }
  for (const k of ['rules', 'retention', 'http', 'fleet'] as const) if (plan[k]) out[k] = 'changed';
  return out;
}
