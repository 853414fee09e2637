/**
 * What to do about each warning and error the server logs, in words. The
 * message says what happened; the log line carries this as `advice` (log.ts).
 * Keyed by the start of the message (or a pattern, for messages that begin
 * with a name); test/logs.test.ts checks that every log.warn and log.error in
 * src/ has an entry here.
 */

const CHECK_ETCD = 'check etcd (etcdctl endpoint health on the etcd_endpoints) and the network to it; this node retries by itself';

const ADVICE: ReadonlyArray<readonly [string | RegExp, string]> = [
  // Server and sessions
  [
    'could not tell systemd the server is ready',
    'install systemd-notify (Debian package systemd) or start mupdated with Type=simple instead of Type=notify; the server itself serves',
  ],
  [
    'could not reopen the directory file after unmapping it',
    'the server stops (exit 1) so that systemd starts it again; if it does not come back, check the data folder (disk, permissions, mupdated verify) and report err',
  ],
  [
    'session failed',
    'this is a bug in mupdated: the connection was closed and the server goes on; please report this line (with err) to the developers',
  ],
  [
    'too many bad commands, closing',
    'the client sent max_bad_commands commands that were not understood: if it is a real client, run with log_level debug to see what it sends; if it is a probe, nothing to do',
  ],
  [
    'client input over a limit, closing',
    'a command was longer than max_command or max_string (before login: max_command_before_login); if a real client needs that, raise the limit in the config and send SIGHUP',
  ],
  [
    'failed-login budget of this address spent',
    'this address failed max_failed_logins_per_host logins within a minute: someone is guessing passwords, or a backend has a wrong mupdate_password in its imapd.conf',
  ],
  [
    'login refused',
    "wrong password, unknown user, or a user who is not an admin: check the client's mupdate_authname and mupdate_password; 'mupdated user list' shows who may log in",
  ],
  [
    'duplicate mailbox claim queued as a conflict',
    "two servers claim one mailbox: review it with 'mupdated conflicts list', then 'mupdated conflicts resolve ID --keep current|claimant'",
  ],
  [
    'write failed',
    'the change was answered NO and nothing of it stayed: check the disk of the data folder (space, I/O errors) or, in a cluster, etcd; err says which',
  ],
  [
    'LIST failed',
    'the connection was closed and the client may retry: check the disk of the data folder, and any dump worker line just before',
  ],
  [
    'UPDATE dump failed',
    'the connection was closed and the slave retries: check the disk of the data folder, and any dump worker line just before',
  ],
  [
    'dump stalled: the client read nothing',
    "the client stopped reading: check the client's host and network; for very slow links raise dump_stall_timeout",
  ],
  [
    'UPDATE stream fell too far behind',
    'the reader takes changes slower than they come and resyncs when it reconnects; if this repeats, check its host and link, or raise stream_queue_bytes or stream_queue_limit',
  ],
  [
    'listener error',
    'the listening socket failed: check the listen address (another program on the port? an address this host does not have?)',
  ],
  [
    'connection refused: limit reached',
    'max_connections connections are open: if they are real clients raise max_connections (SIGHUP applies it), otherwise find out which host holds them',
  ],
  [
    'connection refused: this address holds the most connections not logged in',
    'one address holds max_connections_per_host connections that have not logged in: a client stuck before login, or a flood; raise the limit only for a known client',
  ],
  [
    'dump worker failed',
    'dumps in progress fail and their clients retry; if this repeats, report err to the developers and set dump_workers: 0 meanwhile (dumps in the server thread)',
  ],
  [
    'a directory change listener failed',
    'the change is stored, but an UPDATE stream or the frontend database may miss it until it resyncs: please report this line to the developers',
  ],
  ['conflict #', 'nothing to do: an operator decided this conflict; audit.log in the data folder keeps the record'],
  // Start
  ['no users yet', 'nobody can log in until then (or name saslauthd users in admins)'],
  ['SCRAM-SHA-256 not offered', 'logins still work with PLAIN; the message says what would make SCRAM-SHA-256 available'],
  [
    /^\S.*: mode \d+ narrowed to \d+$/,
    'the file was readable by others and is private now; nothing to do, but consider who could read it before (it holds the directory or password hashes)',
  ],
  ['could not replace an old password hash', 'the login worked and the old hash stays in use: check that the data folder is writable'],
  ['reload failed', 'the server goes on with the settings it had: fix what the message names and send SIGHUP again'],
  ['reload: some changes need a restart', 'the changed settings named in the line take effect only after a restart of mupdated'],
  ['imapd.conf: ', "see README, 'Config from imapd.conf': the named key is read differently than Cyrus would"],
  // Slave
  ['cannot write status file', 'the slave goes on, but status.json is stale: check that the data folder is writable and not full'],
  [
    'cannot store the changes from the master',
    "check the disk of the slave's data folder (space, I/O errors; err says which): the slave serves its copy as it was, drops the connection and resumes where it stopped once it can write",
  ],
  [
    'connection to the master lost',
    'the slave serves its copy and reconnects after mupdate_retry_delay; if this repeats, check that the master runs and this host reaches it',
  ],
  [
    'change from the master skipped',
    'the master holds a name this directory cannot take (over 980 bytes, or a NUL byte): rename or delete that mailbox on its backend; the rest is applied',
  ],
  [
    'master does not answer; trying the next',
    'check that this master runs and that this host reaches it; the slave goes on with the next one',
  ],
  // Frontend database and kicks
  [
    'frontend database: the start-up correction failed',
    "the slave goes on serving, but the frontend's sqlite file may hold stale rows and kicks are not answered: check the file (err says why: disk, permissions, a lock held by another program) and restart the slave",
  ],
  ['kick socket error', "the frontend's kicks go unanswered: check the kick socket's folder (permissions, another program on that path)"],
  [
    'kick: the master did not answer the NOOP in time',
    'the frontend got the copy the slave has, perhaps a moment old: check the link to the master',
  ],
  ['kick: could not flush with the master', 'the frontend got the copy the slave has, perhaps a moment old: check the link to the master'],
  [
    'kick: could not write the frontend database',
    'the frontend did not get its ok and may not see the newest changes: check the sqlite file (disk space, permissions, root-owned -wal or -shm files, a program holding its write lock)',
  ],
  [
    'cannot write the frontend database; retrying',
    'the frontend sees an older copy until this works: check the sqlite file (disk space, permissions, root-owned -wal or -shm files)',
  ],
  [
    "the imapd.conf's mailboxes database is not sql",
    "for a slave that only serves MUPDATE nothing to do; to keep a Cyrus frontend's database on this host, switch it to sql (README, frontend) and restart",
  ],
  [
    "the frontend's imapd.conf does not say",
    "add 'mboxlist_db: sql', 'sql_engine: sqlite' and sql_database to the frontend's imapd.conf (README, frontend)",
  ],
  [
    'kick socket not opened',
    'check kick_socket (or the configdirectory of the imapd.conf) and the permissions of its folder, then restart the slave',
  ],
  // Cluster
  [
    'cluster view: could not apply changes from etcd',
    'reads may be a moment old while the view is rebuilt: check the disk of the data folder',
  ],
  ['cluster view: lost the etcd watch', CHECK_ETCD],
  [
    'cluster view: watch cancelled by etcd',
    'etcd compacted past the revision this node had (after a long disconnect): nothing to do unless it repeats',
  ],
  ['cluster view: rebuild failed', CHECK_ETCD],
  ['cluster view: etcd holds changes the view has not received in time', `nothing to do unless it repeats; then ${CHECK_ETCD}`],
  ['cluster view: cannot follow etcd yet', CHECK_ETCD],
  ['cluster users: cannot read them from etcd yet', CHECK_ETCD],
  ['cluster users: could not apply a change from etcd', 'logins use the users read before; if this repeats, ' + CHECK_ETCD],
  ['etcd transaction failed', `the writes were answered NO "directory unavailable": ${CHECK_ETCD}`],
  [
    'committed in etcd, but the view has not applied it yet',
    "the view lags behind etcd: if this repeats, check this node's load and its link to etcd",
  ],
  ['etcd is unreachable', `writes are refused until etcd answers, then resume by themselves: ${CHECK_ETCD}`],
  ['the local view belongs to another directory', 'nothing to do if this data folder was reused on purpose; otherwise check etcd_prefix'],
];

/** What to do about a warning or error with this message, if known. */
export function adviceFor(msg: string): string | undefined {
  for (const [key, advice] of ADVICE) {
    if (typeof key === 'string' ? msg.startsWith(key) : key.test(msg)) return advice;
  }
  return undefined;
}
