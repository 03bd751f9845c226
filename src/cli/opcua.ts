// `sluice opcua browse URL [--node ID] [--depth N]`. The browser lives with the driver
// (drivers/opcua/browse.ts) and is imported only here, when the command runs: node-opcua is several
// MB that no other command needs.
import { UsageError } from './args.js';

export async function runOpcuaBrowse(url: string | undefined, options: { node?: string; depth?: string }): Promise<number> {
  if (!url || !/^opc\.tcp:\/\/\S+$/.test(url)) throw new UsageError('opcua browse needs an endpoint URL opc.tcp://host[:port][/path]');
  const depth = options.depth === undefined ? 3 : Number(options.depth);
  if (!Number.isInteger(depth) || depth < 1 || depth > 20) throw new UsageError(`--depth must be a whole number 1-20, not "${options.depth}"`);
  const { browseServer } = await import('../../drivers/opcua/browse.js');
  try {
    const rows = await browseServer({ url, nodeId: options.node, depth }, (line) => process.stdout.write(line + '\n'));
    if (rows === 0) process.stderr.write(`sluice: ${options.node ?? 'the Objects folder'} has no child nodes\n`);
    return 0;
  } catch (err) {
    process.stderr.write(`sluice: opcua browse ${url}: ${(err as Error).message.split('\n')[0]}\n`);
    return 1;
  }
}
