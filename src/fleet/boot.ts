// Which config `sluice run` starts with.
//
// Precedence: the local file (-c FILE, or the embedded default) is read first; it names the data
// directory and the fleet. When it has `fleet.url` and DATA_DIR/fleet/config.yaml exists, the fleet's
// config runs, except for two things that always come from the local file:
//   - agent.data_dir (the fleet state lives there: a manifest cannot move it), and --data-dir still wins;
//   - the `fleet` section (the trust anchor: a manifest cannot point the gateway at another server or
//     key, nor cut it off the fleet).
// Without fleet.url the fleet config is ignored: the operator has taken the gateway off the fleet.
// A fleet config still inside its health window when the process starts counts a start; after
// MAX_STARTS starts without a commit it is reverted here, before anything runs.
import { existsSync } from 'node:fs';
import { formatConfigError, loadConfig, type Config } from '../config/index.js';
import { FleetFiles, MAX_STARTS, type FleetState } from './state.js';

export interface BootNotice {
  level: 'info' | 'warn' | 'error';
  msg: string;
  details?: Record<string, unknown>;
}

export interface Boot {
  /** The local config (-c FILE or the embedded default). */
  local: Config;
  configFile: string | undefined;
  dataDir: string;
  /** What runs. */
  config: Config;
  source: 'file' | 'default' | 'fleet';
  /** A fleet config that runs but is not yet committed: its health window starts again. */
  pending: boolean;
  /** Things to log once the logger is there. */
  notices: BootNotice[];
}

/** The fleet's config with the keys that always come from the local file. */
export function compose(fleetConfig: Config, local: Config): Config {
  return { ...fleetConfig, agent: { ...fleetConfig.agent, data_dir: local.agent.data_dir }, fleet: local.fleet };
}

export function bootConfig(local: Config, configFile: string | undefined, dataDirOverride: string | undefined): Boot {
  const dataDir = dataDirOverride ?? local.agent.data_dir;
  const plain: Boot = { local, configFile, dataDir, config: local, source: configFile === undefined ? 'default' : 'file', pending: false, notices: [] };
  const files = new FleetFiles(dataDir);
  if (!existsSync(files.paths.config)) return plain;
  if (local.fleet.url === undefined) {
    plain.notices.push({ level: 'info', msg: `${files.paths.config} is ignored: the local config has no fleet.url, so this gateway is not fleet-managed` });
    return plain;
  }
  let state: FleetState;
  try {
    state = files.readState();
  } catch (err) {
    plain.notices.push({ level: 'error', msg: `fleet state unreadable, running the local config: ${(err as Error).message}` });
    return plain;
  }
  if (state.config?.state === 'pending') {
    if (state.config.starts >= MAX_STARTS) {
      const msg = files.revertPending(state, `it did not stay healthy for fleet.commit_after in ${MAX_STARTS} starts`);
      files.writeState(state);
      plain.notices.push({ level: 'error', msg });
      if (state.config === null) return plain;
    } else {
      state.config.starts++;
      files.writeState(state);
    }
  }
  const text = files.readConfigText();
  if (text === undefined) return plain;
  const r = loadConfig({ file: files.paths.config, text });
  if (!r.ok) {
    plain.notices.push({
      level: 'error',
      msg: `the fleet config (serial ${state.config?.serial ?? '?'}) does not load here; running the local config`,
      details: { errors: r.errors.map(formatConfigError) },
    });
    return plain;
  }
  return { ...plain, config: compose(r.config, local), source: 'fleet', pending: state.config?.state === 'pending' };
}
