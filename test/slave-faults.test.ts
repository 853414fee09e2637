/**
 * Fault injection between `mupdated slave` and `mupdated master` (spec 6,
 * README "Slave mode"): randomized schedules cut the master's dump mid-way
 * (close, `* BYE`, a stall past the dump timeout), SIGKILL the master or the
 * slave mid-dump, slow the stream down, or cut it while changes stream.
 * Two slaves follow one master of ~3000 entries through loopback proxies
 * (test/helpers/fault-proxy.ts): one resumes with XRESUME (incremental dumps
 * get cut), one has `slave_resume: no` (full UPDATE dumps get cut).
 *
 * Invariants, every round:
 * - after a fault that hit a dump before its tagged OK, while the master is
 *   kept unreachable, the slave's LIST has at least as many entries as before
 *   that dump started, and is in fact exactly the copy it had then (a dump
 *   that does not end with its tagged OK changes nothing);
 * - once the master is reachable again, both slaves' copies equal the master's.
 *
 * SLAVE_FAULT_ROUNDS (default 20) sets the number of schedules
 * (`npm run test:slave-faults100` runs 100); SLAVE_FAULT_SEED replays a run.
 */
import test from 'ava';
import { FaultProxy, type ConnPlan, type ProxyConn } from './helpers/fault-proxy.js';
import { populate, login } from './helpers/directory.js';
import { removeDir, startMupdated, type RunningMupdated } from './helpers/server.js';
import { ChangeGenerator, applyChanges, listOf, readStatus, same, startSlave, waitInSync, waitUntil } from './helpers/slave-tools.js';
import { prng } from './helpers/prng.js';

const ROUNDS = Math.max(1, Number.parseInt(process.env.SLAVE_FAULT_ROUNDS ?? '20', 10) || 20);
const SEED = Number.parseInt(process.env.SLAVE_FAULT_SEED ?? '', 10) || Date.now() % 2 ** 31;
const BASE_ENTRIES = 3000;
const RETRY_DELAY = 1;
/** slave_dump_timeout: a stalled dump is abandoned after this many seconds without a line. */
const DUMP_TIMEOUT = 2;

type Kind = 'cut' | 'bye' | 'stall' | 'kill-master' | 'kill-slave' | 'delay' | 'cut-stream';
const KINDS: Kind[] = ['cut', 'bye', 'stall', 'kill-master', 'kill-slave', 'delay', 'cut-stream'];

interface Follower {
  name: string;
  resume: boolean;
  proxy: FaultProxy;
  slave: RunningMupdated;
  dataDir: string;
}

let master: RunningMupdated | undefined;
let masterDir = '';
const followers: Follower[] = [];
const rand = prng(SEED);
let gen: ChangeGenerator;
/** Server->client bytes of a mupdated master's banner and login answer (measured on the first connection). */
let authEnd = 0;
const stats = { faults: 0, midDump: 0, midFullDump: 0, midIncremental: 0 };

function slaveConfig(resume: boolean) {
  return { slave_resume: resume, slave_dump_timeout: DUMP_TIMEOUT };
}

async function startFollowerSlave(f: { resume: boolean; proxy: FaultProxy; dataDir?: string }): Promise<RunningMupdated> {
  return startSlave({
    master: f.proxy.port,
    retryDelay: RETRY_DELAY,
    config: slaveConfig(f.resume),
    ...(f.dataDir ? { dataDir: f.dataDir } : {}),
  });
}

/** PLAIN only, so the slaves' first command after login is their second line (checked below). */
const PLAIN_ONLY = { sasl_mech_list: 'PLAIN' };

async function restartMaster(): Promise<void> {
  master = await startMupdated({ dataDir: masterDir, config: PLAIN_ONLY });
  for (const f of followers) f.proxy.retarget(master.port);
}

test.before(async () => {
  master = await startMupdated({ config: PLAIN_ONLY });
  masterDir = master.dataDir;
  await populate(
    () => login(master!.port),
    BASE_ENTRIES,
    (i) => ({
      name: `user.base${i}`,
      location: ChangeGenerator.locationOf(`user.base${i}`),
      acl: `base${i}\tlrswipkxtecdan\t`,
    }),
  );
  const names = [
    ...Array.from({ length: BASE_ENTRIES }, (_, i) => `user.base${i}`),
    ...Array.from({ length: 300 }, (_, i) => `user.extra${i}`),
    'user.t.x',
    'user.t.x.y',
    'user.t.x-y',
    'user.t.x y',
    'user.t.x_y',
  ];
  gen = new ChangeGenerator(prng(SEED + 1), names);
  gen.seed(names.slice(0, BASE_ENTRIES));
  for (const resume of [true, false]) {
    const proxy = await FaultProxy.start({ targetPort: master.port });
    const slave = await startFollowerSlave({ resume, proxy });
    followers.push({ name: resume ? 'slave (XRESUME)' : 'slave (slave_resume: no)', resume, proxy, slave, dataDir: slave.dataDir });
  }
  for (const f of followers) {
    const c = await f.proxy.waitForConnection(0);
    await c.waitForLine('S', /^U01 OK /, 60_000);
    const auth = await c.waitForLine('S', /^A01 OK /);
    authEnd = auth.line.end;
  }
});

test.after.always(async () => {
  for (const f of followers) {
    await f.slave.stop('SIGKILL');
    await f.proxy.close();
    removeDir(f.dataDir);
  }
  await master?.stop('SIGKILL');
  if (masterDir) removeDir(masterDir);
});

/** Whether the connection is open and past its dump (its tagged OK forwarded). */
function isStreaming(c: ProxyConn | undefined): boolean {
  return !!c && !c.isClosed && dumpCompleted(c);
}

/** Whether the connection forwarded its dump's tagged OK. */
function dumpCompleted(c: ProxyConn): boolean {
  return c.serverLines().some((l) => l.tag === 'U01' && l.word === 'OK');
}

async function allInSync(t: import('ava').ExecutionContext, context: string): Promise<void> {
  for (const f of followers) {
    const { slave, master: m } = await waitInSync(f.slave.port, master!.port, 40_000);
    if (!same(slave, m)) {
      assertionFailed = true;
      const conns = f.proxy.conns.slice(-4).map((c) => ({
        id: c.id,
        refused: c.refused,
        closedBy: c.closedBy,
        fault: c.faultFired,
        tail: c.lines.slice(-6).map((l) => `${l.dir}: ${l.text.replace(/\r\n/g, ' ').slice(0, 100)}`),
      }));
      t.log(
        `${f.name} diverged; status ${JSON.stringify(readStatus(f.dataDir))}; last logs:\n${f.slave.logs.slice(-15).join('\n')}\n` +
          `proxy connections: ${JSON.stringify(conns, null, 1)}\nonly on the slave: ${JSON.stringify(slave.filter((l) => !m.includes(l)).slice(0, 10))}\n` +
          `only on the master: ${JSON.stringify(m.filter((l) => !slave.includes(l)).slice(0, 10))}`,
      );
    }
    t.deepEqual(slave, m, `${f.name} equals the master ${context} (SLAVE_FAULT_SEED=${SEED})`);
  }
}

test.serial('initial sync: both slaves (XRESUME and plain UPDATE) equal the master', async (t) => {
  t.log(`SLAVE_FAULT_SEED=${SEED} rounds=${ROUNDS}`);
  await allInSync(t, 'after the first sync');
  t.is((await listOf(followers[0].slave.port)).length, BASE_ENTRIES);
  t.regex(followers[0].proxy.conns[0].clientLines()[1].text, /^U01 XRESUME /);
  t.is(followers[1].proxy.conns[0].clientLines()[1].text, 'U01 UPDATE');
});

/** One schedule; returns a line for the log. */
async function round(t: import('ava').ExecutionContext, index: number): Promise<string> {
  const f = followers[rand() < 0.5 ? 0 : 1];
  const kind = KINDS[Math.floor(rand() * KINDS.length)];
  const where = `round ${index} (${kind}, ${f.name}, SLAVE_FAULT_SEED=${SEED})`;

  if (kind === 'cut-stream') {
    // Cut while changes stream (no dump involved): only the end state is checked.
    const cmds = gen.batch(50 + Math.floor(rand() * 200));
    // An earlier round may have closed this slave's connection without costing it an entry (the master
    // killed for the other slave, a cut armed earlier that fired late): its copy is equal, but it is
    // still reconnecting. Wait for it to stream again.
    await waitUntil(() => isStreaming(f.proxy.latest), 30_000, `${where}: ${f.name} to stream again`, 50);
    const current = f.proxy.latest;
    if (!current) throw new Error(`${where}: no connection`);
    f.proxy.arm(current, { atServerByte: current.s2c.forwarded + Math.floor(rand() * cmds.length * 40), action: 'cut' });
    await applyChanges(master!.port, cmds);
    await allInSync(t, `after ${where}`);
    return `${where}: ${cmds.length} changes, cut ${current.faultFired ? 'fired' : 'not reached'}`;
  }

  // The master is unreachable for this slave while changes happen.
  f.proxy.refusing = true;
  f.proxy.cutAll();
  await waitUntil(() => readStatus(f.dataDir)?.state !== 'streaming', 10_000, `${f.name} to notice the cut`);
  const changes = f.resume ? 20 + Math.floor(rand() * 280) : Math.floor(rand() * 200);
  await applyChanges(master!.port, gen.batch(changes));
  const before = await listOf(f.slave.port);

  // Where the fault fires: somewhere in the dump (an estimate of its size that stays below it).
  const estimate = f.resume ? 45 + changes * 35 : before.length * 55;
  const stallLike = kind === 'stall' || kind === 'kill-master' || kind === 'kill-slave';
  const lowest = stallLike ? authEnd : 0;
  const at = lowest + Math.floor(rand() * (estimate + authEnd - lowest));
  if (kind === 'delay') {
    f.proxy.delayServerMs = 1 + Math.floor(rand() * 15);
    f.proxy.delayClientMs = Math.floor(rand() * 5);
  } else {
    const action: ConnPlan['action'] = kind === 'kill-master' || kind === 'kill-slave' ? 'hold' : kind;
    f.proxy.nextPlan = { atServerByte: at, action, thenRefuse: true };
  }
  f.proxy.refusing = false;
  const conn = await f.proxy.nextForwarded(30_000);
  let note = '';
  if (kind === 'delay') {
    await conn.waitForLine('S', /^U01 OK /, 60_000);
    f.proxy.delayServerMs = 0;
    f.proxy.delayClientMs = 0;
    note = 'dump completed under delay';
  } else {
    await conn.fault(60_000);
    if (kind === 'stall') {
      // The slave itself must give up on the stalled dump (or the unanswered NOOP).
      t.is(await conn.closed(30_000), 'client', `${where}: the slave abandons a stalled connection`);
    } else if (kind === 'kill-master') {
      await master!.stop('SIGKILL');
      conn.cut();
    } else if (kind === 'kill-slave') {
      await f.slave.stop('SIGKILL');
      conn.cut();
      f.slave = await startFollowerSlave(f);
    }
    const completed = dumpCompleted(conn);
    stats.faults++;
    if (!completed) {
      stats.midDump++;
      if (f.resume) stats.midIncremental++;
      else stats.midFullDump++;
      // The master is unreachable now (thenRefuse): nothing of the cut dump may show.
      const after = await listOf(f.slave.port);
      if (!same(after, before)) assertionFailed = true;
      t.true(after.length >= before.length, `${where}: ${after.length} entries after the fault, ${before.length} before the dump started`);
      t.deepEqual(after, before, `${where}: an incomplete dump changes nothing`);
    }
    note = `fault at byte ${at} of ~${estimate + authEnd}, ${completed ? 'after the dump completed' : 'mid-dump'}`;
    if (kind === 'kill-master') await restartMaster();
    f.proxy.refusing = false;
  }
  await allInSync(t, `after ${where}`);
  return `${where}: ${changes} changes while away, ${note}`;
}

/** Set by the checks below when a comparison failed in the current round. */
let assertionFailed = false;

/** Set once a round failed: a diverged slave stays diverged, so later rounds would only repeat the failure slowly. */
let failedRound = 0;

for (let i = 1; i <= ROUNDS; i++) {
  test.serial(`C47 fault schedule ${i}/${ROUNDS}: the slave never loses entries to a cut dump and ends equal to the master`, async (t) => {
    if (failedRound) return t.fail(`not run: round ${failedRound} failed (SLAVE_FAULT_SEED=${SEED})`);
    t.timeout(120_000);
    failedRound = i;
    t.log(await round(t, i));
    if (!assertionFailed) failedRound = 0;
  });
}

test.serial('the schedules cut full and incremental dumps mid-way', (t) => {
  t.log(`faults ${stats.faults}, mid-dump ${stats.midDump} (full ${stats.midFullDump}, incremental ${stats.midIncremental})`);
  // Most injected faults must hit a dump before its OK, or the invariant above was barely exercised.
  t.true(stats.midDump * 2 >= stats.faults, `only ${stats.midDump} of ${stats.faults} faults hit a dump mid-way`);
  if (ROUNDS >= 20) t.true(stats.midFullDump >= 1 && stats.midIncremental >= 1, 'both dump kinds were cut');
});
