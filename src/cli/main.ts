/** `mupdated SUBCOMMAND ...`: the single entry point. */
import { parseArgs } from 'node:util';
import { ETCD_OPTIONS } from './etcd-flags.js';
// Each subcommand's module is loaded only when it runs: a backend's `push` or an
// operator's `client` starts without loading the server, LMDB or the logger.

const USAGE = `usage: mupdated <command> [options]

commands:
  master     run the MUPDATE master   [--listen HOST:PORT] [--data DIR] [--servername NAME]
                                      [--tls-cert FILE --tls-key FILE] [--config FILE]
                                      [--etcd URL[,URL...] [--etcd-prefix P] [--etcd-ca F --etcd-cert F --etcd-key F]]
                                      (a cluster node: the directory in etcd, a view in --data)
                                      [--metrics-listen HOST:PORT]  (/metrics, /healthz, /readyz over HTTP)
  slave      follow a master, serve its copy read-only
             --master HOST:PORT[,HOST:PORT...] --user NAME --password-file FILE [--retry-delay SECONDS]
             [--tls-ca FILE] [--listen HOST:PORT] [--data DIR] [--config FILE] [--metrics-listen HOST:PORT]
             (STARTTLS is required toward a master not on loopback unless slave_starttls says otherwise)
             (several masters: cluster nodes, the first that answers is followed)
             [--frontend-db FILE] [--kick-socket PATH] [--imapd-conf FRONTEND-IMAPD.CONF]
             (on a Cyrus frontend: keep its sqlite mailboxes database and answer its kicks)
  conflicts  the operator queue of duplicate-mailbox claims
             list [--all] [--json] | show ID [--json] | resolve ID --keep current|claimant | dismiss ID
             [--data DIR | --etcd URL[,URL...]]
  push       a backend's startup push from its ctl_mboxlist -d dump, never deleting anything local
             --master HOST:PORT --user NAME --password-file FILE --server BACKEND [--dry-run] DUMP|-
             [--starttls | --plaintext] [--tls-ca FILE] [--tls-insecure]
             (TLS is required toward a master not on loopback; --plaintext sends the password in clear)
             exit 0 in sync, 1 cannot connect/log in/LIST, 2 usage or bad dump, 3 some mailboxes need review
  dump       write the directory as ctl_mboxlist -d JSON to stdout   [--data DIR | --etcd URL[,URL...]]
  load       read ctl_mboxlist -d JSON (a file or -) into the directory   [--data DIR | --etcd URL[,URL...]]
  backup     copy the data folder while the server runs into the new folder DEST   DEST [--data DIR]
  verify     check a data folder or backup (format, index, change log, counts)   [--data DIR]
  user       manage logins            add NAME [--admin] | remove NAME | list   [--data DIR | --etcd URL[,URL...]]
             (the password is read from standard input)
  (the tools take --config FILE, and with --etcd also --etcd-prefix, --etcd-ca, --etcd-cert, --etcd-key:
   they then act on the cluster, from any machine that reaches etcd)
  client     talk MUPDATE to a server: a prompt on a terminal, else commands from stdin (see: client --help)
             [HOST:PORT] [--user NAME] [--password-file FILE] [--starttls | --plaintext] [--tls-ca FILE] [--raw] [--json]
`;

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
  'metrics-listen': { type: 'string' },
} as const;

export async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
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
          ...SERVER_OPTIONS, master: { type: 'string' }, user: { type: 'string' },
          'password-file': { type: 'string' }, 'retry-delay': { type: 'string' }, 'tls-ca': { type: 'string' },
          'frontend-db': { type: 'string' }, 'kick-socket': { type: 'string' }, 'imapd-conf': { type: 'string' },
        },
        strict: true,
      });
      await (await import('./slave.js')).runSlave(values);
      return -1;
    }
    case 'user': {
      const { values, positionals } = parseArgs({
        args: rest, options: { ...TOOL_OPTIONS, admin: { type: 'boolean' } }, allowPositionals: true,
      });
      await (await import('./user.js')).runUser(positionals[0], positionals[1], values);
      return 0;
    }
    case 'conflicts': {
      const { values, positionals } = parseArgs({
        args: rest, allowPositionals: true,
        options: {
          ...TOOL_OPTIONS, json: { type: 'boolean' }, keep: { type: 'string' },
          all: { type: 'boolean' }, status: { type: 'string' },
        },
      });
      return (await import('./conflicts.js')).runConflicts(positionals, values);
    }
    case 'push': {
      const { values, positionals } = parseArgs({
        args: rest, allowPositionals: true,
        options: {
          master: { type: 'string' }, user: { type: 'string' }, 'password-file': { type: 'string' },
          server: { type: 'string' }, 'dry-run': { type: 'boolean' }, window: { type: 'string' },
          starttls: { type: 'boolean' }, plaintext: { type: 'boolean' }, 'tls-ca': { type: 'string' },
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
    case 'backup': case 'verify': {
      const { values, positionals } = parseArgs({ args: rest, allowPositionals: true, options: { ...TOOL_OPTIONS, help: { type: 'boolean', short: 'h' } } });
      const backup = await import('./backup.js');
      if (values.help) {
        process.stdout.write(backup.BACKUP_USAGE);
        return 0;
      }
      return command === 'backup' ? backup.runBackup(positionals, values) : backup.runVerify(positionals, values);
    }
    case 'client': {
      const { values, positionals } = parseArgs({
        args: rest, allowPositionals: true,
        options: {
          user: { type: 'string' }, 'password-file': { type: 'string' }, starttls: { type: 'boolean' },
          'tls-insecure': { type: 'boolean' }, 'tls-ca': { type: 'string' }, plaintext: { type: 'boolean' },
          raw: { type: 'boolean' }, json: { type: 'boolean' },
          timeout: { type: 'string' }, help: { type: 'boolean', short: 'h' },
        },
      });
      if (values.help) {
        process.stdout.write((await import('./client.js')).CLIENT_USAGE);
        return 0;
      }
      return (await import('./client.js')).runClient(positionals, values);
    }
    case undefined: case '-h': case '--help': case 'help':
      process.stdout.write(USAGE);
      return command === undefined ? 2 : 0;
    default:
      process.stderr.write(`mupdated: unknown command '${command}'\n${USAGE}`);
      return 2;
  }
}

main(process.argv.slice(2)).then(
  (code) => { if (code >= 0) process.exitCode = code; },
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
