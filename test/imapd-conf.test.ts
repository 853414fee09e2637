/**
 * `--imapd-conf FILE` (issue 13, point 1): a Cyrus imapd.conf read by Cyrus's
 * rules, mapped onto our settings, the rest listed once at start; our own
 * --config stays strict and flags override both. Debian's shipped
 * /etc/imapd.conf and a Cyrus master's and slave's imapd.conf start servers
 * with the same meaning as our own config file would give them.
 */
import test from 'ava';
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { ConfigError, type ServerConfig } from '../src/config.js';
import { ImapdConfError, readImapdConf } from '../src/cyrus-conf/read.js';
import { resolveServerConfig } from '../src/cli/master.js';
import { resolveSlaveConfig } from '../src/cli/slave.js';
import { RawClient } from './helpers/raw-client.js';
import { command, lit, login } from './helpers/directory.js';
import { waitUntil } from './helpers/slave-tools.js';
import { CLI, PROJECT_ROOT, removeDir, startMupdated, tempDir, type RunningMupdated } from './helpers/server.js';

const FIXTURES = join(PROJECT_ROOT, 'test/fixtures/cyrus');
const DEBIAN_IMAPD_CONF = '/etc/imapd.conf';

/** Writes a fixture with its placeholders filled in; returns its path. */
function fixture(name: string, dir: string, values: Record<string, string>): string {
  let text = readFileSync(join(FIXTURES, name), 'utf8');
  for (const [k, v] of Object.entries(values)) text = text.replaceAll(`@${k}@`, v);
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}

function write(dir: string, name: string, text: string): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}

/** A resolved config without the record of where it came from, for comparing meanings. */
function meaning(c: ServerConfig): ServerConfig {
  const copy = structuredClone(c);
  delete copy.imapdConf;
  return copy;
}

/** Stops the servers in order, then removes their data folders and `dir`. */
async function stopAndRemove(dir: string, ...servers: Array<RunningMupdated | undefined>): Promise<void> {
  for (const s of servers) await s?.stop();
  for (const s of servers) if (s) removeDir(s.dataDir);
  removeDir(dir);
}
test("the reader follows Cyrus's rules: comments, continuations, lower-cased keys, @include from the working directory", (t) => {
  const dir = tempDir('mupdated-imapdconf-');
  try {
    mkdirSync(join(dir, 'sub'));
    write(join(dir, 'sub'), 'extra.conf', '# included\nServerName: from-include\n');
    const main = write(
      dir,
      'imapd.conf',
      [
        '# a comment',
        '   # an indented comment',
        '',
        'admins: a \\',
        'b',
        '@include: sub/extra.conf',
        'tls_ciphers: HIGH:!aNULL # not a comment: Cyrus keeps it',
        '  allowplaintext:   yes  ',
      ].join('\n'),
    );
    const cwd = process.cwd();
    process.chdir(dir);
    let keys;
    try {
      keys = readImapdConf(main);
    } finally {
      process.chdir(cwd);
    }
    t.deepEqual(Object.fromEntries([...keys].map(([k, v]) => [k, v.value])), {
      admins: 'a b',
      servername: 'from-include',
      tls_ciphers: 'HIGH:!aNULL # not a comment: Cyrus keeps it',
      allowplaintext: 'yes',
    });
    t.is(keys.get('servername')!.file, 'sub/extra.conf');
    t.is(keys.get('allowplaintext')!.line, 8);
  } finally {
    removeDir(dir);
  }
});

test('what Cyrus refuses is refused, naming the file and line: a key twice, an empty value, a space before the colon, a file included twice, an unknown directive', (t) => {
  const dir = tempDir('mupdated-imapdconf-');
  try {
    const bad = (name: string, text: string, re: RegExp) => {
      const e = t.throws(() => readImapdConf(write(dir, name, text)), { instanceOf: ImapdConfError });
      t.regex(e.message, re);
    };
    bad(
      'twice.conf',
      'servername: a\nadmins: x\nServername: b\n',
      /twice\.conf:3: option 'servername' given twice \(first at .*twice\.conf:1\)/,
    );
    bad('empty.conf', 'servername:\n', /empty\.conf:1: empty value for servername/);
    bad('space.conf', 'servername : a\n', /space\.conf:1: invalid option name/);
    const loop = join(dir, 'loop.conf');
    bad('loop.conf', `@include: ${loop}\n`, /loop\.conf included twice/);
    bad('directive.conf', '@import: x\n', /unknown directive @import/);
    bad('missing.conf', `@include: ${join(dir, 'nowhere.conf')}\n`, /cannot read imapd\.conf .*nowhere\.conf/);
  } finally {
    removeDir(dir);
  }
});

test("Debian's shipped /etc/imapd.conf means what our own config with its meaningful keys means; the other keys are listed", (t) => {
  if (!existsSync(DEBIAN_IMAPD_CONF)) return t.pass(`${DEBIAN_IMAPD_CONF} not installed (Debian package cyrus-common)`);
  const dir = tempDir('mupdated-imapdconf-');
  try {
    const cyrus = join(dir, 'imapd.conf');
    copyFileSync(DEBIAN_IMAPD_CONF, cyrus);
    const fromCyrus = resolveServerConfig({ 'imapd-conf': cyrus, data: dir }, 'master');
    // What Debian's file says that a MUPDATE server uses: allowplaintext yes, auxprop passwords;
    // no servername, so Cyrus (and we) take the host's name.
    const own = write(dir, 'own.conf', `allowplaintext: yes\nservername: ${hostname()}\n`);
    const fromOwn = resolveServerConfig({ config: own, data: dir }, 'master');
    t.deepEqual(meaning(fromCyrus.config), meaning(fromOwn.config));
    t.is(fromCyrus.config.imapdConf, cyrus);
    t.true(fromCyrus.imapd!.ignored.includes('configdirectory'));
    t.true(fromCyrus.imapd!.ignored.includes('partition-default'));
    t.false(fromCyrus.imapd!.ignored.includes('allowplaintext'));
    t.false(fromCyrus.imapd!.ignored.includes('sasl_pwcheck_method'));
    t.true(fromCyrus.imapd!.notes.some((n) => /auxprop passwords \(sasldb\) are not read/.test(n)));
  } finally {
    removeDir(dir);
  }
});

/** A Murder frontend's imapd.conf: Debian's file, included, and the mupdate_* lines it documents (commented out there). */
function murderConf(dir: string, debian: string, master: string): string {
  return write(
    dir,
    'murder.conf',
    [
      `@include: ${debian}`,
      `mupdate_server: ${master}`,
      'mupdate_username: mupdateadmin',
      'mupdate_authname: mupdateadmin',
      'mupdate_password: secret',
      'mupdate_retry_delay: 2',
      'mupdate_admins: backend1',
      '',
    ].join('\n'),
  );
}

test("Debian's shipped /etc/imapd.conf starts a master, and with the Murder lines it documents, a slave that follows it", async (t) => {
  if (!existsSync(DEBIAN_IMAPD_CONF)) return t.pass(`${DEBIAN_IMAPD_CONF} not installed (Debian package cyrus-common)`);
  const dir = tempDir('mupdated-imapdconf-');
  let master: RunningMupdated | undefined;
  let slave: RunningMupdated | undefined;
  try {
    const debian = join(dir, 'imapd.conf');
    copyFileSync(DEBIAN_IMAPD_CONF, debian);
    master = await startMupdated({ args: ['--imapd-conf', debian] });
    t.regex((await banner(master.port)).at(-1)!, new RegExp(`^\\* OK MUPDATE "${hostname().replace(/[.]/g, '\\.')}" `));
    t.is(master.logs.filter((l) => l.includes('"msg":"imapd.conf read;')).length, 1);
    const conf = murderConf(dir, debian, `127.0.0.1:${master.port}`);
    const { config } = resolveSlaveConfig({ 'imapd-conf': conf });
    t.deepEqual(config.admins, ['backend1']);
    slave = await startMupdated({ mode: 'slave', args: ['--imapd-conf', conf], users: [{ name: 'backend1' }] });
    await slave.waitForLog(/"msg":"full sync applied"/, 30_000);
    // backend1 has no admin flag in the slave's users: mupdate_admins makes it one.
    (await login(slave.port, 'backend1')).close();
    t.true(
      slave.logs.some((l) => l.includes("the imapd.conf's mailboxes database is not sql")),
      'the slave says the twoskip database is not kept',
    );
  } finally {
    await stopAndRemove(dir, slave, master);
  }
});

test("a Cyrus master's and slave's imapd.conf resolve to the same settings as our own config; flags override both, --config overrides the imapd.conf", (t) => {
  const dir = tempDir('mupdated-imapdconf-');
  try {
    const master = fixture('master-imapd.conf', dir, { DIR: dir });
    const ownMaster = write(
      dir,
      'own-master.conf',
      'servername: mupdate-master\nadmins: mupdateadmin backend1 backend2\nallowplaintext: yes\nsasl_mech_list: PLAIN\n',
    );
    t.deepEqual(
      meaning(resolveServerConfig({ 'imapd-conf': master }, 'master').config),
      meaning(resolveServerConfig({ config: ownMaster }, 'master').config),
    );

    const slave = fixture('slave-imapd.conf', dir, { DIR: dir, MASTER: '127.0.0.1:3905' });
    const ownSlave = write(
      dir,
      'own-slave.conf',
      [
        'servername: mupdate-slave',
        'admins: mupdateadmin backend1 backend2',
        'allowplaintext: yes',
        'sasl_mech_list: PLAIN',
        'mupdate_server: 127.0.0.1:3905',
        'mupdate_username: mupdateadmin',
        'mupdate_authname: mupdateadmin',
        'mupdate_password: secret',
        'mupdate_retry_delay: 3',
        '',
      ].join('\n'),
    );
    const fromCyrus = resolveSlaveConfig({ 'imapd-conf': slave });
    t.deepEqual(meaning(fromCyrus.config), meaning(resolveSlaveConfig({ config: ownSlave }).config));
    t.deepEqual(fromCyrus.imapd!.ignored, [
      'configdirectory',
      'mupdate_config',
      'partition-default',
      'sasl_auxprop_plugin',
      'sasl_sasldb_path',
      'syslog_prefix',
    ]);

    // Rising priority: imapd.conf < --config (also naming the imapd.conf) < flags.
    const layered = write(dir, 'layered.conf', `imapd_conf: ${slave}\nservername: from-config\nmupdate_retry_delay: 7\n`);
    const c = resolveSlaveConfig({ config: layered, servername: 'from-flag', 'retry-delay': '9' }).config;
    t.is(c.servername, 'from-flag');
    t.is(c.upstream.retryDelaySeconds, 9);
    t.is(resolveSlaveConfig({ config: layered }).config.upstream.retryDelaySeconds, 7);
    t.is(c.upstream.server, '127.0.0.1:3905');
  } finally {
    removeDir(dir);
  }
});

test("mupdate_KEY overrides KEY as Cyrus's service-specific options do; switches, durations and TLS keys translate", (t) => {
  const dir = tempDir('mupdated-imapdconf-');
  try {
    const conf = write(
      dir,
      'imapd.conf',
      [
        'mupdate_servername: the-mupdate-name',
        'servername: the-imap-name',
        'allowplaintext: off',
        'mupdate_allowplaintext: t',
        'mupdate_retry_delay: 1m',
        'client_timeout: 30s',
        'tls_versions: tls1_2 tls1_3',
        'tls_ciphers: HIGH',
        'tls_server_cert: /c.pem',
        'tls_server_key: /k.pem',
        'sasl_pwcheck_method: saslauthd',
        'sasl_mech_list: DIGEST-MD5 PLAIN',
        'failedloginpause: 2',
        'mupdate_server: m.example:3905',
        'mupdate_authname: u',
        'mupdate_password: p',
        '',
      ].join('\n'),
    );
    const { config, imapd } = resolveSlaveConfig({ 'imapd-conf': conf });
    t.is(config.servername, 'the-mupdate-name');
    t.true(config.allowPlaintext);
    t.is(config.upstream.retryDelaySeconds, 60);
    t.is(config.upstream.connectTimeoutSeconds, 30);
    t.deepEqual(config.tlsVersions, { min: 'tls1_2', max: 'tls1_3' });
    t.is(config.tlsCiphers, 'HIGH');
    t.is(config.tlsCert, '/c.pem');
    t.is(config.saslauthdSocket, '/var/run/saslauthd/mux');
    t.deepEqual(config.saslMechanisms, ['PLAIN']);
    t.is(config.failedLoginPauseMs, 2000);
    t.deepEqual(imapd!.ignored, []);
    t.true(imapd!.notes.some((n) => /DIGEST-MD5 not offered/.test(n)));
    const path = write(dir, 'path.conf', 'sasl_pwcheck_method: auxprop saslauthd\nsasl_saslauthd_path: /run/sasl/mux\n');
    t.is(resolveServerConfig({ 'imapd-conf': path }, 'master').config.saslauthdSocket, '/run/sasl/mux');
    const gap = write(dir, 'gap.conf', 'tls_versions: tls1_0 tls1_2\n');
    t.throws(() => resolveServerConfig({ 'imapd-conf': gap }, 'master'), { instanceOf: ConfigError, message: /leaves a gap/ });
    const badSwitch = write(dir, 'switch.conf', 'allowplaintext: maybe\n');
    t.throws(() => resolveServerConfig({ 'imapd-conf': badSwitch }, 'master'), {
      instanceOf: ConfigError,
      message: /switch\.conf:1: allowplaintext: expected a switch/,
    });
    // Past Node's longest timer (2^31-1 ms) a pause would end at once.
    for (const [pause, message] of [
      ['-1', /failedloginpause: expected/],
      ['abc', /failedloginpause: expected/],
      ['3601', /failedloginpause: expected seconds from 0 to 3600/],
      ['2h', /failedloginpause: expected seconds from 0 to 3600/],
    ] as const) {
      const bad = write(dir, 'pause.conf', `failedloginpause: ${pause}\n`);
      t.throws(() => resolveServerConfig({ 'imapd-conf': bad }, 'master'), { instanceOf: ConfigError, message }, pause);
    }
    // Every duration stops short of Node's longest timer (2,147,483 s), past which it would fire at once.
    for (const key of ['idle_timeout', 'login_timeout', 'dump_stall_timeout', 'dump_worker_idle', 'client_timeout', 'etcd_write_timeout']) {
      const own = write(dir, 'long.conf', `${key}: 2147484\n`);
      t.throws(
        () => resolveServerConfig({ config: own }, 'master'),
        { instanceOf: ConfigError, message: new RegExp(`^${key}: expected .*2147483`) },
        key,
      );
      const longest = resolveServerConfig({ config: write(dir, 'longest.conf', `${key}: 2147483\n`) }, 'master').config;
      t.truthy(longest, key);
    }
    t.is(
      resolveServerConfig({ 'imapd-conf': write(dir, 'hour.conf', 'failedloginpause: 3600\n') }, 'master').config.failedLoginPauseMs,
      3_600_000,
    );
  } finally {
    removeDir(dir);
  }
});

test('our own --config stays strict: a Cyrus key there is an error, while the imapd.conf ignores it', (t) => {
  const dir = tempDir('mupdated-imapdconf-');
  try {
    const own = write(dir, 'own.conf', 'configdirectory: /var/lib/cyrus\n');
    const r = spawnSync(process.execPath, [CLI, 'master', '--config', own, '--data', dir, '--listen', '127.0.0.1:0'], {
      encoding: 'utf8',
      timeout: 30_000,
    });
    t.is(r.status, 1);
    t.regex(r.stderr, /unknown setting 'configdirectory'/);
    const cyrus = write(dir, 'imapd.conf', 'configdirectory: /var/lib/cyrus\n');
    t.deepEqual(resolveServerConfig({ 'imapd-conf': cyrus }, 'master').imapd!.ignored, ['configdirectory']);
  } finally {
    removeDir(dir);
  }
});

/** The banner lines of a server. */
async function banner(port: number): Promise<string[]> {
  const c = await RawClient.connect(port);
  try {
    return await c.readBanner();
  } finally {
    c.close();
  }
}

test("a master and a slave started from a Cyrus master's and slave's imapd.conf serve as those would: name, mechanisms, admins, the master followed", async (t) => {
  const dir = tempDir('mupdated-imapdconf-');
  let master: RunningMupdated | undefined;
  let slave: RunningMupdated | undefined;
  try {
    const masterConf = fixture('master-imapd.conf', dir, { DIR: dir });
    master = await startMupdated({
      args: ['--imapd-conf', masterConf],
      users: [{ name: 'mupdateadmin', admin: true }, { name: 'alice' }, { name: 'backend1' }],
    });
    const lines = await banner(master.port);
    t.is(lines[0], '* AUTH "PLAIN"', 'sasl_mech_list: PLAIN');
    t.regex(lines[lines.length - 1], /^\* OK MUPDATE "mupdate-master" /);
    // backend1 is no admin in our user database, but `admins` of the imapd.conf names it.
    (await login(master.port, 'backend1')).close();
    await t.throwsAsync(() => login(master!.port, 'alice'), { message: /login failed: A01 NO/ });
    const read = master.logs.filter((l) => l.includes('"msg":"imapd.conf read;'));
    t.is(read.length, 1, 'the ignored keys are listed once');
    t.regex(
      read[0],
      /"ignored":\["configdirectory","mupdate_config","partition-default","sasl_auxprop_plugin","sasl_sasldb_path","syslog_prefix"\]/,
    );

    const slaveDir = tempDir('mupdated-imapdconf-slave-');
    const slaveConf = fixture('slave-imapd.conf', slaveDir, { DIR: slaveDir, MASTER: `127.0.0.1:${master.port}` });
    slave = await startMupdated({ mode: 'slave', dataDir: undefined, args: ['--imapd-conf', slaveConf] });
    const writer = await login(master.port);
    const r = await command(writer, 'W1', `ACTIVATE ${lit('user.imapdconf')} ${lit('backend1!default')} ${lit('backend1 lrswipkxtecda')}`);
    t.is(r.status, 'W1 OK "done"');
    writer.close();
    await waitUntil(
      async () => {
        const c = await login(slave!.port);
        try {
          return (await command(c, 'F1', `FIND ${lit('user.imapdconf')}`)).records.length === 1;
        } finally {
          c.close();
        }
      },
      30_000,
      'the slave to have the mailbox',
    );
    t.regex((await banner(slave.port)).at(-1)!, /^\* OK MUPDATE "mupdate-slave" /);
    t.false(
      slave.logs.some((l) => /"level":50/.test(l)),
      'no error logged',
    );
    removeDir(slaveDir);
  } finally {
    await stopAndRemove(dir, slave, master);
  }
});
