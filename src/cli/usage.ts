/** The usage texts: `mupdated --help` and `mupdated COMMAND --help` (each on stdout, exit 0). */

export const USAGE = `usage: mupdated <command> [options]        (mupdated <command> --help for one command)

commands:
  master     run the MUPDATE master   [--listen HOST:PORT] [--data DIR] [--servername NAME]
                                      [--tls-cert FILE --tls-key FILE] [--config FILE] [--imapd-conf FILE]
                                      [--log-format pretty|json] [--metrics-listen HOST:PORT]
                                      [--etcd URL[,URL...] [--etcd-prefix P] [--etcd-ca F --etcd-cert F --etcd-key F]]
                                      (a cluster node: the directory in etcd, a view in --data)
  slave      follow a master, serve its copy read-only
             --master HOST:PORT[,HOST:PORT...] --user NAME --password-file FILE [--retry-delay SECONDS]
             [--tls-ca FILE] [--listen HOST:PORT] [--data DIR] [--config FILE] [--imapd-conf FILE]
             [--metrics-listen HOST:PORT]  (/metrics, /healthz, /readyz over HTTP)
             (STARTTLS is required toward a master not on loopback unless slave_starttls says otherwise)
             (several masters: cluster nodes, the first that answers is followed)
             [--frontend-db FILE] [--kick-socket PATH]
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

  mupdated --version    prints the version
`;

const SETTINGS = `settings, in rising priority: defaults, --imapd-conf FILE (a Cyrus imapd.conf: the keys that
mean something here, the rest listed once in the log), --config FILE (mupdated's own keys, strict),
then the flags. SIGHUP reloads the TLS certificate and key, log_level and the limits.
logs go to stderr: readable lines on a terminal, JSON lines otherwise or with --log-format json.`;

const TOOL_TARGET = `  --data DIR                    the data folder (default ./data)
  --config FILE                 mupdated's config file (data, etcd_* keys)
  --etcd URL[,URL...]           act on a cluster's directory in etcd instead
  --etcd-prefix P, --etcd-ca F, --etcd-cert F, --etcd-key F`;

/** One usage text per subcommand (client, backup and verify have their own, in their modules). */
export const COMMAND_USAGE: Record<string, string> = {
  master: `usage: mupdated master [options]
Runs the MUPDATE master: the authoritative mailbox directory of a Cyrus Murder.

  --listen HOST:PORT            where to listen (default 127.0.0.1:3905)
  --data DIR                    data folder (default ./data)
  --servername NAME             name in the banner
  --tls-cert FILE --tls-key FILE   PEM files: offer STARTTLS
  --config FILE                 mupdated's config file (README, "Configuration file")
  --imapd-conf FILE             a Cyrus imapd.conf to take settings from
  --log-format pretty|json      log lines (default: pretty on a terminal, else json)
  --metrics-listen HOST:PORT    serve /metrics, /healthz and /readyz over HTTP (metrics_listen)
  --etcd URL[,URL...]           cluster node: the directory lives in etcd
  --etcd-prefix P, --etcd-ca F, --etcd-cert F, --etcd-key F

${SETTINGS}
`,
  slave: `usage: mupdated slave --master HOST:PORT[,HOST:PORT...] --user NAME --password-file FILE [options]
Follows a master and serves its copy read-only.

  --master HOST:PORT[,...]      the master(s) to follow (mupdate_server)
  --user NAME                   login at the master (mupdate_authname)
  --password-file FILE          its password, first line (mupdate_password)
  --retry-delay SECONDS         reconnect delay and keep-alive interval, at least 1 (mupdate_retry_delay, default 20)
  --tls-ca FILE                 CA(s) to trust for the master's certificate
  --listen HOST:PORT, --data DIR, --servername NAME, --tls-cert FILE --tls-key FILE, --config FILE
  --imapd-conf FILE             a Cyrus imapd.conf (the frontend's, on a Cyrus frontend)
  --frontend-db FILE            keep a Cyrus frontend's sqlite mailboxes database
  --kick-socket PATH            answer the frontend's kicks on this Unix socket
  --log-format pretty|json      log lines (default: pretty on a terminal, else json)
  --metrics-listen HOST:PORT    serve /metrics, /healthz and /readyz over HTTP (metrics_listen)

${SETTINGS}
`,
  conflicts: `usage: mupdated conflicts list [--all | --status open|resolved|dismissed] [--json]
       mupdated conflicts show ID [--json]
       mupdated conflicts resolve ID --keep current|claimant
       mupdated conflicts dismiss ID
The operator queue of duplicate-mailbox claims (README, "Conflicts").

${TOOL_TARGET}
`,
  push: `usage: mupdated push --master HOST:PORT --user NAME --password-file FILE --server BACKEND [--dry-run] DUMP|-
A backend's startup push from its ctl_mboxlist -d dump; never deletes anything local.

  --starttls | --plaintext      require TLS | never use it (default: required off loopback)
  --tls-ca FILE, --tls-insecure how to check the master's certificate
  --dry-run                     say what would change, change nothing
exit 0 in sync, 1 cannot connect/log in/LIST, 2 usage or bad dump, 3 some mailboxes need review
`,
  dump: `usage: mupdated dump [--data DIR | --etcd URL[,URL...]]
Writes the directory as ctl_mboxlist -d JSON to stdout.

${TOOL_TARGET}
`,
  load: `usage: mupdated load FILE|- [--data DIR | --etcd URL[,URL...]]
Reads ctl_mboxlist -d JSON (a file, or - for stdin) into the directory.

${TOOL_TARGET}
`,
  user: `usage: mupdated user add NAME [--admin] | remove NAME | list
Manages the logins of the server (the password is read from standard input).

${TOOL_TARGET}
`,
};

/** True when the arguments ask for help (before any `--`, which ends the options). */
export function asksForHelp(args: readonly string[]): boolean {
  for (const a of args) {
    if (a === '--') return false;
    if (a === '--help' || a === '-h') return true;
  }
  return false;
}
