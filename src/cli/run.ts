import { Agent } from '../agent/agent.js';
import { createLogger } from '../log.js';
import { VERSION } from '../version.js';
import { loadConfigOrThrow, ringOptions } from './settings.js';
import { bootConfig } from '../fleet/boot.js';
import { EXIT_RESTART, FleetController } from '../fleet/controller.js';
import { runStagedBinary } from '../fleet/launcher.js';
import { releaseStartupPages } from '../sea/pages.js';

/**
 * The executable's start-up pages (src/sea/pages.ts) go at start (before and after the inputs start: a
 * broker's backlog drained at once would otherwise run with all of them mapped), and again when the
 * first commits, compactions and rollups are done.
 */
const RELEASE_STARTUP_PAGES_AGAIN_AFTER_MS = 10_000;

/**
 * `sluice run`: runs until SIGINT or SIGTERM, then stops cleanly and exits 0; exits EXIT_RESTART (75)
 * after a clean stop when a config change or a staged binary needs a new process (src/fleet).
 */
export async function runAgentCommand(opts: { configFile?: string; dataDir?: string }): Promise<number> {
  const local = loadConfigOrThrow(opts.configFile);
  const log = createLogger();
  // The installed binary is the launcher of a staged one (src/fleet/launcher.ts): same arguments.
  const argv = ['run', ...(opts.configFile !== undefined ? ['-c', opts.configFile] : []), ...(opts.dataDir !== undefined ? ['--data-dir', opts.dataDir] : [])];
  const launched = await runStagedBinary(local, opts.dataDir ?? local.agent.data_dir, argv, log.child({ component: 'launcher' }));
  if (launched !== null) return launched;
  // A config applied from the fleet runs instead of the local one (src/fleet/boot.ts).
  const boot = bootConfig(local, opts.configFile, opts.dataDir);
  const config = boot.config;
  const agent = new Agent({ config, ring: ringOptions(config, opts.dataDir), log: log.child({ agent: config.agent.id }) });
  let restart: () => void = () => undefined;
  const fleet = new FleetController({ agent, boot, log: log.child({ agent: config.agent.id, component: 'fleet' }), onRestart: () => restart() });
  // The status endpoint shows the config source and the fleet's state through the agent's view.
  agent.control = fleet;
  log.info({ version: VERSION, config: opts.configFile ?? '(embedded default)', source: boot.source }, 'starting');
  const stopped = new Promise<string>((resolve) => {
    // on, not once: where the agent runs as a child (src/cli/limits.ts, without the addon) the signal
    // under systemd comes twice (to this process and forwarded by the parent); a second one must not
    // kill the agent mid-stop.
    process.on('SIGINT', () => resolve('SIGINT'));
    process.on('SIGTERM', () => resolve('SIGTERM'));
    restart = () => resolve('restart');
  });
  const memoryLog = log.child({ component: 'memory' });
  // Before the inputs start (what Node's start-up and the config's validation touched), after (what
  // opening the store and starting the drivers did), and once more later.
  releaseStartupPages(memoryLog);
  await agent.start();
  fleet.start();
  releaseStartupPages(memoryLog);
  const pagesTimer = setTimeout(() => releaseStartupPages(memoryLog), RELEASE_STARTUP_PAGES_AGAIN_AFTER_MS);
  pagesTimer.unref();
  const signal = await stopped;
  clearTimeout(pagesTimer);
  log.info({ signal }, 'stopping');
  await fleet.stop();
  await agent.stop();
  return signal === 'restart' ? EXIT_RESTART : 0;
}
