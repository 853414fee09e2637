/** `mupdated SUBCOMMAND ...`: the single entry point. */
import { parseArgs } from 'node:util';
import { ETCD_OPTIONS } from './etcd-flags.js';
import { asksForHelp, COMMAND_USAGE, USAGE } from './usage.js';
import { VERSION } from '../version.js';
// Each subcommand's module is loaded only when it runs: a backend's `push` or an
// operator's `client` starts without loading the server, LMDB or the logger.

/** The directory tools: a data folder, or with --etcd the cluster (the etcd_* keys of --config too). */
const TOOL_OPTIONS = {
  data: { type: 'string' },
  config: { type: 'string' },
  ...ETCD_OPTIONS,
} as const;

const SERVER_OPTIONS = {
  listen: { type: 'string' },
  data: { type: 'string' },
  servername: { type: 'string' },
  'tls-cert': { type: 'string' },
  'tls-key': { type: 'string' },
  config: { type: 'string' },
  ...ETCD_OPTIONS,
  'imapd-conf': { type: 'string' },
  'log-format': { type: 'string' },
  'metrics-listen': { type: 'string' },
} as const;

export async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  const usage = command === undefined ? undefined : COMMAND_USAGE[command];
  if (usage !== undefined && asksForHelp(rest)) {
    process.stdout.write(usage);
    return 0;
  }
  switch (command) {
    case 'master': {
      const { values } = parseArgs({ args: rest, options: SERVER_OPTIONS, strict: true });
      await (await import('./master.js')).runMaster(values);
      return -1; // keeps running
    }
    case 'slave': {
      const { values } = parseArgs({
        args: rest,
        options: {
          ...SERVER_OPTIONS,
          master: { type: 'string' },
          user: { type: 'string' },
          'password-file': { type: 'string' },
          'retry-delay': { type: 'string' },
          'tls-ca': { type: 'string' },
          'frontend-db': { type: 'string' },
          'kick-socket': { type: 'string' },
        },
        strict: true,
      });
      await (await import('./slave.js')).runSlave(values);
      return -1;
    }
    case 'user': {
      const { values, positionals } = parseArgs({
        args: rest,
        options: { ...TOOL_OPTIONS, admin: { type: 'boolean' } },
        allowPositionals: true,
      });
      await (await import('./user.js')).runUser(positionals[0], positionals[1], values);
      return 0;
    }
    case 'conflicts': {
      const { values, positionals } = parseArgs({
        args: rest,
        allowPositionals: true,
        options: {
          ...TOOL_OPTIONS,
          json: { type: 'boolean' },
          keep: { type: 'string' },
          all: { type: 'boolean' },
          status: { type: 'string' },
        },
      });
      return (await import('./conflicts.js')).runConflicts(positionals, values);
    }
    case 'push': {
      const { values, positionals } = parseArgs({
        args: rest,
        allowPositionals: true,
        options: {
          master: { type: 'string' },
          user: { type: 'string' },
          'password-file': { type: 'string' },
          server: { type: 'string' },
          'dry-run': { type: 'boolean' },
          window: { type: 'string' },
          starttls: { type: 'boolean' },
          plaintext: { type: 'boolean' },
          'tls-ca': { type: 'string' },
          'tls-insecure': { type: 'boolean' },
        },
      });
      return (await import('./push.js')).runPush(positionals[0], values);
    }
    case 'dump': {
      const { values } = parseArgs({ args: rest, options: TOOL_OPTIONS });
      return (await import('./dump-load.js')).runDump(values);
    }
    case 'load': {
      const { values, positionals } = parseArgs({ args: rest, allowPositionals: true, options: TOOL_OPTIONS });
      return (await import('./dump-load.js')).runLoad(positionals[0], values);
    }
    case 'backup':
    case 'verify': {
      const { values, positionals } = parseArgs({
        args: rest,
        allowPositionals: true,
        options: { ...TOOL_OPTIONS, help: { type: 'boolean', short: 'h' } },
      });
      const backup = await import('./backup.js');
      if (values.help) {
        process.stdout.write(backup.BACKUP_USAGE);
        return 0;
      }
      return command === 'backup' ? backup.runBackup(positionals, values) : backup.runVerify(positionals, values);
    }
    case 'client': {
      const { values, positionals } = parseArgs({
        args: rest,
        allowPositionals: true,
        options: {
          user: { type: 'string' },
          'password-file': { type: 'string' },
          starttls: { type: 'boolean' },
          'tls-insecure': { type: 'boolean' },
          'tls-ca': { type: 'string' },
          plaintext: { type: 'boolean' },
          raw: { type: 'boolean' },
          json: { type: 'boolean' },
          timeout: { type: 'string' },
          help: { type: 'boolean', short: 'h' },
        },
      });
      if (values.help) {
        process.stdout.write((await import('./client.js')).CLIENT_USAGE);
        return 0;
      }
      return (await import('./client.js')).runClient(positionals, values);
    }
    case '--version':
    case '-V':
    case 'version':
      process.stdout.write(`mupdated ${VERSION}\n`);
      return 0;
    case undefined:
    case '-h':
    case '--help':
    case 'help':
      process.stdout.write(USAGE);
      return command === undefined ? 2 : 0;
    default:
      process.stderr.write(`mupdated: unknown command '${command}'\n${USAGE}`);
      return 2;
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    if (code >= 0) process.exitCode = code;
  },
  (err: Error & { code?: unknown }) => {
    process.stderr.write(`mupdated: ${err.message}\n`);
    // Bad flags are a usage error, like every other one (other libraries' codes may be numbers).
    if (typeof err.code === 'string' && err.code.startsWith('ERR_PARSE_ARGS')) {
      process.stderr.write(USAGE);
      process.exitCode = 2;
    } else {
      process.exitCode = 1;
    }
  },
);
