/**
 * Crash safety (C37, C62): a master in a child process is SIGKILLed — right
 * after an OK, and at random moments under a concurrent write storm — and
 * after each restart on the same data folder every acknowledged change is
 * there with its exact location and ACL. Unacknowledged writes may or may not
 * be there. `CRASH_ROUNDS` (default 20) sets the number of storm rounds;
 * `npm run test:crash100` runs 100. `CRASH_SEED` replays a run.
 */
import test, { type ExecutionContext } from 'ava';
import { readFileSync, readlinkSync, realpathSync } from 'node:fs';
import { RawClient } from '../helpers/raw-client.js';
import { CLI, removeDir, type RunningMupdated } from '../helpers/server.js';
import { prng } from '../helpers/prng.js';
import { childrenOf } from '../helpers/processes.js';
import type { ServerFactory } from '../helpers/server-factory.js';

/** Storm rounds: CRASH_ROUNDS, else `defaultRounds` of the caller (20 for a single master). */
function roundsOr(defaultRounds: number): number {
  return Math.max(1, Number.parseInt(process.env.CRASH_ROUNDS ?? String(defaultRounds), 10) || defaultRounds);
}
const SEED = Number.parseInt(process.env.CRASH_SEED ?? '', 10) || Date.now() % 2 ** 31;
const CONNECTIONS = 8;

/** Upper bound of commands per connection per round (keeps every loop bounded). */
const MAX_OPS_PER_CONNECTION = 2000;
const KILL_DELAY_MS: [number, number] = [50, 400];

type State = { kind: 'absent' } | { kind: 'MAILBOX'; location: string; acl: string } | { kind: 'RESERVE'; location: string };

const ABSENT: State = { kind: 'absent' };

function show(s: State | undefined): string {
  if (!s || s.kind === 'absent') return 'absent';
  return s.kind === 'MAILBOX' ? `MAILBOX ${JSON.stringify(s.location)} ${JSON.stringify(s.acl)}` : `RESERVE ${JSON.stringify(s.location)}`;
}

function same(a: State, b: State): boolean {
  return show(a) === show(b);
}

/** What the test knows about one name. */
interface Known {
  /** The state known to be durable before the current round (verified after a restart). */
  settled: State;
  /** This round's changes, in the order sent (one connection per name, at most one in flight). */
  ops: Array<{ after: State; acked: boolean }>;
}

/** The states the directory may show for a name after a crash. */
function acceptable(k: Known): State[] {
  let last = -1;
  k.ops.forEach((op, i) => {
    if (op.acked) last = i;
  });
  return last < 0 ? [k.settled, ...k.ops.map((o) => o.after)] : k.ops.slice(last).map((o) => o.after);
}

function q(s: string): string {
  return `"${s}"`;
}

function command(tag: string, name: string, s: State): string {
  if (s.kind === 'absent') return `${tag} DELETE ${q(name)}\r\n`;
  if (s.kind === 'RESERVE') return `${tag} RESERVE ${q(name)} ${q(s.location)}\r\n`;
  return `${tag} ACTIVATE ${q(name)} ${q(s.location)} ${q(s.acl)}\r\n`;
}

/**
 * Registers the tests on servers made by `start` (a single master, or a
 * cluster node); the storm has CRASH_ROUNDS rounds, else `defaultRounds`.
 */
export function crashTests(start: ServerFactory, defaultRounds = 20): void {
  const ROUNDS = roundsOr(defaultRounds);
  /** Commands each storm connection keeps in flight. */
  const WINDOW = 8;

  /**
   * Parses FIND/LIST output (`<tag> MAILBOX {n+}`, `name {m+}`, `location {k+}`,
   * `acl` — each literal body is the first n bytes of the following line).
   */
  function parseEntries(tag: string, lines: string[]): Map<string, State> {
    const out = new Map<string, State>();
    let i = 0;
    const literal = (n: number): { body: string; next: number | null } => {
      const line = lines[i++];
      const body = line.slice(0, n);
      const rest = line.slice(n);
      if (rest === '') return { body, next: null };
      const m = /^ \{(\d+)\+\}$/.exec(rest);
      if (!m) throw new Error(`unexpected text after a literal: ${JSON.stringify(line)}`);
      return { body, next: Number(m[1]) };
    };
    while (i < lines.length) {
      const head = lines[i++];
      if (i === lines.length) {
        if (!new RegExp(`^${tag} OK "`).test(head)) throw new Error(`bad final line ${JSON.stringify(head)}`);
        break;
      }
      const m = new RegExp(`^${tag} (MAILBOX|RESERVE) \\{(\\d+)\\+\\}$`).exec(head);
      if (!m) throw new Error(`unexpected line ${JSON.stringify(head)}`);
      const name = literal(Number(m[2]));
      if (name.next === null) throw new Error(`entry ${name.body} without a location`);
      const location = literal(name.next);
      if (m[1] === 'MAILBOX') {
        if (location.next === null) throw new Error(`MAILBOX ${name.body} without an ACL`);
        const acl = literal(location.next);
        if (acl.next !== null) throw new Error(`MAILBOX ${name.body} with a fourth argument`);
        out.set(name.body, { kind: 'MAILBOX', location: location.body, acl: acl.body });
      } else {
        if (location.next !== null) throw new Error(`RESERVE ${name.body} with a third argument`);
        out.set(name.body, { kind: 'RESERVE', location: location.body });
      }
    }
    return out;
  }

  /**
   * Checks that `server.child` is the mupdated node process itself (spawned
   * without a shell), so SIGKILL hits the server and nothing survives it.
   */
  function assertChildIsServer(t: ExecutionContext, server: RunningMupdated): number {
    const pid = server.child.pid!;
    t.is(server.child.spawnfile, process.execPath, 'spawned directly, no shell');
    t.is(server.child.spawnargs[1], CLI);
    if (process.platform === 'linux') {
      t.is(realpathSync(readlinkSync(`/proc/${pid}/exe`)), realpathSync(process.execPath), 'the pid is a node binary');
      const argv = readFileSync(`/proc/${pid}/cmdline`, 'latin1').split('\0');
      t.is(argv[1], CLI, 'the pid runs the mupdated CLI');
      t.is(argv[2], 'master');
      t.deepEqual(childrenOf(pid), [], 'the server has no child processes that a SIGKILL would leave behind');
    }
    return pid;
  }

  async function sigkill(t: ExecutionContext, server: RunningMupdated, pid: number): Promise<void> {
    await server.stop('SIGKILL');
    t.is(server.child.signalCode, 'SIGKILL', 'the server died of SIGKILL');
    t.throws(() => process.kill(pid, 0), { code: 'ESRCH' }, 'the server process is gone');
  }

  async function find(c: RawClient, tag: string, name: string): Promise<State> {
    c.send(`${tag} FIND ${q(name)}\r\n`);
    const entries = parseEntries(tag, await c.readUntilTagged(tag));
    if (entries.size > 1 || (entries.size === 1 && !entries.has(name))) {
      throw new Error(`FIND ${name} answered ${[...entries.keys()].join(', ')}`);
    }
    return entries.get(name) ?? ABSENT;
  }

  /** One storm connection: keeps WINDOW commands in flight until the server dies or the budget is spent. */
  async function storm(
    c: RawClient,
    round: number,
    conn: number,
    rand: () => number,
    known: Map<string, Known>,
    stats: { sent: number; acked: number; firstAck: () => void; errors: string[]; killed: () => boolean },
  ): Promise<void> {
    /** This connection's names with no command in flight. */
    const idle: string[] = [];
    const inflight: Array<{ tag: string; name: string; op: { after: State; acked: boolean } }> = [];
    let n = 0;
    /**
     * A location and ACL; a name keeps its server (only the partition and the
     * ACL change), so no write is a duplicate claim under the default conflict
     * policy and every command must get OK.
     */
    const server = new Map<string, string>();
    const variant = (name: string) => {
      const host = server.get(name) ?? `backend${1 + Math.floor(rand() * 3)}`;
      server.set(name, host);
      const location = `${host}!${rand() < 0.8 ? 'default' : 'ssd'}`;
      return { location, acl: rand() < 0.1 ? '' : `u${round}c${conn}n${n}\tlrswipkxtecdan\tanyone\tlr\t` };
    };
    const sendOne = () => {
      const p = rand();
      let name: string;
      let after: State;
      if (p < 0.65 || idle.length === 0) {
        name = `user.crash${round}.c${conn}.n${n}`;
        after = { kind: 'MAILBOX', ...variant(name) };
      } else if (p < 0.75) {
        name = `user.crash${round}.c${conn}.n${n}`;
        after = { kind: 'RESERVE', location: variant(name).location };
      } else {
        name = idle.splice(Math.floor(rand() * idle.length), 1)[0]!;
        const cur = known.get(name)!.ops.at(-1)!.after;
        // DELETE a present name; otherwise (re-)ACTIVATE over whatever is there
        after = p < 0.88 && cur.kind !== 'absent' ? ABSENT : { kind: 'MAILBOX', ...variant(name) };
      }
      const tag = `R${round}C${conn}N${n++}`;
      const op = { after, acked: false };
      const k = known.get(name) ?? { settled: ABSENT, ops: [] };
      k.ops.push(op);
      known.set(name, k);
      inflight.push({ tag, name, op });
      stats.sent++;
      c.send(command(tag, name, after));
    };
    for (let i = 0; i < WINDOW; i++) sendOne();
    while (inflight.length > 0) {
      let line: string;
      try {
        line = await c.readLine(10_000);
      } catch (err) {
        if (!stats.killed()) stats.errors.push(`connection ${conn} failed before the kill: ${(err as Error).message}`);
        return;
      }
      const head = inflight.shift()!;
      if (line !== `${head.tag} OK "done"`) {
        stats.errors.push(`connection ${conn}: expected ${head.tag} OK "done", got ${JSON.stringify(line)}`);
        c.close();
        return;
      }
      head.op.acked = true;
      stats.acked++;
      stats.firstAck();
      idle.push(head.name);
      if (n < MAX_OPS_PER_CONNECTION) sendOne();
    }
  }

  test.serial('C37 C62 an acknowledged ACTIVATE, DELETE and RESERVE each survive a SIGKILL right after the OK', async (t) => {
    let server = await start();
    const dataDir = server.dataDir;
    try {
      const steps: Array<{ name: string; cmd: State; expect: State }> = [
        {
          name: 'user.c37',
          cmd: { kind: 'MAILBOX', location: 'backend1!default', acl: 'c37\tlrswipkxtecdan\t' },
          expect: { kind: 'MAILBOX', location: 'backend1!default', acl: 'c37\tlrswipkxtecdan\t' },
        },
        {
          name: 'user.c37',
          cmd: { kind: 'MAILBOX', location: 'backend1!ssd', acl: '' },
          expect: { kind: 'MAILBOX', location: 'backend1!ssd', acl: '' },
        },
        { name: 'user.c37', cmd: ABSENT, expect: ABSENT },
        {
          name: 'user.c62',
          cmd: { kind: 'RESERVE', location: 'backend3!default' },
          expect: { kind: 'RESERVE', location: 'backend3!default' },
        },
      ];
      for (const [i, step] of steps.entries()) {
        const pid = assertChildIsServer(t, server);
        const c = await RawClient.login(server.port);
        c.send(command(`W${i}`, step.name, step.cmd));
        const ok = await c.readLine();
        server.child.kill('SIGKILL'); // synchronously, the moment the OK is read
        t.is(ok, `W${i} OK "done"`);
        await sigkill(t, server, pid);
        c.close();
        server = await start({ dataDir });
        const r = await RawClient.login(server.port);
        t.is(show(await find(r, `F${i}`, step.name)), show(step.expect), `after SIGKILL ${i}: ${step.name}`);
        r.close();
      }
      // what an earlier step wrote is still right after later crashes
      const r = await RawClient.login(server.port);
      t.is(show(await find(r, 'F9', 'user.c37')), 'absent');
      t.is(show(await find(r, 'F10', 'user.c62')), show({ kind: 'RESERVE', location: 'backend3!default' }));
      r.close();
    } finally {
      await server.stop('SIGKILL');
      removeDir(dataDir);
    }
  });

  test.serial(`C37 C62 ${ROUNDS} SIGKILLs at random moments of an ACTIVATE/DELETE/RESERVE storm lose no acknowledged change`, async (t) => {
    t.timeout(60_000 + ROUNDS * 10_000);
    const rand = prng(SEED);
    t.log(`CRASH_SEED=${SEED} rounds=${ROUNDS}`);
    const known = new Map<string, Known>();
    let server = await start();
    const dataDir = server.dataDir;
    const perRound: string[] = [];
    let midStorm = 0;
    try {
      // round ROUNDS is only the check after the last kill
      for (let round = 0; round <= ROUNDS; round++) {
        if (round > 0) server = await start({ dataDir });
        const pid = assertChildIsServer(t, server);

        // -- after the restart: every acknowledged change is there, nothing else is
        const v = await RawClient.login(server.port);
        v.send('L LIST\r\n');
        const listed = parseEntries('L', await v.readUntilTagged('L', 60_000));
        const bad: string[] = [];
        let present = 0;
        let unackedKept = 0;
        for (const [name, k] of known) {
          const got = listed.get(name) ?? ABSENT;
          if (!acceptable(k).some((s) => same(s, got))) {
            bad.push(`${name}: got ${show(got)}, acceptable ${acceptable(k).map(show).join(' | ')}`);
          }
          if (got.kind !== 'absent') present++;
          let lastAcked = -1;
          k.ops.forEach((op, i) => {
            if (op.acked) lastAcked = i;
          });
          if (
            k.ops.length > 0 &&
            lastAcked < k.ops.length - 1 &&
            same(got, k.ops.at(-1)!.after) &&
            !same(got, lastAcked < 0 ? k.settled : k.ops[lastAcked].after)
          )
            unackedKept++;
          k.settled = got;
          k.ops = [];
        }
        for (const name of listed.keys()) if (!known.has(name)) bad.push(`${name}: never written, listed as ${show(listed.get(name))}`);
        t.deepEqual(bad.slice(0, 20), [], `round ${round}: ${bad.length} wrong entries after restart`);
        t.is(listed.size, present);
        if (round > 0) perRound[round - 1] += ` (+${unackedKept} unacked kept)`;
        // FIND agrees with LIST on a sample
        const names = [...known.keys()];
        for (let i = 0; i < Math.min(20, names.length); i++) {
          const name = names[Math.floor(rand() * names.length)];
          t.is(show(await find(v, `F${i}`, name)), show(known.get(name)!.settled), `FIND ${name}`);
        }
        // a fresh write works
        const probe = `user.crashprobe${round}`;
        const probeState: State = { kind: 'MAILBOX', location: 'probe!default', acl: `p${round}\tlrs\t` };
        v.send(command('P', probe, probeState));
        t.deepEqual(await v.readUntilTagged('P'), ['P OK "done"']);
        known.set(probe, { settled: ABSENT, ops: [{ after: probeState, acked: true }] });
        t.is(show(await find(v, 'PF', probe)), show(probeState));
        v.close();
        if (round === ROUNDS) break;

        // -- the storm, and a SIGKILL at a random moment of it
        const clients = await Promise.all(Array.from({ length: CONNECTIONS }, () => RawClient.login(server.port)));
        let killed = false;
        let onFirstAck!: () => void;
        const firstAck = new Promise<void>((res) => {
          onFirstAck = res;
        });
        const stats = { sent: 0, acked: 0, firstAck: onFirstAck, errors: [] as string[], killed: () => killed };
        const storms = clients.map((c, conn) => storm(c, round, conn, prng(SEED + round * 100 + conn), known, stats));
        const delay = KILL_DELAY_MS[0] + Math.floor(rand() * (KILL_DELAY_MS[1] - KILL_DELAY_MS[0]));
        let guard: NodeJS.Timeout | undefined;
        await Promise.race([
          firstAck,
          new Promise((r) => {
            guard = setTimeout(r, 20_000);
          }),
        ]);
        clearTimeout(guard);
        await new Promise((r) => setTimeout(r, delay));
        killed = true;
        const ackedAtKill = stats.acked;
        const inFlightAtKill = stats.sent - stats.acked;
        await sigkill(t, server, pid);
        await Promise.all(storms);
        for (const c of clients) c.close();
        t.deepEqual(stats.errors, [], `round ${round}`);
        t.true(stats.acked > 0, `round ${round}: the storm got acknowledgements before the kill`);
        if (inFlightAtKill > 0) midStorm++;
        perRound.push(`${stats.acked}/${stats.sent}`);
        t.log(
          `round ${round}: kill after ${delay} ms, acked ${stats.acked} (${ackedAtKill} when the kill was sent) of ${stats.sent} sent, ${known.size} names known`,
        );
      }

      t.log(`acked/sent per round: ${perRound.join(' ')}`);
      // the kill landed while commands were in flight (else this run tested nothing under load)
      t.true(midStorm > 0, 'at least one kill hit a storm with commands in flight');
    } finally {
      await server.stop('SIGKILL');
      removeDir(dataDir);
    }
  });
}
