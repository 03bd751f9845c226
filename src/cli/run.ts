import { Agent } from '../agent/agent.js';
import { createLogger } from '../log.js';
import { VERSION } from '../version.js';
import { loadConfigOrThrow, ringOptions } from './settings.js';

/** `sluice run`: runs until SIGINT or SIGTERM, then stops cleanly and exits 0. */
export async function runAgentCommand(opts: { configFile?: string; dataDir?: string }): Promise<number> {
  const config = loadConfigOrThrow(opts.configFile);
  const log = createLogger();
  const agent = new Agent({ config, ring: ringOptions(config, opts.dataDir), log: log.child({ agent: config.agent.id }) });
  log.info({ version: VERSION, config: opts.configFile ?? '(embedded default)' }, 'starting');
  const stopped = new Promise<string>((resolve) => {
    process.once('SIGINT', () => resolve('SIGINT'));
    process.once('SIGTERM', () => resolve('SIGTERM'));
  });
  await agent.start();
  const signal = await stopped;
  log.info({ signal }, 'stopping');
  await agent.stop();
  return 0;
}
