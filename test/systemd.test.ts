/**
 * Issue 13 point 3: the systemd units of contrib/systemd pass
 * `systemd-analyze verify` and carry the hardening asked for, and readiness
 * is real: READY=1 reaches $NOTIFY_SOCKET once a master listens and its
 * dump worker is up, and for a slave only after its first sync.
 */
import test from 'ava';
import { spawn, spawnSync } from 'node:child_process';
import { copyFileSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PROJECT_ROOT, startMupdated, tempDir, type RunningMupdated } from './helpers/server.js';
import { sleep, waitUntil } from './helpers/slave-tools.js';

const UNITS = join(PROJECT_ROOT, 'contrib/systemd');
const INSTALLED_PATH = '/usr/local/bin/mupdated';

const running: Array<{ stop(): Promise<unknown> }> = [];
test.after.always(async () => {
  for (const r of running.reverse()) await r.stop();
});

/** A copy of a unit in a temp folder, its ExecStart pointing at this checkout's bin/mupdated.js (verify wants it to exist). */
function unitCopy(dir: string, name: string, as = name, edit: (text: string) => string = (s) => s): string {
  const text = readFileSync(join(UNITS, name), 'utf8').replaceAll(INSTALLED_PATH, join(PROJECT_ROOT, 'bin/mupdated.js'));
  const path = join(dir, as);
  writeFileSync(path, edit(text));
  return path;
}

function verify(...paths: string[]): { status: number | null; output: string } {
  const r = spawnSync('systemd-analyze', ['verify', '--man=no', ...paths], { encoding: 'utf8', timeout: 60_000 });
  return { status: r.status, output: `${r.stdout}${r.stderr}`.trim() };
}

function directives(name: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const line of readFileSync(join(UNITS, name), 'utf8').split('\n')) {
    const m = /^([A-Za-z]+)=(.*)$/.exec(line);
    if (m) out.set(m[1], [...(out.get(m[1]) ?? []), m[2]]);
  }
  return out;
}

const hasAnalyze = spawnSync('systemd-analyze', ['--version']).status === 0;
const analyzeTest = hasAnalyze || process.env.CI ? test : test.skip;

analyzeTest(
  'systemd: systemd-analyze verify passes, without a warning, on the master unit and on an instance of the slave template',
  (t) => {
    const dir = tempDir('mupdated-units-');
    const master = unitCopy(dir, 'mupdated.service');
    const template = unitCopy(dir, 'mupdated-slave@.service');
    copyFileSync(template, join(dir, 'mupdated-slave@frontend1.service'));
    const r = verify(master, join(dir, 'mupdated-slave@frontend1.service'));
    t.is(r.status, 0, r.output);
    t.is(r.output, '', 'no warning either (an unknown or misspelt directive is only a warning)');
    // The check itself sees a misspelt directive.
    const broken = unitCopy(dir, 'mupdated.service', 'broken.service', (s) => s.replace('ProtectSystem=strict', 'ProtectSystem=strikt'));
    t.regex(verify(broken).output, /protect system value/i);
  },
);

test('systemd: both units run as a dedicated user with the data folder as the only writable path, hardened, restarted on failure, stopped by SIGTERM, Type=notify', (t) => {
  for (const [name, data] of [
    ['mupdated.service', '/var/lib/mupdated/master'],
    ['mupdated-slave@.service', '/var/lib/mupdated/slave-%i'],
  ] as const) {
    const d = directives(name);
    const one = (k: string) => t.deepEqual(d.get(k), [expected[k]], `${name}: ${k}`);
    const expected: Record<string, string> = {
      User: 'mupdated',
      Group: 'mupdated',
      ReadWritePaths: data,
      NoNewPrivileges: 'yes',
      ProtectSystem: 'strict',
      PrivateTmp: 'yes',
      Restart: 'on-failure',
      KillSignal: 'SIGTERM',
      Type: 'notify',
      NotifyAccess: 'all',
      StateDirectoryMode: '0700',
    };
    for (const k of Object.keys(expected)) one(k);
    t.true(d.get('ExecStart')![0].includes(`--data ${data}`), `${name}: the data folder is the writable one`);
  }
  t.regex(readFileSync(join(UNITS, 'mupdated.sysusers.conf'), 'utf8'), /^u mupdated /m);
});

/** A unix datagram socket standing in for systemd's notify socket (python3: node cannot bind one). */
async function notifySocket(): Promise<{ path: string; messages: string[]; stop(): Promise<void> }> {
  const path = join(tempDir('mupdated-notify-'), 'notify.sock');
  const script =
    'import socket,sys\ns=socket.socket(socket.AF_UNIX,socket.SOCK_DGRAM)\ns.bind(sys.argv[1])\nprint("bound",flush=True)\n' +
    'while True:\n  print(s.recv(4096).decode(errors="replace").replace("\\n"," "),flush=True)\n';
  const child = spawn('python3', ['-c', script, path], { stdio: ['ignore', 'pipe', 'inherit'] });
  const messages: string[] = [];
  child.stdout.setEncoding('utf8').on('data', (d: string) => messages.push(...d.split('\n').filter(Boolean)));
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  await waitUntil(() => messages.includes('bound') || child.exitCode !== null, 20_000, 'the notify socket to be bound');
  messages.splice(messages.indexOf('bound'), 1);
  return {
    path,
    messages,
    stop: async () => {
      child.kill();
      await exited;
    },
  };
}

const notifyTest = spawnSync('systemd-notify', ['--help']).status === 0 || process.env.CI ? test.serial : test.serial.skip;

notifyTest('systemd: a master sends READY=1 (with its MAINPID) to $NOTIFY_SOCKET once it listens and its dump worker is up', async (t) => {
  const sock = await notifySocket();
  running.push(sock);
  const master = await startMupdated({ env: { NOTIFY_SOCKET: sock.path } });
  running.push(master);
  await waitUntil(() => sock.messages.some((m) => m.includes('READY=1')), 20_000, 'READY=1');
  t.true(
    sock.messages.some((m) => m.includes(`MAINPID=${master.child.pid}`)),
    sock.messages.join('|'),
  );
  await master.waitForLog(/"msg":"told systemd the server is ready"/);
  const at = (msg: string) => master.logs.findIndex((l) => l.includes(`"msg":"${msg}"`));
  t.true(at('dump worker started') >= 0 && at('dump worker started') < at('ready to serve'), 'ready only once the dump worker is up');
});

notifyTest('systemd: a slave sends READY=1 only after its first sync with the master, not while the master is away', async (t) => {
  const sock = await notifySocket();
  running.push(sock);
  const first = await startMupdated();
  const masterPort = first.port;
  await first.stop();
  const slave: RunningMupdated = await startMupdated({
    mode: 'slave',
    env: { NOTIFY_SOCKET: sock.path },
    args: ['--master', `127.0.0.1:${masterPort}`, '--user', 'mupdateadmin', '--password-file', passwordFile(), '--retry-delay', '1'],
  });
  running.push(slave);
  await sleep(2000);
  t.deepEqual(sock.messages, [], 'nothing before the first sync');
  const master = await startMupdated({ dataDir: first.dataDir, args: ['--listen', `127.0.0.1:${masterPort}`] });
  running.push(master);
  await waitUntil(() => sock.messages.some((m) => m.includes('READY=1')), 30_000, 'READY=1 after the first sync');
  t.true(slave.logs.some((l) => l.includes('slave copy is complete')));
  t.true(sock.messages.some((m) => m.includes(`MAINPID=${slave.child.pid}`)));
});

function passwordFile(): string {
  const p = join(tempDir('mupdated-pw-'), 'password');
  writeFileSync(p, 'secret\n', { mode: 0o600 });
  return p;
}
