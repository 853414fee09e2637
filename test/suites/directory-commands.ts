/**
 * The directory commands (spec 3.3-3.8, 4): ACTIVATE, RESERVE, DEACTIVATE,
 * DELETE, FIND, LIST, directory order and byte-exact storage, and
 * reservations surviving a restart. One shared server; every test uses its
 * own names (and locations where it LISTs), and tests that need the whole
 * directory to themselves start their own server.
 */
import test, { type ExecutionContext } from 'ava';
import { RawClient } from '../helpers/raw-client.js';
import { removeDir, type RunningMupdated } from '../helpers/server.js';
import {
  login,
  command,
  dataLines,
  lit,
  modelOf,
  q,
  readResponse,
  readUnit,
  sorted,
  expectDone,
  status,
  type Rec,
} from '../helpers/directory.js';
import { serverScope, type ServerFactory } from '../helpers/server-factory.js';

const DONE = (tag: string) => `${tag} OK "done"`;
const FOUND = (tag: string) => `${tag} OK "Search completed"`;

/** FIND as the exact lines RawClient reads. */
async function find(c: RawClient, tag: string, name: string): Promise<string[]> {
  c.send(`${tag} FIND ${lit(name)}\r\n`);
  return c.readUntilTagged(tag, 30_000);
}

/** Starts a full UPDATE stream and reads its dump; returns the client. */
async function listener(port: number, tag = 'U01'): Promise<RawClient> {
  const l = await login(port);
  l.send(`${tag} UPDATE\r\n`);
  const dump = await readResponse(l, tag, tag, 30_000);
  if (dump.status !== `${tag} OK "streaming starts"`) throw new Error(`UPDATE: ${dump.status}`);
  return l;
}

/** Records of a stream for names starting with a prefix, up to the NOOP's OK. */
async function streamedUntilNoop(l: RawClient, updateTag: string, noopTag: string, prefix: string): Promise<Rec[]> {
  l.send(`${noopTag} NOOP\r\n`);
  const r = await readResponse(l, updateTag, noopTag);
  if (r.status !== `${noopTag} OK "Noop done"`) throw new Error(`NOOP: ${r.status}`);
  return r.records.filter((x) => x.args[0].startsWith(prefix));
}

/** The 16 names of spec 4.5, in the order a Cyrus 3.6 master lists them. */
const CYRUS_ORDER = [
  'a!b.c',
  'a.b!c',
  'example.com!user.ann',
  'example.org!user.bob',
  'shared',
  'shared.folder',
  'user.John',
  'user.joh',
  'user.john',
  'user.john.Sent',
  'user.john.Sent.2024',
  'user.john x',
  'user.john-doe',
  'user.john_x',
  'user.johnny',
  'user.john!x',
];

function shuffled<T>(items: readonly T[]): T[] {
  const a = [...items];
  for (let i = a.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [a[i], a[j]] = [a[j], a[i]];
  }
  return a;
}

async function listedNames(port: number, order: readonly string[]): Promise<{ list: string[]; dump: string[] }> {
  const c = await login(port);
  let i = 0;
  for (const name of order) {
    const tag = `O${i++}`;
    if ((await status(c, tag, `ACTIVATE ${q(name)} "backend1!default" ""`)) !== DONE(tag)) throw new Error(`ACTIVATE ${name}`);
  }
  const list = await command(c, 'L1', 'LIST');
  if (list.status !== 'L1 OK "list complete"') throw new Error(list.status);
  const dump = await command(c, 'U1', 'UPDATE');
  if (dump.status !== 'U1 OK "streaming starts"') throw new Error(dump.status);
  c.close();
  return { list: list.records.map((r) => r.args[0]), dump: dump.records.map((r) => r.args[0]) };
}

/** Registers the tests on servers made by `start` (a single master, or a cluster node). */
export function directoryCommandTests(start: ServerFactory): void {
  const withServer = serverScope(start);
  let server: RunningMupdated;
  test.before(async () => {
    server = await start();
  });
  test.after.always(async () => {
    await server?.stop();
  });

  test('C24 ACTIVATE then FIND returns exactly the bytes sent', async (t) => {
    const c = await login(server.port);
    c.send('X1 ACTIVATE "user.c24" "backend1!default" "c24\tlrswipkxtecdan\t"\r\n');
    t.deepEqual(await c.readUntilTagged('X1', 30_000), ['X1 OK "done"']);
    c.send('X2 FIND "user.c24"\r\n');
    t.deepEqual(await c.readUntilTagged('X2', 30_000), [
      'X2 MAILBOX {8+}',
      'user.c24 {16+}',
      'backend1!default {19+}',
      'c24\tlrswipkxtecdan\t',
      'X2 OK "Search completed"',
    ]);
    // the same through {n+} literals, with an empty ACL and an ACL with several pairs
    c.send(`X3 ACTIVATE ${lit('user.c24.lit')} ${lit('backend2!ssd')} ${lit('')}\r\n`);
    t.deepEqual(await c.readUntilTagged('X3', 30_000), [DONE('X3')]);
    t.deepEqual(await find(c, 'X4', 'user.c24.lit'), ['X4 MAILBOX {12+}', 'user.c24.lit {12+}', 'backend2!ssd {0+}', '', FOUND('X4')]);
    const acl = 'alice\tlrswipkxtecdan\tanyone\tp\t-bob\tw\tgroup:staff\tlrs\t';
    c.send('X5 ACTIVATE {13}\r\n');
    t.is(await c.readLine(30_000), '+ go ahead');
    c.send(`user.c24.sync ${q('backend1!default')} ${lit(acl)}\r\n`);
    t.deepEqual(await c.readUntilTagged('X5', 30_000), [DONE('X5')]);
    t.deepEqual(await find(c, 'X6', 'user.c24.sync'), [
      ...dataLines('X6', 'MAILBOX', ['user.c24.sync', 'backend1!default', acl]),
      FOUND('X6'),
    ]);
    c.close();
  });

  /** ACTIVATE over reserved and active entries; `otherServer` is what taking an active entry from another server answers. */
  async function activateOver(t: ExecutionContext, port: number, p: string, otherServer: 'replaces' | 'refused'): Promise<void> {
    const c = await login(port);
    const a = `user.${p}.a`;
    const b = `user.${p}.b`;
    await expectDone(t, c, [
      ['A1', `ACTIVATE ${q(a)} "backend1!default" "a\tlrs\t"`],
      ['A2', `RESERVE ${q(b)} "backend1!default"`],
    ]);
    // over a reservation, from another server (a move or rename completing)
    t.is(await status(c, 'A3', `ACTIVATE ${q(b)} "backend2!other" "b\tlr\t"`), DONE('A3'));
    t.deepEqual(await find(c, 'A4', b), [...dataLines('A4', 'MAILBOX', [b, 'backend2!other', 'b\tlr\t']), FOUND('A4')]);
    // over an active entry of the same server, another partition, with an empty ACL
    t.is(await status(c, 'A5', `ACTIVATE ${q(a)} "backend1!x" ""`), DONE('A5'));
    t.deepEqual(await find(c, 'A6', a), [...dataLines('A6', 'MAILBOX', [a, 'backend1!x', '']), FOUND('A6')]);
    // over an active entry at the same location: only the ACL changes
    t.is(await status(c, 'A7', `ACTIVATE ${q(a)} "backend1!x" "new\tlrswipkxtecdan\t"`), DONE('A7'));
    t.deepEqual(await find(c, 'A8', a), [...dataLines('A8', 'MAILBOX', [a, 'backend1!x', 'new\tlrswipkxtecdan\t']), FOUND('A8')]);
    // over a reservation at the same location (a backend's RESERVE + ACTIVATE)
    const cc = `user.${p}.c`;
    await expectDone(t, c, [
      ['A9', `RESERVE ${q(cc)} "backend1!default"`],
      ['A10', `ACTIVATE ${q(cc)} "backend1!default" "c\tlrswipkxtecdan\t"`],
    ]);
    t.deepEqual(await find(c, 'A11', cc), [...dataLines('A11', 'MAILBOX', [cc, 'backend1!default', 'c\tlrswipkxtecdan\t']), FOUND('A11')]);
    // over an active entry held by another server
    const answer = await status(c, 'A12', `ACTIVATE ${q(a)} "backend3!default" "z\tlrs\t"`);
    if (otherServer === 'replaces') {
      t.is(answer, DONE('A12'));
      t.deepEqual(await find(c, 'A13', a), [...dataLines('A13', 'MAILBOX', [a, 'backend3!default', 'z\tlrs\t']), FOUND('A13')]);
    } else {
      t.regex(answer, /^A12 NO "[^"\r\n]+"$/, 'a refusal is a tagged NO with one quoted string');
      t.deepEqual(await find(c, 'A13', a), [...dataLines('A13', 'MAILBOX', [a, 'backend1!x', 'new\tlrswipkxtecdan\t']), FOUND('A13')]);
    }
    c.close();
  }

  test('C25 with conflict_policy: cyrus, ACTIVATE over a reserved or active entry at any location answers OK and replaces location and ACL', async (t) => {
    await withServer({ config: { conflict_policy: 'cyrus' } }, async (own) => {
      await activateOver(t, own.port, 'c25', 'replaces');
    });
  });

  test("C25 with the default conflict policy, ACTIVATE replaces reserved entries and its own server's entries; taking an active entry from another server is a tagged NO that changes nothing", async (t) => {
    await activateOver(t, server.port, 'c25d', 'refused');
  });

  test('C26 RESERVE of a new name answers OK and FIND returns RESERVE with 2 arguments', async (t) => {
    const c = await login(server.port);
    c.send('R1 RESERVE "user.c26" "backend1!default"\r\n');
    t.deepEqual(await c.readUntilTagged('R1', 30_000), [DONE('R1')]);
    t.deepEqual(await find(c, 'R2', 'user.c26'), ['R2 RESERVE {8+}', 'user.c26 {16+}', 'backend1!default', FOUND('R2')]);
    c.close();
  });

  test('C27 RESERVE of a name held at a different location answers NO and changes nothing', async (t) => {
    const c = await login(server.port);
    await expectDone(t, c, [
      ['B1', 'ACTIVATE "user.c27.a" "backend1!default" "a\tlrs\t"'],
      ['B2', 'RESERVE "user.c27.r" "backend1!default"'],
    ]);
    const activeBefore = await find(c, 'F', 'user.c27.a');
    const reservedBefore = await find(c, 'F', 'user.c27.r');
    const attempts = [
      ['user.c27.a', 'backend2!default'], // another server
      ['user.c27.a', 'backend1!other'], // only the partition differs
      ['user.c27.a', 'Backend1!default'], // case differs
      ['user.c27.a', 'backend1!default '], // a trailing space
      ['user.c27.a', 'backend1'], // a prefix of the location
      ['user.c27.r', 'backend1!ssd'],
      ['user.c27.r', 'backend2!default'],
    ] as const;
    let i = 0;
    for (const [name, location] of attempts) {
      const tag = `B${10 + i++}`;
      t.is(await status(c, tag, `RESERVE ${q(name)} ${q(location)}`), `${tag} NO "mailbox already exists"`, `${name} at ${location}`);
    }
    t.deepEqual(await find(c, 'F', 'user.c27.a'), activeBefore);
    t.deepEqual(await find(c, 'F', 'user.c27.r'), reservedBefore);
    t.deepEqual(activeBefore, [...dataLines('F', 'MAILBOX', ['user.c27.a', 'backend1!default', 'a\tlrs\t']), FOUND('F')]);
    t.deepEqual(reservedBefore, [...dataLines('F', 'RESERVE', ['user.c27.r', 'backend1!default']), FOUND('F')]);
    c.close();
  });

  test('C28 RESERVE at the identical location answers OK and leaves the entry RESERVED with empty ACL', async (t) => {
    const c = await login(server.port);
    await expectDone(t, c, [
      ['C1', 'ACTIVATE "user.c28" "backend1!default" "c28\tlrswipkxtecdan\t"'],
      ['C2', 'RESERVE "user.c28" "backend1!default"'],
    ]);
    t.deepEqual(await find(c, 'C3', 'user.c28'), [...dataLines('C3', 'RESERVE', ['user.c28', 'backend1!default']), FOUND('C3')]);
    // again, now over the reservation itself
    t.is(await status(c, 'C4', 'RESERVE "user.c28" "backend1!default"'), DONE('C4'));
    t.deepEqual(await find(c, 'C5', 'user.c28'), [...dataLines('C5', 'RESERVE', ['user.c28', 'backend1!default']), FOUND('C5')]);
    // and ACTIVATE restores it, with no trace of the old ACL
    t.is(await status(c, 'C6', 'ACTIVATE "user.c28" "backend1!default" ""'), DONE('C6'));
    t.deepEqual(await find(c, 'C7', 'user.c28'), [...dataLines('C7', 'MAILBOX', ['user.c28', 'backend1!default', '']), FOUND('C7')]);
    c.close();
  });

  test('C29 DELETE of an active or reserved entry answers OK and FIND then returns only the OK', async (t) => {
    const c = await login(server.port);
    await expectDone(t, c, [
      ['D1', 'ACTIVATE "user.c29.a" "backend1!default" "a\tlrs\t"'],
      ['D2', 'RESERVE "user.c29.r" "backend2!default"'],
      ['D3', 'DELETE "user.c29.a"'],
      ['D4', `DELETE ${lit('user.c29.r')}`],
    ]);
    t.deepEqual(await find(c, 'D5', 'user.c29.a'), [FOUND('D5')]);
    t.deepEqual(await find(c, 'D6', 'user.c29.r'), [FOUND('D6')]);
    // the name is free again: a RESERVE elsewhere works
    t.is(await status(c, 'D7', 'RESERVE "user.c29.a" "backend9!default"'), DONE('D7'));
    c.close();
  });

  test('C30 DELETE of a missing name answers NO, streams nothing and leaves the server and UPDATE streams running', async (t) => {
    const l = await listener(server.port, 'U30');
    const c = await login(server.port);
    t.is(await status(c, 'E1', 'DELETE "user.c30.missing"'), `E1 NO "mailbox doesn't exist"`);
    t.is(await status(c, 'E2', `DELETE ${lit('user.c30.missing2')}`), `E2 NO "mailbox doesn't exist"`);
    // deleted twice: the second DELETE is a missing name too
    await expectDone(t, c, [
      ['E3', 'ACTIVATE "user.c30.once" "backend1!default" ""'],
      ['E4', 'DELETE "user.c30.once"'],
    ]);
    t.is(await status(c, 'E5', 'DELETE "user.c30.once"'), `E5 NO "mailbox doesn't exist"`);
    t.is(server.child.exitCode, null, 'the server is still running');
    t.is(server.child.signalCode, null);
    t.is(await status(c, 'E6', 'ACTIVATE "user.c30.after" "backend1!default" "x\tlrs\t"'), DONE('E6'));
    // the stream is still connected and saw exactly the successful changes
    const seen = await streamedUntilNoop(l, 'U30', 'N1', 'user.c30.');
    const missing = seen.filter((r) => r.args[0] === 'user.c30.missing' || r.args[0] === 'user.c30.missing2');
    t.deepEqual(missing, [], 'no DELETE streamed for a name that did not exist');
    t.deepEqual(
      seen.filter((r) => r.args[0] === 'user.c30.after'),
      [{ kind: 'MAILBOX', args: ['user.c30.after', 'backend1!default', 'x\tlrs\t'] }],
    );
    t.deepEqual(seen.at(-1), { kind: 'MAILBOX', args: ['user.c30.after', 'backend1!default', 'x\tlrs\t'] });
    t.false(l.ended);
    // the refused connection keeps working, and new connections are served
    t.deepEqual(await find(c, 'E7', 'user.c30.after'), [
      ...dataLines('E7', 'MAILBOX', ['user.c30.after', 'backend1!default', 'x\tlrs\t']),
      FOUND('E7'),
    ]);
    const fresh = await login(server.port);
    t.is(await status(fresh, 'E8', 'NOOP'), 'E8 OK "Noop done"');
    fresh.close();
    c.close();
    l.close();
  });

  test('C31 DEACTIVATE: active entry becomes RESERVED at the given location; missing and reserved entries get NO, unnoticed elsewhere', async (t) => {
    const l = await listener(server.port, 'U31');
    const c = await login(server.port);
    await expectDone(t, c, [
      ['G1', 'ACTIVATE "user.c31.a" "backend1!default" "a\tlrswipkxtecdan\t"'],
      ['G2', 'RESERVE "user.c31.r" "backend1!default"'],
    ]);
    // a location different from the current one is taken as given
    t.is(await status(c, 'G3', 'DEACTIVATE "user.c31.a" "backend2!default"'), DONE('G3'));
    t.deepEqual(await find(c, 'G4', 'user.c31.a'), [...dataLines('G4', 'RESERVE', ['user.c31.a', 'backend2!default']), FOUND('G4')]);
    // everything up to here has reached the listener
    const before = await streamedUntilNoop(l, 'U31', 'N1', 'user.c31.');
    t.deepEqual(before.at(-1), { kind: 'RESERVE', args: ['user.c31.a', 'backend2!default'] });

    t.is(await status(c, 'G5', 'DEACTIVATE "user.c31.missing" "backend1!default"'), `G5 NO "mailbox doesn't exist"`);
    t.is(await status(c, 'G6', 'DEACTIVATE "user.c31.r" "backend1!default"'), `G6 NO "mailbox not currently active"`);
    t.is(await status(c, 'G7', 'DEACTIVATE "user.c31.r" "backend9!other"'), `G7 NO "mailbox not currently active"`);
    t.is(await status(c, 'G8', 'DEACTIVATE "user.c31.a" "backend2!default"'), `G8 NO "mailbox not currently active"`);
    t.deepEqual(await find(c, 'G9', 'user.c31.r'), [...dataLines('G9', 'RESERVE', ['user.c31.r', 'backend1!default']), FOUND('G9')]);
    t.deepEqual(await find(c, 'G10', 'user.c31.missing'), [FOUND('G10')]);
    t.deepEqual(await find(c, 'G11', 'user.c31.a'), [...dataLines('G11', 'RESERVE', ['user.c31.a', 'backend2!default']), FOUND('G11')]);
    t.is(await status(c, 'G12', 'ACTIVATE "user.c31.z" "backend1!default" ""'), DONE('G12'));
    // the listener got nothing for the four refusals: only the marker
    t.deepEqual(await streamedUntilNoop(l, 'U31', 'N2', 'user.c31.'), [{ kind: 'MAILBOX', args: ['user.c31.z', 'backend1!default', ''] }]);
    t.is(server.child.exitCode, null);
    const other = await login(server.port);
    t.is(await status(other, 'G13', 'NOOP'), 'G13 OK "Noop done"');
    other.close();
    c.close();
    l.close();
  });

  test('C32 FIND of an unknown name answers only the OK; names are compared case-sensitively and exactly', async (t) => {
    const c = await login(server.port);
    t.is(await status(c, 'H1', 'ACTIVATE "user.c32.Mixed" "backend1!default" "m\tlrs\t"'), DONE('H1'));
    for (const name of [
      'user.c32.nobody',
      'user.c32.mixed',
      'USER.C32.MIXED',
      'user.c32.Mixed ',
      'user.c32.Mixe',
      'user.c32.Mixed.sub',
      ' user.c32.Mixed',
      '',
    ]) {
      t.deepEqual(await find(c, 'H2', name), [FOUND('H2')], JSON.stringify(name));
    }
    t.deepEqual(await find(c, 'H3', 'user.c32.Mixed'), [
      ...dataLines('H3', 'MAILBOX', ['user.c32.Mixed', 'backend1!default', 'm\tlrs\t']),
      FOUND('H3'),
    ]);
    c.close();
  });

  test('C33 LIST returns every entry, MAILBOX or RESERVE, then OK "list complete"', async (t) => {
    await withServer({}, async (own) => {
      const c = await login(own.port);
      c.send('L0 LIST\r\n');
      t.deepEqual(await c.readUntilTagged('L0', 30_000), ['L0 OK "list complete"'], 'empty directory');
      await expectDone(t, c, [
        ['W1', 'ACTIVATE "user.bob" "backend2!default" "bob\tlrswipkxtecdan\t"'],
        ['W2', 'RESERVE "user.carol" "backend1!default"'],
        ['W3', 'ACTIVATE "user.alice" "backend1!default" ""'],
        ['W4', 'ACTIVATE "shared.news" "backend3!default" "anyone\tlrs\t"'],
        ['W5', 'ACTIVATE "user.dave" "backend1!default" "d\tlrs\t"'],
        ['W6', 'DEACTIVATE "user.dave" "backend1!default"'],
        ['W7', 'ACTIVATE "user.erin" "backend1!default" ""'],
        ['W8', 'DELETE "user.erin"'],
      ]);
      c.send('L1 LIST\r\n');
      t.deepEqual(await c.readUntilTagged('L1', 30_000), [
        ...dataLines('L1', 'MAILBOX', ['shared.news', 'backend3!default', 'anyone\tlrs\t']),
        ...dataLines('L1', 'MAILBOX', ['user.alice', 'backend1!default', '']),
        ...dataLines('L1', 'MAILBOX', ['user.bob', 'backend2!default', 'bob\tlrswipkxtecdan\t']),
        ...dataLines('L1', 'RESERVE', ['user.carol', 'backend1!default']),
        ...dataLines('L1', 'RESERVE', ['user.dave', 'backend1!default']),
        'L1 OK "list complete"',
      ]);
      // a literal and a quoted empty prefix mean "everything" too
      const all = await command(c, 'L2', 'LIST ""');
      t.is(all.status, 'L2 OK "list complete"');
      t.deepEqual(
        all.records.map((r) => r.args[0]),
        ['shared.news', 'user.alice', 'user.bob', 'user.carol', 'user.dave'],
      );
      c.close();
    });
  });

  test('C34 LIST with a prefix matches the location byte-wise and case-sensitively', async (t) => {
    const c = await login(server.port);
    const entries: Array<[string, string, string]> = [
      ['user.c34.a', 'c34backend1!default', 'a\tlrs\t'],
      ['user.c34.b', 'c34backend10!default', 'b\tlrs\t'],
      ['user.c34.c', 'c34backend2!ssd', ''],
      ['user.c34.d', 'C34backend1!default', 'd\tlrs\t'],
      ['user.c34.e', 'c34backend2!default', 'e\tlrs\t'],
    ];
    let i = 0;
    for (const [name, loc, acl] of entries) {
      const tag = `S${i++}`;
      t.is(
        await status(c, tag, name === 'user.c34.c' ? `RESERVE ${q(name)} ${q(loc)}` : `ACTIVATE ${q(name)} ${q(loc)} ${q(acl)}`),
        DONE(tag),
      );
    }
    const line = (tag: string, k: number) => {
      const [name, loc, acl] = entries[k];
      return name === 'user.c34.c' ? dataLines(tag, 'RESERVE', [name, loc]) : dataLines(tag, 'MAILBOX', [name, loc, acl]);
    };
    c.send('P1 LIST "c34backend1"\r\n');
    t.deepEqual(await c.readUntilTagged('P1', 30_000), [...line('P1', 0), ...line('P1', 1), 'P1 OK "list complete"']);
    c.send('P2 LIST "c34backend1!"\r\n');
    t.deepEqual(await c.readUntilTagged('P2', 30_000), [...line('P2', 0), 'P2 OK "list complete"']);
    c.send('P3 LIST "c34backend2!s"\r\n');
    t.deepEqual(await c.readUntilTagged('P3', 30_000), [...line('P3', 2), 'P3 OK "list complete"']);
    c.send(`P4 LIST ${lit('C34backend1')}\r\n`);
    t.deepEqual(await c.readUntilTagged('P4', 30_000), [...line('P4', 3), 'P4 OK "list complete"']);
    c.send('P5 LIST "c34nomatch"\r\n');
    t.deepEqual(await c.readUntilTagged('P5', 30_000), ['P5 OK "list complete"']);
    c.send('P6 LIST "c34backend1!default!"\r\n');
    t.deepEqual(await c.readUntilTagged('P6', 30_000), ['P6 OK "list complete"'], 'a prefix longer than the location');
    c.send('P7 LIST "c34backend2"\r\n');
    t.deepEqual(await c.readUntilTagged('P7', 30_000), [...line('P7', 2), ...line('P7', 4), 'P7 OK "list complete"']);
    for (const [tag, cmd] of [
      ['P8', 'LIST ""'],
      ['P9', 'LIST'],
    ] as const) {
      const r = await command(c, tag, cmd);
      t.is(r.status, `${tag} OK "list complete"`);
      t.deepEqual(
        r.records.filter((x) => x.args[0].startsWith('user.c34.')).map((x) => x.args[0]),
        ['user.c34.a', 'user.c34.b', 'user.c34.c', 'user.c34.d', 'user.c34.e'],
        `${cmd} lists everything`,
      );
    }
    c.close();
  });

  test('C35 LIST and UPDATE return the 16 names of spec 4.5 in exactly the Cyrus 3.6 order', async (t) => {
    await withServer({}, async (own) => {
      // reversed first (the worst case for an insertion-ordered store), then random
      const got = await listedNames(own.port, [...CYRUS_ORDER].reverse());
      t.deepEqual(got.list, CYRUS_ORDER);
      t.deepEqual(got.dump, CYRUS_ORDER);
      // re-ACTIVATEs in another random order change nothing, and LIST with a prefix keeps the order
      const again = await listedNames(own.port, shuffled(CYRUS_ORDER));
      t.deepEqual(again.list, CYRUS_ORDER);
      const c = await login(own.port);
      const prefixed = await command(c, 'L2', 'LIST "backend1!"');
      t.deepEqual(
        prefixed.records.map((r) => r.args[0]),
        CYRUS_ORDER,
      );
      // `user.john.Sent` before `user.john-doe`, a name's children right after it
      t.true(CYRUS_ORDER.indexOf('user.john.Sent') < CYRUS_ORDER.indexOf('user.john-doe'));
      c.close();
    });
  });

  test('C35 with directory_order: bytes, LIST and UPDATE use plain byte order', async (t) => {
    await withServer({ config: { directory_order: 'bytes' } }, async (own) => {
      const names = [...CYRUS_ORDER, 'user.\xe4\xff', 'user.Z', 'user.john.Sent\x7f'];
      const expected = [...names].sort((a, b) => Buffer.compare(Buffer.from(a, 'latin1'), Buffer.from(b, 'latin1')));
      t.notDeepEqual(
        expected.filter((n) => CYRUS_ORDER.includes(n)),
        CYRUS_ORDER,
        'the two orders differ on these names',
      );
      const got = await listedNames(own.port, shuffled(names));
      t.deepEqual(got.list, expected);
      t.deepEqual(got.dump, expected);
      t.true(got.list.indexOf('user.john-doe') < got.list.indexOf('user.john.Sent'));
    });
  });

  test('C36 names, locations and ACLs are stored and returned as bytes: 8-bit, no case folding, no trimming, ACLs not in TAB pairs, locations without !', async (t) => {
    const c = await login(server.port);
    const cases: Array<[string, string, string]> = [
      // 8-bit name and ACL, sent as a quoted string
      ['user.c36.\xc3\xa4\xff', 'c36loc!default', '\xe4\xf6\tlrs\t'],
      // names differing only in case or trailing space are different entries
      ['user.c36.Case', 'c36loc!a', 'A\tlrs\t'],
      ['user.c36.case', 'c36loc!b', 'a\tlrs\t'],
      ['user.c36.sp ', 'c36loc!c', ''],
      ['user.c36.sp', 'c36loc!d', ''],
      // ACLs Cyrus would rewrite (spec 4.4)
      ['user.c36.acl1', 'c36loc!default', 'alice lrs'],
      ['user.c36.acl2', 'c36loc!default', 'x'],
      ['user.c36.acl3', 'c36loc!default', 'alice\tlrs'],
      ['user.c36.acl4', 'c36loc!default', 'a\tb\tc\t'],
      ['user.c36.acl5', 'c36loc!default', 'q"x\\y\t"lrs\\\t'],
      ['user.c36.acl6', 'c36loc!default', '  padded\t\tlrs  \t\t'],
      ['user.c36.acl7', 'c36loc!default', 'leg lrswipcda'],
      // locations without `!`, with 8-bit bytes, with spaces
      ['user.c36.loc1', 'c36locnobang', 'l\tlrs\t'],
      ['user.c36.loc2', 'c36loc!\xe9t\xe9 ', 'l\tlrs\t'],
      ['user.c36.loc3', 'c36loc!!double', ''],
    ];
    let i = 0;
    for (const [name, loc, acl] of cases) {
      const tag = `K${i++}`;
      // quoted strings where they can carry the bytes, literals for the rest
      t.is(await status(c, tag, `ACTIVATE ${q(name)} ${i % 2 ? q(loc) : lit(loc)} ${i % 3 ? q(acl) : lit(acl)}`), DONE(tag), name);
    }
    // bytes only a literal can carry: CR, LF and control bytes in the ACL and the name
    const crlfName = 'user.c36.cr\rlf\n';
    const ctlAcl = 'a\r\nb\tlrs\t\x01\x7f\xff\t';
    t.is(await status(c, 'K90', `ACTIVATE ${lit(crlfName)} ${lit('c36loc!x')} ${lit(ctlAcl)}`), DONE('K90'));
    cases.push([crlfName, 'c36loc!x', ctlAcl]);
    for (const [name, loc, acl] of cases) {
      t.deepEqual(await find(c, 'F', name), [...dataLines('F', 'MAILBOX', [name, loc, acl]), FOUND('F')], JSON.stringify(name));
    }
    // FIND compares bytes: a different 8-bit byte or a lower-case variant does not match
    t.deepEqual(await find(c, 'F', 'user.c36.\xc3\xa4\xfe'), [FOUND('F')]);
    t.deepEqual(await find(c, 'F', 'user.c36.\xc3\x84\xff'), [FOUND('F')]);
    t.deepEqual(await find(c, 'F', 'user.c36.acl1 '), [FOUND('F')]);
    // LIST returns the same bytes; a prefix without `!` matches a location without `!`
    const all = await command(c, 'L1', `LIST ${q('c36loc')}`);
    t.is(all.status, 'L1 OK "list complete"');
    t.deepEqual(
      sorted(modelOf(all.records)),
      sorted(new Map(cases.map(([name, location, acl]) => [name, { kind: 'MAILBOX', location, acl }]))),
    );
    const nobang = await command(c, 'L2', 'LIST "c36locnobang"');
    t.deepEqual(nobang.records, [{ kind: 'MAILBOX', args: ['user.c36.loc1', 'c36locnobang', 'l\tlrs\t'] }]);
    const eight = await command(c, 'L3', `LIST ${q('c36loc!\xe9')}`);
    t.deepEqual(
      eight.records.map((r) => r.args[0]),
      ['user.c36.loc2'],
    );
    // RESERVE compares the location without `!` byte for byte
    t.is(await status(c, 'K91', 'RESERVE "user.c36.loc1" "c36locnobang"'), DONE('K91'));
    t.is(await status(c, 'K92', 'RESERVE "user.c36.loc1" "c36locnobang!"'), 'K92 NO "mailbox already exists"');
    t.is(await status(c, 'K93', 'RESERVE "user.c36.loc1" "C36LOCNOBANG"'), 'K93 NO "mailbox already exists"');
    t.deepEqual(await find(c, 'F', 'user.c36.loc1'), [...dataLines('F', 'RESERVE', ['user.c36.loc1', 'c36locnobang']), FOUND('F')]);
    // DELETE of one case variant leaves the other
    t.is(await status(c, 'K94', 'DELETE "user.c36.Case"'), DONE('K94'));
    t.deepEqual(await find(c, 'F', 'user.c36.Case'), [FOUND('F')]);
    t.deepEqual(await find(c, 'F', 'user.c36.case'), [...dataLines('F', 'MAILBOX', ['user.c36.case', 'c36loc!b', 'a\tlrs\t']), FOUND('F')]);
    c.close();
  });

  test('C62 a reservation survives a restart of the server', async (t) => {
    const first = await start();
    const dataDir = first.dataDir;
    let second: RunningMupdated | undefined;
    try {
      const c = await login(first.port);
      await expectDone(t, c, [
        ['R1', 'RESERVE "user.c62.r" "backend1!default"'],
        ['R2', 'ACTIVATE "user.c62.a" "backend2!default" "a\tlrs\t"'],
        ['R3', 'RESERVE "user.c62.d" "backend1!default"'],
        ['R4', 'ACTIVATE "user.c62.d" "backend1!default" "d\tlrs\t"'],
        ['R5', 'DEACTIVATE "user.c62.d" "backend3!default"'],
      ]);
      c.close();
      t.is(await first.stop('SIGTERM'), 0, 'clean exit on SIGTERM');
      second = await start({ dataDir });
      const d = await login(second.port);
      t.deepEqual(await find(d, 'F1', 'user.c62.r'), [...dataLines('F1', 'RESERVE', ['user.c62.r', 'backend1!default']), FOUND('F1')]);
      t.deepEqual(await find(d, 'F2', 'user.c62.d'), [...dataLines('F2', 'RESERVE', ['user.c62.d', 'backend3!default']), FOUND('F2')]);
      t.deepEqual(await find(d, 'F3', 'user.c62.a'), [
        ...dataLines('F3', 'MAILBOX', ['user.c62.a', 'backend2!default', 'a\tlrs\t']),
        FOUND('F3'),
      ]);
      const list = await command(d, 'L1', 'LIST');
      t.deepEqual(
        modelOf(list.records),
        new Map([
          ['user.c62.a', { kind: 'MAILBOX', location: 'backend2!default', acl: 'a\tlrs\t' }],
          ['user.c62.d', { kind: 'RESERVE', location: 'backend3!default', acl: '' }],
          ['user.c62.r', { kind: 'RESERVE', location: 'backend1!default', acl: '' }],
        ]),
      );
      // still a reservation in every sense: RESERVE elsewhere is refused
      t.is(await status(d, 'R6', 'RESERVE "user.c62.r" "backend2!default"'), 'R6 NO "mailbox already exists"');
      d.close();
    } finally {
      await first.stop();
      await second?.stop();
      removeDir(dataDir);
    }
  });

  test('C36 the UPDATE dump carries the same bytes as FIND', async (t) => {
    const c = await login(server.port);
    const name = 'user.c36u.\xff\x80 x';
    const acl = 'odd acl\twithout\tpairs';
    t.is(await status(c, 'V1', `ACTIVATE ${q(name)} "c36uhost" ${q(acl)}`), DONE('V1'));
    c.send('V2 UPDATE "c36uhost"\r\n');
    t.deepEqual(await readUnit(c, 'V2', 'V2'), { kind: 'MAILBOX', args: [name, 'c36uhost', acl] });
    t.is(await c.readLine(30_000), 'V2 OK "streaming starts"');
    c.close();
  });
}
