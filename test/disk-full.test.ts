/**
 * A master whose disk fills up: every write that cannot be stored gets a
 * tagged NO and leaves nothing behind (not in FIND, LIST, an UPDATE stream
 * or the change log), reads go on, the log says what happened and what to
 * do, and once space is freed writes succeed again without a restart; the
 * folder verifies throughout.
 *
 * The master runs on a 3 MiB tmpfs of its own: `unshare -m` (root) gives it
 * a private mount namespace, so nothing is mounted on the machine. The test
 * reaches the folder through /proc/PID/root and frees space by removing a
 * ballast file there. Required in CI, like the interop tests.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { interopTest, parseDataResponses } from './helpers/cyrus.js';
import { answer, runCli } from './helpers/operator-tools.js';
import { RawClient } from './helpers/raw-client.js';
import { runProgram, showRun } from './helpers/run.js';
import { addUser, CLI, PASSWORD, startMupdated, tempDir } from './helpers/server.js';
import { slaveArgs } from './helpers/slave-tools.js';

function missingReason(): string | null {
  const r = spawnSync('unshare', ['-m', 'sh', '-c', 'mount -t tmpfs -o size=64k tmpfs /mnt'], { encoding: 'utf8' });
  if (r.status !== 0)
    return `a private tmpfs (unshare -m, mount) does not work here (it needs root): ${(r.stderr || r.error?.message || '').trim()}`;
  return null;
}

const register = interopTest('serial', missingReason());

/** One ACL of about 900 bytes: a few hundred writes fill the tmpfs. */
const BIG_ACL = `anyone\tlrs\t${'x'.repeat(880)}\t`;
const MAX_WRITES = 5_000;

interface SmallDiskServer {
  child: ChildProcess;
  port: number;
  logs: string[];
  /** The data folder as this process sees it (through the master's mount namespace). */
  dataDir: string;
  ballast: string;
  /** Makes the tmpfs this big (it only grows). */
  resize: (size: string) => void;
}

/**
 * Starts `mupdated MODE ARGS` with `--data` on a fresh 3 MiB tmpfs that holds a copy of `prepared`
 * and a 512 KiB ballast file.
 */
async function startOnSmallDisk(
  prepared: string,
  mode: 'master' | 'slave',
  modeArgs: (dataDir: string) => string[],
): Promise<SmallDiskServer> {
  const mountPoint = tempDir('mupdated-small-disk-');
  const script =
    'mount -t tmpfs -o size=3m,mode=0700 tmpfs "$1" && cp -a "$2" "$1/data" && ' +
    'head -c 524288 /dev/zero > "$1/ballast" && shift 2 && exec "$@"';
  const dataDir = join(mountPoint, 'data');
  const args = ['-m', 'sh', '-c', script, 'sh', mountPoint, prepared, process.execPath, CLI, mode];
  args.push('--data', dataDir, '--listen', '127.0.0.1:0', ...modeArgs(dataDir));
  const child = spawn('unshare', args, { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, MUPDATED_LOG_LEVEL: 'info' } });
  const logs: string[] = [];
  let partial = '';
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (d: string) => {
    const lines = (partial + d).split('\n');
    partial = lines.pop()!;
    logs.push(...lines);
  });
  for (let i = 0; i < 300; i++) {
    const listening = logs.find((l) => l.includes('"msg":"listening"'));
    if (listening) {
      const root = `/proc/${child.pid}/root`;
      return {
        child,
        port: (JSON.parse(listening) as { port: number }).port,
        logs,
        dataDir: join(root, dataDir),
        ballast: join(root, mountPoint, 'ballast'),
        resize: (size) => {
          const r = spawnSync('nsenter', ['-t', String(child.pid), '-m', 'mount', '-o', `remount,size=${size}`, mountPoint], {
            encoding: 'utf8',
          });
          if (r.status !== 0) throw new Error(`cannot grow the tmpfs: ${r.stderr}`);
        },
      };
    }
    if (child.exitCode !== null) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  child.kill('SIGKILL');
  throw new Error(`the ${mode} on a small disk did not start; its log:\n${logs.join('\n')}`);
}

/** An ACTIVATE of `name` with the big ACL; its final answer line. */
function activate(c: RawClient, tag: string, name: string): Promise<string> {
  return answer(c, tag, 'ACTIVATE', name, 'b1!p', BIG_ACL);
}

/** The names of data responses tagged `tag` in `lines` (which end with `tag`'s OK). */
function namesIn(lines: string[], tag: string): string[] {
  return parseDataResponses(lines, tag).entries.flatMap((e) => ('name' in e ? [e.name] : []));
}

async function listNames(c: RawClient, tag: string): Promise<string[]> {
  c.send(`${tag} LIST\r\n`);
  return namesIn(await c.readUntilTagged(tag, 20_000), tag);
}

register(
  'disk full: writes get NO and leave nothing behind, reads and streams go on, writes succeed again once space is freed',
  async (t) => {
    t.timeout(120_000);
    const prepared = tempDir('mupdated-small-disk-data-');
    addUser(prepared, { name: 'mupdateadmin', admin: true });
    writeFileSync(join(prepared, 'test.conf'), 'failedloginpause: 0.05\n');
    const m = await startOnSmallDisk(prepared, 'master', (dataDir) => ['--config', join(dataDir, 'test.conf')]);
    try {
      const c = await RawClient.login(m.port);
      const stream = await RawClient.login(m.port);
      stream.send('U01 UPDATE\r\n');
      await stream.readUntilTagged('U01', 20_000);

      // Fill the disk until five writes were refused. A smaller change may still fit in pages freed by an
      // earlier commit, so an OK can follow a NO: every answer is checked against the directory below.
      const acknowledged: string[] = [];
      const refused: string[] = [];
      for (let i = 0; i < MAX_WRITES && refused.length < 5; i++) {
        const name = `user.fill${i}`;
        const reply = await activate(c, `W${i}`, name);
        if (reply === `W${i} OK "done"`) acknowledged.push(name);
        else {
          t.is(reply, `W${i} NO "directory storage failure"`, 'a write the disk cannot take is refused');
          refused.push(name);
        }
      }
      t.is(refused.length, 5, `the disk filled up (${acknowledged.length} writes acknowledged)`);
      t.true(acknowledged.length > 10, `${acknowledged.length} writes before the disk was full`);
      for (const [i, name] of refused.entries()) {
        c.send(`F${i} FIND "${name}"\r\n`);
        t.deepEqual(await c.readUntilTagged(`F${i}`), [`F${i} OK "Search completed"`], `refused ${name} is not in the directory`);
      }
      t.deepEqual(await listNames(c, 'L1'), [...acknowledged].sort(), 'LIST holds exactly the acknowledged writes');
      t.true(
        m.logs.some(
          (l) => /"msg":"write failed"/.test(l) && /No space left on device/.test(l) && /check the disk of the data folder/.test(l),
        ),
        'the log says why and what to do',
      );
      let r = await runCli(['verify', '--data', m.dataDir]);
      t.is(r.code, 0, showRun(r));
      t.regex(r.stdout, new RegExp(`change log: ${acknowledged.length} records`), showRun(r));

      // Space freed: writes succeed again, in the same session, the stream carries them and only them.
      t.true(existsSync(m.ballast));
      rmSync(m.ballast);
      for (const [i, name] of refused.entries()) t.is(await activate(c, `A${i}`, name), `A${i} OK "done"`, `${name} again`);
      const all = [...acknowledged, ...refused];
      t.deepEqual(await listNames(c, 'L2'), [...all].sort());
      stream.send('N1 NOOP\r\n');
      const streamLines = await stream.readUntilTagged('N1', 20_000);
      const streamed = namesIn([...streamLines.slice(0, -1), 'U01 OK "end of the test\'s reading"'], 'U01');
      t.deepEqual(streamed, all, 'the stream carried every acknowledged write once, in order, and no refused one');
      r = await runCli(['verify', '--data', m.dataDir]);
      t.is(r.code, 0, showRun(r));
      t.regex(r.stdout, new RegExp(`change log: ${all.length} records`), showRun(r));
      c.close();
      stream.close();
    } finally {
      m.child.kill('SIGKILL');
    }
  },
);

register('disk full on a slave: it stays up and serves its copy, says it cannot store, and catches up once it has space', async (t) => {
  t.timeout(120_000);
  const master = await startMupdated();
  const passwordFile = join(tempDir('mupdated-small-disk-pw-'), 'password');
  writeFileSync(passwordFile, `${PASSWORD}\n`, { mode: 0o600 });
  const slaveFolder = tempDir('mupdated-small-disk-slave-');
  addUser(slaveFolder, { name: 'mupdateadmin', admin: true });
  const slave = await startOnSmallDisk(slaveFolder, 'slave', () => slaveArgs(master.port, passwordFile, 1));
  try {
    const c = await RawClient.login(master.port);
    const storeFailed = () => slave.logs.some((l) => /"msg":"cannot store the changes from the master"/.test(l));
    let written = 0;
    for (; written < MAX_WRITES && !storeFailed(); written++) {
      const reply = await activate(c, `W${written}`, `user.fill${written}`);
      if (reply !== `W${written} OK "done"`) throw new Error(`the master refused a write: ${reply}`);
      // The slave applies changes as they stream: give it a moment now and then to fall over.
      if (written % 100 === 99) await new Promise((r) => setTimeout(r, 200));
    }
    t.true(storeFailed(), `the slave said it could not store the changes (${written} written on the master)`);
    const failure = slave.logs.find((l) => /"msg":"cannot store the changes from the master"/.test(l))!;
    t.regex(
      failure,
      /"err":"could not store the changes: (No space left on device|Input\/output error)/,
      'the file system\'s error, not lmdb-js\'s "see commitError"',
    );
    t.regex(failure, /check the disk of the slave's data folder/);
    t.is(slave.child.exitCode, null, 'the slave is still running');

    // It serves a copy that is the master's as of some earlier change: every entry it has is the master's.
    const s = await RawClient.login(slave.port);
    const onSlave = await listNames(s, 'L1');
    const onMaster = await listNames(c, 'L1');
    t.true(onSlave.length < onMaster.length, `${onSlave.length} on the slave, ${onMaster.length} on the master`);
    t.deepEqual(
      onSlave.filter((n) => !onMaster.includes(n)),
      [],
    );

    // Space: it resumes and ends equal to the master, without a restart.
    slave.resize('32m');
    let last: string[] = [];
    for (let i = 0; i < 200; i++) {
      last = await listNames(s, `L${i + 2}`);
      if (last.length === onMaster.length) break;
      await new Promise((r) => setTimeout(r, 200));
    }
    t.deepEqual(last, onMaster, 'the slave caught up');
    t.is(slave.child.exitCode, null);
    t.false(
      slave.logs.some((l) => /Unhandled|unhandledRejection|Commit failed \(see commitError/.test(l)),
      'no stray rejection',
    );
    c.close();
    s.close();
  } finally {
    slave.child.kill('SIGKILL');
    await master.stop();
  }
});

register("user add on a full disk: exit 1 with the file system's error, no stack trace, the users stored before still there", async (t) => {
  const mountPoint = tempDir('mupdated-small-disk-');
  const passwordFile = join(tempDir('mupdated-small-disk-pw-'), 'password');
  writeFileSync(passwordFile, `${PASSWORD}\n`, { mode: 0o600 });
  const add = (user: string) => `"$3" "$4" user add ${user} --admin --data "$1/d" < "$2"; echo "exit $?"`;
  const script =
    'mount -t tmpfs -o size=300k,mode=0700 tmpfs "$1" && mkdir -m 700 "$1/d" && head -c 290000 /dev/zero > "$1/ballast" && ' +
    `${add('first')}; ${add('second')}; "$3" "$4" user list --data "$1/d"`;
  const r = await runProgram('unshare', ['-m', 'sh', '-c', script, 'sh', mountPoint, passwordFile, process.execPath, CLI], {
    timeoutMs: 60_000,
  });
  t.regex(r.stdout, /^user first saved \(admin\)\nexit 0\nexit 1\n/, `the first user is stored, the second refused: ${showRun(r)}`);
  t.regex(r.stderr, /^mupdated: (No space left on device|Input\/output error)/m, showRun(r));
  t.notRegex(r.stderr, /Commit failed|throw reason|Node\.js v/, showRun(r));
  t.regex(r.stdout, /^first\tadmin$/m, 'the user stored before is listed');
});
