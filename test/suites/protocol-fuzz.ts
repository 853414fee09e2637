/**
 * Seeded protocol fuzzing against a running mupdated: in each round, logged-in
 * junk connections send grammar-aware garbage (random tags and command words,
 * quoted strings, {n+} and {n} literals with wrong counts, odd names and
 * locations, raw bytes, stray line ends, cut pieces) while one tracked
 * connection sends well-formed writes (ACTIVATE, RESERVE, DEACTIVATE,
 * DELETE) in every string syntax, pipelined and split at random points, on
 * names no junk connection uses. Afterwards the server is still running and
 * logged no error, every tracked name is in the state its answered writes
 * give (an OK applies the write, a NO or BAD leaves nothing of it), and a
 * restart on the same data shows exactly the same directory.
 *
 * Bounded by count (rounds, connections, commands), not by time.
 */
import test from 'ava';
import { RawClient } from '../helpers/raw-client.js';
import { removeDir, type RunningMupdated } from '../helpers/server.js';
import { prng } from '../helpers/prng.js';
import { apply, lit, listSorted, q, sorted, type Model } from '../helpers/directory.js';
import type { ServerFactory } from '../helpers/server-factory.js';

const ROUNDS = 6;
const JUNK_CONNECTIONS = 3;
const JUNK_COMMANDS = 30;
const TRACKED_COMMANDS = 40;
const TRACKED_NAMES = 6;

type Rand = () => number;
const pick = <T>(rand: Rand, items: readonly T[]): T => items[Math.floor(rand() * items.length)];

/** Junk names and locations: odd bytes and shapes, never the tracked names' prefix. */
const JUNK_NAMES = ['user.a', 'user.a.sub', 'x', '', 'user.\u00e9', 'a b', 'user."q"', 'user\\x', 'u'.repeat(300), 'user.a\u0001'];
const JUNK_LOCATIONS = ['backend1!default', 'backend2!p', 'backend1', '!', 'b!', '!p', 'backend1!default!x', 'x y!z', ''];
const JUNK_ACLS = ['', 'anyone\tlrs\t', 'bob\tlrswipkxtecdan\t', 'a\tb', '\t\t', 'x'.repeat(1000), 'bob\tlr\tbob\tlr\t'];
const JUNK_WORDS = [
  ...['ACTIVATE', 'RESERVE', 'DEACTIVATE', 'DELETE', 'FIND', 'LIST', 'UPDATE', 'NOOP', 'activate', 'BOGUS', ''],
  ...['AUTHENTICATE', 'STARTTLS', 'COMPRESS', 'LOGOUT'],
];
const JUNK_TOKENS = ['NIL', '(', ')', '{', '}', '\\', '"', '{99999999999999}', '{-1+}', '{1+}\r\n'];

/** A string argument in a random (sometimes broken) syntax. */
function junkString(rand: Rand, value: string): Buffer {
  const bytes = Buffer.from(value, 'utf8');
  const r = rand();
  if (r < 0.45) return Buffer.from(q(value), 'utf8');
  if (r < 0.7) return Buffer.concat([Buffer.from(`{${bytes.length}+}\r\n`), bytes]);
  if (r < 0.8) return Buffer.concat([Buffer.from(`{${bytes.length}}\r\n`), bytes]);
  if (r < 0.87) return bytes; // an atom
  if (r < 0.94) return Buffer.from(`{${Math.floor(rand() * 200)}+}\r\n`); // a count its data does not match
  return Buffer.from(`"${value}`); // an unclosed quote
}

/** Arguments of the writes: sent with the right count half of the time, so some junk lands in the directory. */
const WRITE_ARGS: Record<string, Array<readonly string[]>> = {
  ACTIVATE: [JUNK_NAMES, JUNK_LOCATIONS, JUNK_ACLS],
  RESERVE: [JUNK_NAMES, JUNK_LOCATIONS],
  DEACTIVATE: [JUNK_NAMES, JUNK_LOCATIONS],
  DELETE: [JUNK_NAMES],
};

function junkArgument(rand: Rand): Buffer {
  const k = rand();
  if (k < 0.35) return junkString(rand, pick(rand, JUNK_NAMES));
  if (k < 0.6) return junkString(rand, pick(rand, JUNK_LOCATIONS));
  if (k < 0.8) return junkString(rand, pick(rand, JUNK_ACLS));
  if (k < 0.9) return Buffer.from(pick(rand, JUNK_TOKENS));
  return Buffer.from(Array.from({ length: Math.floor(rand() * 40) }, () => Math.floor(rand() * 256)));
}

function junkCommand(rand: Rand): Buffer {
  // Tags never start with W: those are the tracked connection's.
  const tag = pick(rand, ['T1', 'a', 'X'.repeat(Math.floor(rand() * 70)), '*', '+', '1', 'T\u00ff']);
  const word = pick(rand, JUNK_WORDS);
  const parts: Buffer[] = [Buffer.from(`${tag} ${word}`, 'utf8')];
  const shape = WRITE_ARGS[word];
  if (shape && rand() < 0.5) {
    for (const values of shape) parts.push(Buffer.from(' '), junkString(rand, pick(rand, values)));
  } else {
    const args = Math.floor(rand() * 5);
    for (let i = 0; i < args; i++) parts.push(Buffer.from(' '), junkArgument(rand));
  }
  parts.push(Buffer.from(pick(rand, ['\r\n', '\r\n', '\r\n', '\n', '\r', ''])));
  return Buffer.concat(parts);
}

/** A well-formed string argument: quoted, {n+} or {n} (its data sent without waiting for "+ go ahead"). */
function wellFormed(rand: Rand, value: string): string {
  const r = rand();
  if (r < 0.4 && !/[\r\n\0]/.test(value)) return q(value);
  if (r < 0.8) return lit(value);
  return `{${Buffer.byteLength(value, 'latin1')}}\r\n${value}`;
}

interface TrackedWrite {
  tag: string;
  text: string;
  /** What an OK does to the model. */
  effect: (model: Model) => void;
}

function trackedWrite(rand: Rand, tag: string): TrackedWrite {
  const name = `user.fzw.${Math.floor(rand() * TRACKED_NAMES)}`;
  const location = pick(rand, ['backend1!default', 'backend1!p2']);
  const acl = pick(rand, ['', 'anyone\tlrs\t', `owner${Math.floor(rand() * 9)}\tlrswipkxtecdan\t`]);
  const s = (v: string) => wellFormed(rand, v);
  const op = rand();
  if (op < 0.4) {
    return {
      tag,
      text: `ACTIVATE ${s(name)} ${s(location)} ${s(acl)}`,
      effect: (m) => apply(m, [{ kind: 'MAILBOX', args: [name, location, acl] }]),
    };
  }
  if (op < 0.65) {
    return { tag, text: `RESERVE ${s(name)} ${s(location)}`, effect: (m) => apply(m, [{ kind: 'RESERVE', args: [name, location] }]) };
  }
  if (op < 0.8) {
    return { tag, text: `DEACTIVATE ${s(name)} ${s(location)}`, effect: (m) => apply(m, [{ kind: 'RESERVE', args: [name, location] }]) };
  }
  return { tag, text: `DELETE ${s(name)}`, effect: (m) => apply(m, [{ kind: 'DELETE', args: [name] }]) };
}

/** Sends `data` in random pieces, sometimes pausing between them. */
async function sendInPieces(rand: Rand, c: RawClient, data: Buffer): Promise<void> {
  let rest = data;
  while (rest.length > 0 && !c.ended) {
    const n = rand() < 0.5 ? rest.length : 1 + Math.floor(rand() * Math.min(rest.length, 64));
    c.send(rest.subarray(0, n));
    rest = rest.subarray(n);
    if (rand() < 0.3) await new Promise((resolve) => setTimeout(resolve, Math.floor(rand() * 5)));
  }
}

async function junkConnection(rand: Rand, port: number): Promise<void> {
  const c = await RawClient.login(port);
  const commands = Array.from({ length: JUNK_COMMANDS }, () => junkCommand(rand));
  await sendInPieces(rand, c, Buffer.concat(commands));
  await new Promise((resolve) => setTimeout(resolve, 50));
  if (rand() < 0.5) c.socket.end();
  else c.close();
}

/** Sends the round's tracked writes pipelined and applies each answered OK to the model, in order. */
async function trackedConnection(rand: Rand, port: number, round: number, model: Model, answers: Map<string, number>): Promise<void> {
  const c = await RawClient.login(port);
  const writes = Array.from({ length: TRACKED_COMMANDS }, (_, i) => trackedWrite(rand, `W${round}x${i}`));
  await sendInPieces(rand, c, Buffer.from(writes.map((w) => `${w.tag} ${w.text}\r\n`).join(''), 'latin1'));
  for (const w of writes) {
    const lines = (await c.readUntilTagged(w.tag, 30_000)).filter((l) => l !== '+ go ahead');
    const answer = lines.pop()!;
    if (lines.length > 0 || !/ (OK|NO|BAD) "[^"]*"$/.test(answer))
      throw new Error(`${w.tag} ${w.text}: answered ${JSON.stringify([...lines, answer])}`);
    const word = `${w.text.split(' ')[0]} ${answer.split(' ')[1]}`;
    answers.set(word, (answers.get(word) ?? 0) + 1);
    if (/^W\S+ OK /.test(answer)) w.effect(model);
  }
  c.close();
}

/** The directory `port` shows once it equals `expected`, or its last answer after 10 s (another node may lag a moment). */
async function sameDirectorySoon(port: number, expected: unknown): Promise<Awaited<ReturnType<typeof listSorted>>> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const now = await listSorted(port);
    if (JSON.stringify(now) === JSON.stringify(expected) || Date.now() > deadline) return now;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** Registers the test on servers made by `start` (a single master, or a cluster node). */
/**
 * `peer`, on a cluster: starts a second node on the first's directory. Then
 * junk and tracked rounds alternate between the two nodes, and both must
 * show the same directory at the end.
 */
export function protocolFuzzTests(start: ServerFactory, peer?: (first: RunningMupdated) => Promise<RunningMupdated>): void {
  test('seeded protocol fuzzing: junk beside tracked writes leaves the server running, without errors, each tracked name as its answers say, and the same directory after a restart', async (t) => {
    const rand = prng(0xf022);
    let server = await start();
    const dataDir = server.dataDir;
    const other = peer ? await peer(server) : undefined;
    try {
      const model: Model = new Map();
      const answers = new Map<string, number>();
      for (let round = 0; round < ROUNDS; round++) {
        // Each connection gets its own random stream, so their interleaving does not change what they send.
        const seeds = Array.from({ length: JUNK_CONNECTIONS + 1 }, () => Math.floor(rand() * 2 ** 32));
        const portOf = (i: number) => (other && (round + i) % 2 === 1 ? other.port : server.port);
        await Promise.all([
          trackedConnection(prng(seeds[0]), portOf(0), round, model, answers),
          ...seeds.slice(1).map((seed, i) => junkConnection(prng(seed), portOf(i + 1))),
        ]);
      }
      t.log(`tracked answers: ${[...answers].map(([k, n]) => `${k} ${n}`).join(', ')}`);
      for (const s of other ? [server, other] : [server]) {
        t.is(s.child.exitCode, null, 'the server is still running');
        t.deepEqual(
          s.logs.filter((l) => /"level":(50|60)/.test(l)),
          [],
          'no error logged',
        );
      }
      const before = await listSorted(server.port);
      if (other) t.deepEqual(await sameDirectorySoon(other.port, before), before, 'the other node shows the same directory');
      const tracked = before.filter(([name]) => name.startsWith('user.fzw'));
      t.deepEqual(tracked, sorted(model));
      t.log(`${tracked.length} tracked and ${before.length - tracked.length} junk entries`);
      t.true(model.size > 0 && before.length > tracked.length, 'both the tracked and the junk connections left entries');
      await server.stop();
      server = await start({ dataDir });
      t.deepEqual(await listSorted(server.port), before, 'the same directory after a restart');
    } finally {
      await other?.stop();
      if (other) removeDir(other.dataDir);
      await server.stop();
      removeDir(dataDir);
    }
  });
}
