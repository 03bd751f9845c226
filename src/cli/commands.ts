// The `sluice` commands (documented in the README, Command line), loaded by main.ts. node:util parseArgs: no dependency needed for flags.
import { createReadStream } from 'node:fs';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { StoreOpenError } from '../store/errors.js';
import { ConfigLoadError, storeSettings } from './settings.js';
import { dieWithParent } from './limits.js';
import { UsageError } from './args.js';
import { runCheck } from './check.js';
import { runExport } from './export.js';
import { runImport } from './import.js';
import { runQuery } from './query.js';
import { runStatus } from './status.js';
import { runQuarantine } from './quarantine.js';
import { runHealth } from './health.js';
import { runAgentCommand } from './run.js';
import { runKeygen, runSign } from './fleet.js';
import { runOpcuaBrowse } from './opcua.js';
import { configSchemaJson } from '../config/index.js';
import { VERSION } from '../version.js';

/** sysexits.h: EX_USAGE for bad flags, EX_CONFIG for an invalid config (what `check` promises). */
export const EXIT_USAGE = 64;
export const EXIT_CONFIG = 78;
export const EXIT_STORE = 74; // EX_IOERR: the store cannot be opened or read

const HELP = `sluice ${VERSION} — store-and-forward edge gateway agent

usage:
  sluice run     [-c FILE] [--data-dir DIR]       run the agent (embedded default config without -c)
  sluice check   -c FILE                           validate a config (exit 78 with every error)
  sluice import  [-c FILE|--data-dir DIR] [--precision ns|us|ms|s] FILE|-
  sluice export  [-c FILE|--data-dir DIR] [--precision P] [--from T] [--to T] [--measurement M]
  sluice status  [-c FILE|--data-dir DIR] [--json]
  sluice quarantine list   [-c FILE|--data-dir DIR] [--output ID] [--json]   points upstreams refused for good
  sluice quarantine export [-c FILE|--data-dir DIR] --output ID [--reason R] [--precision P]
  sluice quarantine retry  [-c FILE|--data-dir DIR] --output ID [--reason R]  send them again (after fixing the cause)
  sluice quarantine drop   [-c FILE|--data-dir DIR] --output ID [--reason R]
  sluice health  [-c FILE|--url URL] [--wait D]    ask a running agent's /healthz (exit 0 healthy, 1 not, 69 no answer)
  sluice query   [-c FILE|--data-dir DIR] --measurement M [--field F] [--from T] [--to T]
                 [--every D] [--fn mean,min,max,count,first,last,sum,stddev] [--json]
  sluice opcua browse URL [--node ID] [--depth N] list an OPC UA server's nodes, node ids and data types
  sluice fleet keygen --out DIR                    write DIR/fleet.key and DIR/fleet.pub (Ed25519)
  sluice fleet sign --key KEY --serial N [--config FILE] [--binary FILE --url URL]… --out MANIFEST
  sluice --version

T is RFC 3339 or epoch milliseconds; D a duration such as 30s, 5m, 1h.`;

const STORE_FLAGS = {
  config: { type: 'string', short: 'c' },
  'data-dir': { type: 'string' },
} as const satisfies ParseArgsConfig['options'];

function parse<O extends NonNullable<ParseArgsConfig['options']>>(args: string[], options: O, positionals = false) {
  try {
    return parseArgs({ args, options, allowPositionals: positionals, strict: true });
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
}

export async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  switch (command) {
    case undefined:
    case 'help':
    case '-h':
    case '--help':
      process.stdout.write(HELP + '\n');
      return command === undefined ? EXIT_USAGE : 0;
    case '--version':
    case '-V':
    case 'version':
      process.stdout.write(`sluice ${VERSION}\n`);
      return 0;
    case 'check': {
      const { values, positionals } = parse(rest, { config: { type: 'string', short: 'c' } }, true);
      const file = values.config ?? positionals[0];
      if (!file) throw new UsageError('check needs -c FILE');
      return runCheck(file);
    }
    case 'run': {
      const { values } = parse(rest, STORE_FLAGS);
      dieWithParent();
      return runAgentCommand({ configFile: values.config, dataDir: values['data-dir'] });
    }
    case 'import': {
      const { values, positionals } = parse(rest, { ...STORE_FLAGS, precision: { type: 'string' } }, true);
      if (positionals.length !== 1) throw new UsageError('import needs exactly one FILE (or - for stdin)');
      const input = positionals[0] === '-' ? process.stdin : createReadStream(positionals[0]);
      return runImport(storeSettings(values.config, values['data-dir']), input, values.precision);
    }
    case 'export': {
      const { values } = parse(rest, {
        ...STORE_FLAGS,
        precision: { type: 'string' },
        from: { type: 'string' },
        to: { type: 'string' },
        measurement: { type: 'string' },
      });
      return runExport(storeSettings(values.config, values['data-dir']), values);
    }
    case 'health': {
      const { values } = parse(rest, { config: { type: 'string', short: 'c' }, url: { type: 'string' }, wait: { type: 'string' } });
      return runHealth({ configFile: values.config, url: values.url, wait: values.wait });
    }
    case 'status': {
      const { values } = parse(rest, { ...STORE_FLAGS, json: { type: 'boolean' } });
      return runStatus(storeSettings(values.config, values['data-dir']), values.json ?? false);
    }
    case 'quarantine': {
      const [sub, ...args] = rest;
      const { values } = parse(args, { ...STORE_FLAGS, output: { type: 'string' }, reason: { type: 'string' }, precision: { type: 'string' }, json: { type: 'boolean' } });
      return runQuarantine(storeSettings(values.config, values['data-dir']), sub, values);
    }
    case 'query': {
      const { values } = parse(rest, {
        ...STORE_FLAGS,
        measurement: { type: 'string' },
        field: { type: 'string' },
        from: { type: 'string' },
        to: { type: 'string' },
        every: { type: 'string' },
        fn: { type: 'string' },
        json: { type: 'boolean' },
      });
      return runQuery(storeSettings(values.config, values['data-dir']), values);
    }
    case 'fleet': {
      const [sub, ...args] = rest;
      if (sub === 'keygen') {
        const { values } = parse(args, { out: { type: 'string' } });
        if (!values.out) throw new UsageError('fleet keygen needs --out DIR');
        return runKeygen(values.out);
      }
      if (sub === 'sign') {
        const { values } = parse(args, {
          key: { type: 'string' },
          serial: { type: 'string' },
          config: { type: 'string' },
          binary: { type: 'string', multiple: true },
          url: { type: 'string', multiple: true },
          out: { type: 'string' },
        });
        if (!values.key || values.serial === undefined || !values.out) throw new UsageError('fleet sign needs --key KEY --serial N --out MANIFEST');
        return runSign({ key: values.key, serial: values.serial, config: values.config, binaries: values.binary ?? [], urls: values.url ?? [], out: values.out });
      }
      throw new UsageError('fleet needs a subcommand: keygen or sign');
    }
    case 'opcua': {
      const [sub, ...args] = rest;
      if (sub !== 'browse') throw new UsageError('opcua needs a subcommand: browse');
      const { values, positionals } = parse(args, { node: { type: 'string' }, depth: { type: 'string' } }, true);
      if (positionals.length !== 1) throw new UsageError('opcua browse needs exactly one URL');
      return runOpcuaBrowse(positionals[0], values);
    }
    case 'schema':
      // Hidden: regenerates config/sluice.schema.json (npm run schema).
      process.stdout.write(JSON.stringify(configSchemaJson(), null, 2) + '\n');
      return 0;
    default:
      throw new UsageError(`unknown command "${command}" (sluice --help lists them)`);
  }
}

/** Runs a command line; resolves with the exit status (errors become their sysexits code and a message on stderr). */
export async function runCommandLine(argv: string[]): Promise<number> {
  try {
    return await main(argv);
  } catch (err) {
    if (err instanceof UsageError) {
      process.stderr.write(`sluice: ${err.message}\n`);
      return EXIT_USAGE;
    } else if (err instanceof ConfigLoadError) {
      process.stderr.write(err.message + '\n');
      return EXIT_CONFIG;
    } else if (err instanceof StoreOpenError) {
      process.stderr.write(`sluice: store ${err.message}\n`);
      return EXIT_STORE;
    }
    process.stderr.write(`sluice: ${(err as Error).stack ?? String(err)}\n`);
    return 1;
  }
}
