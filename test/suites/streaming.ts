/**
 * UPDATE streaming (spec 3.9, 3.10, 5.3-5.5): the dump, pushed changes, the
 * NOOP flush, PARTIAL-UPDATE filtering, consistency under concurrent
 * writers, slow consumers, shutdown during a dump, and many idle listeners.
 * Light tests share one server and use their own names and hosts; tests that
 * need special config or the whole directory start their own server.
 */
import test from 'ava';
import { RawClient } from '../helpers/raw-client.js';
import { type RunningMupdated } from '../helpers/server.js';
import {
  login,
  apply,
  command,
  dataLines,
  drainToClose,
  inBatches,
  lit,
  modelOf,
  populate,
  q,
  readResponse,
  readUnit,
  sorted,
  expectDone,
  status,
  type Model,
  type Rec,
} from '../helpers/directory.js';
import { serverScope, type ServerFactory } from '../helpers/server-factory.js';

const DONE = (tag: string) => `${tag} OK "done"`;

/** Logs in, sends UPDATE, reads the dump; fails on anything but `OK "streaming starts"`. */
async function listen(port: number, tag: string, hosts = ''): Promise<{ c: RawClient; dump: Rec[] }> {
  const c = await login(port);
  c.send(`${tag} UPDATE${hosts}\r\n`);
  const r = await readResponse(c, tag, tag, 60_000);
  if (r.status !== `${tag} OK "streaming starts"`) throw new Error(`UPDATE: ${r.status}`);
  return { c, dump: r.records };
}

/** NOOP on a streaming connection: everything streamed before its OK. */
async function noop(c: RawClient, updateTag: string, noopTag: string): Promise<Rec[]> {
  c.send(`${noopTag} NOOP\r\n`);
  const r = await readResponse(c, updateTag, noopTag, 60_000);
  if (r.status !== `${noopTag} OK "Noop done"`) throw new Error(`NOOP: ${r.status}`);
  return r.records;
}

/** Reads streamed records until one for `name` arrives (others are skipped); null on timeout. */
async function waitFor(c: RawClient, tag: string, name: string, timeoutMs: number): Promise<Rec | null> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const u = await readUnit(c, tag, tag, Math.max(1, deadline - Date.now())).catch(() => null);
    if (u === null) return null;
    if (typeof u === 'string') throw new Error(`unexpected status on the stream: ${u}`);
    if (u.args[0] === name) return u;
  }
  return null;
}

function rnd(n: number): number {
  return Math.floor(Math.random() * n);
}

/** Registers the tests on servers made by `start` (a single master, or a cluster node). */
export function streamingTests(start: ServerFactory): void {
  let server: RunningMupdated;
  // Cyrus's last-writer-wins (spec 5.2): these tests move active mailboxes between servers.
  test.before(async () => {
    server = await start({ config: { conflict_policy: 'cyrus' } });
  });
  test.after.always(async () => {
    await server?.stop();
  });

  const withServer = serverScope(start);

  test('C38 UPDATE sends the whole directory with the UPDATE tag, then OK "streaming starts"', async (t) => {
    await withServer({}, async (s) => {
      const c = await login(s.port);
      // an empty directory: just the OK
      c.send('U0 UPDATE\r\n');
      t.deepEqual(await c.readUntilTagged('U0', 30_000), ['U0 OK "streaming starts"']);
      c.close();
      const w = await login(s.port);
      await expectDone(t, w, [
        ['W1', 'ACTIVATE "user.alice" "backend1!default" "alice\tlrswipkxtecdan\t"'],
        ['W2', 'RESERVE "user.bob" "backend2!default"'],
        ['W3', 'ACTIVATE "shared.news" "backend2!default" ""'],
        ['W4', 'ACTIVATE "user.gone" "backend2!default" ""'],
        ['W5', 'DELETE "user.gone"'],
      ]);
      const l = await login(s.port);
      l.send('Tag.7 UPDATE\r\n');
      t.deepEqual(await l.readUntilTagged('Tag.7', 30_000), [
        ...dataLines('Tag.7', 'MAILBOX', ['shared.news', 'backend2!default', '']),
        ...dataLines('Tag.7', 'MAILBOX', ['user.alice', 'backend1!default', 'alice\tlrswipkxtecdan\t']),
        ...dataLines('Tag.7', 'RESERVE', ['user.bob', 'backend2!default']),
        'Tag.7 OK "streaming starts"',
      ]);
      // a big directory: every entry exactly once, in LIST order, no DELETE, while a writer deletes
      await populate(
        () => login(s.port),
        6000,
        (i) => ({
          name: `user.c38.${i}`,
          location: `backend${i % 3}!default`,
          acl: `u${i}\tlrs\t`,
        }),
      );
      const before = await command(w, 'L1', 'LIST');
      let stop = false;
      const writer = (async () => {
        const x = await login(s.port);
        for (let i = 0; i < 3000 && !stop; i += 3) {
          const r = await status(x, `D${i}`, `DELETE "user.c38.${i}"`);
          if (r !== DONE(`D${i}`)) throw new Error(r);
        }
        x.close();
      })();
      const dumps = await Promise.all(
        [1, 2, 3, 4].map(async (k) => {
          const { c: lk, dump } = await listen(s.port, `B${k}`);
          lk.close();
          return dump;
        }),
      );
      stop = true;
      await writer;
      for (const dump of dumps) {
        t.false(
          dump.some((r) => r.kind === 'DELETE'),
          'no DELETE in a dump',
        );
        const m = modelOf(dump); // throws on a repeated name
        const listed = before.records.filter((r) => m.has(r.args[0])).map((r) => r.args[0]);
        t.deepEqual(
          dump.map((r) => r.args[0]),
          listed,
          'dump order is LIST order',
        );
        // the dump is a snapshot: entries the writer did not touch are all there
        for (const r of before.records) {
          const n = Number(r.args[0].split('.').at(-1));
          if (!r.args[0].startsWith('user.c38.') || n % 3 !== 0 || n >= 3000) t.true(m.has(r.args[0]), r.args[0]);
        }
      }
      w.close();
      l.close();
    });
  });

  test('C39 a change by another client reaches an UPDATE stream, with the UPDATE tag, without any NOOP', async (t) => {
    const { c: l } = await listen(server.port, 'S39');
    const w = await login(server.port);
    t.is(await status(w, 'W1', 'ACTIVATE "user.c39.a" "backend1!default" "c39\tlrs\t"'), DONE('W1'));
    t.deepEqual(
      await waitFor(l, 'S39', 'user.c39.a', 5000),
      { kind: 'MAILBOX', args: ['user.c39.a', 'backend1!default', 'c39\tlrs\t'] },
      'pushed within 5 s without a NOOP',
    );
    t.is(await status(w, 'W2', 'DELETE "user.c39.a"'), DONE('W2'));
    t.deepEqual(await waitFor(l, 'S39', 'user.c39.a', 5000), { kind: 'DELETE', args: ['user.c39.a'] });
    w.close();
    l.close();
  });

  test('C40 a NOOP sent after a change was acknowledged is answered with that change first', async (t) => {
    const { c: l } = await listen(server.port, 'S40');
    const w = await login(server.port);
    for (let i = 0; i < 20; i++) {
      const op =
        i % 4 === 3
          ? `DELETE "user.c40.${i - 1}"`
          : i % 4 === 2
            ? `RESERVE "user.c40.${i}" "backend2!default"`
            : `ACTIVATE "user.c40.${i}" "backend1!default" "n${i}\tlrs\t"`;
      t.is(await status(w, `W${i}`, op), DONE(`W${i}`));
      const before = await noop(l, 'S40', `N${i}`);
      const name = i % 4 === 3 ? `user.c40.${i - 1}` : `user.c40.${i}`;
      const expected: Rec =
        i % 4 === 3
          ? { kind: 'DELETE', args: [name] }
          : i % 4 === 2
            ? { kind: 'RESERVE', args: [name, 'backend2!default'] }
            : { kind: 'MAILBOX', args: [name, 'backend1!default', `n${i}\tlrs\t`] };
      t.deepEqual(before.filter((r) => r.args[0] === name).at(-1), expected, `change ${i} before N${i} OK`);
    }
    w.close();
    l.close();
  });

  test('C41 streamed changes show the current state: MAILBOX (3 args), RESERVE (2 args), DELETE (1 arg)', async (t) => {
    const { c: l, dump } = await listen(server.port, 'S41', ' "c41host"');
    t.deepEqual(dump, []);
    const w = await login(server.port);
    const steps: Array<[string, string[]]> = [
      [
        'ACTIVATE "user.c41.m" "c41host!default" "m\tlrswipkxtecdan\t"',
        dataLines('S41', 'MAILBOX', ['user.c41.m', 'c41host!default', 'm\tlrswipkxtecdan\t']),
      ],
      ['RESERVE "user.c41.r" "c41host!default"', dataLines('S41', 'RESERVE', ['user.c41.r', 'c41host!default'])],
      ['ACTIVATE "user.c41.e" "c41host!ssd" ""', ['S41 MAILBOX {10+}', 'user.c41.e {11+}', 'c41host!ssd {0+}', '']],
      ['DEACTIVATE "user.c41.m" "c41host!default"', dataLines('S41', 'RESERVE', ['user.c41.m', 'c41host!default'])],
      ['ACTIVATE "user.c41.r" "c41host!default" "r\tlrs\t"', dataLines('S41', 'MAILBOX', ['user.c41.r', 'c41host!default', 'r\tlrs\t'])],
      ['DELETE "user.c41.m"', ['S41 DELETE {10+}', 'user.c41.m']],
      ['DELETE "user.c41.r"', ['S41 DELETE {10+}', 'user.c41.r']],
    ];
    let i = 0;
    for (const [cmd, lines] of steps) {
      const tag = `W${i++}`;
      t.is(await status(w, tag, cmd), DONE(tag));
      const got: string[] = [];
      for (const _ of lines) got.push(await l.readLine(10_000));
      t.deepEqual(got, lines, cmd);
    }
    t.true(await l.expectSilence(200), 'nothing else streamed');
    w.close();
    l.close();
  });

  test('C42 on a streaming connection only NOOP and LOGOUT work', async (t) => {
    const { c: l } = await listen(server.port, 'S42', ' "c42host"');
    const cmds: Array<[string, string]> = [
      ['FIND "user.c42"', 'not legal when streaming'],
      ['LIST', 'not legal when streaming'],
      ['LIST "c42host"', 'not legal when streaming'],
      ['UPDATE', 'not legal when streaming'],
      ['UPDATE "c42host"', 'not legal when streaming'],
      ['ACTIVATE "user.c42.x" "c42host!default" ""', 'not legal when streaming'],
      ['RESERVE "user.c42.y" "c42host!default"', 'not legal when streaming'],
      ['DELETE "user.c42.z"', 'not legal when streaming'],
      ['DEACTIVATE "user.c42.z" "c42host!default"', 'not legal when streaming'],
      ['AUTHENTICATE "PLAIN" "AG11cGRhdGVhZG1pbgBzZWNyZXQ="', 'already authenticated'],
    ];
    let i = 0;
    for (const [cmd, text] of cmds) {
      const tag = `T${i++}`;
      l.send(`${tag} ${cmd}\r\n`);
      t.is(await l.readLine(30_000), `${tag} BAD "${text}"`, cmd);
    }
    t.is(await status(l, 'T90', 'NOOP'), 'T90 OK "Noop done"');
    // nothing was executed: the names do not exist, and the stream still works
    const w = await login(server.port);
    for (const name of ['user.c42.x', 'user.c42.y']) {
      w.send(`F FIND ${q(name)}\r\n`);
      t.deepEqual(await w.readUntilTagged('F', 30_000), ['F OK "Search completed"']);
    }
    t.is(await status(w, 'W1', 'ACTIVATE "user.c42.ok" "c42host!default" ""'), DONE('W1'));
    t.deepEqual(await noop(l, 'S42', 'T91'), [{ kind: 'MAILBOX', args: ['user.c42.ok', 'c42host!default', ''] }]);
    l.send('T92 LOGOUT\r\n');
    t.is(await l.readLine(30_000), 'T92 OK "bye-bye"');
    t.true(await l.waitClosed(5000));
    w.close();
  });

  test('C43 UPDATE with hosts streams only entries and changes whose old or new server part is listed', async (t) => {
    const w = await login(server.port);
    const setup = [
      'ACTIVATE "user.c43.a" "c43h1!default" "a\tlrs\t"',
      'ACTIVATE "user.c43.b" "c43h1" "b\tlrs\t"', // no `!`: the whole location is the server part
      'ACTIVATE "user.c43.c" "c43h2!default" "c\tlrs\t"',
      'ACTIVATE "user.c43.d" "c43h10!default" "d\tlrs\t"',
      'ACTIVATE "user.c43.e" "C43H1!default" "e\tlrs\t"',
      'RESERVE "user.c43.f" "c43h1!ssd"',
      'ACTIVATE "user.c43.g" "c43h1x" ""',
      'ACTIVATE "user.c43.i" "c43h1x!c43h1" ""',
    ];
    let i = 0;
    for (const cmd of setup) t.is(await status(w, `P${i}`, cmd), DONE(`P${i++}`));
    const one = await listen(server.port, 'H1', ' "c43h1"');
    t.deepEqual(one.dump, [
      { kind: 'MAILBOX', args: ['user.c43.a', 'c43h1!default', 'a\tlrs\t'] },
      { kind: 'MAILBOX', args: ['user.c43.b', 'c43h1', 'b\tlrs\t'] },
      { kind: 'RESERVE', args: ['user.c43.f', 'c43h1!ssd'] },
    ]);
    const two = await listen(server.port, 'H2', ` "c43h2" ${lit('c43h10')}`);
    t.deepEqual(two.dump, [
      { kind: 'MAILBOX', args: ['user.c43.c', 'c43h2!default', 'c\tlrs\t'] },
      { kind: 'MAILBOX', args: ['user.c43.d', 'c43h10!default', 'd\tlrs\t'] },
    ]);
    const M = (name: string, loc: string, acl: string): Rec => ({ kind: 'MAILBOX', args: [name, loc, acl] });
    // [command, what H1 gets, what H2 gets]
    const steps: Array<[string, Rec[], Rec[]]> = [
      ['ACTIVATE "user.c43.a" "c43h3!default" "a\tlrs\t"', [M('user.c43.a', 'c43h3!default', 'a\tlrs\t')], []], // moved away
      ['ACTIVATE "user.c43.c" "c43h2!x" "c\tlrs\t"', [], [M('user.c43.c', 'c43h2!x', 'c\tlrs\t')]],
      [
        'ACTIVATE "user.c43.c" "c43h1!default" "c\tlrs\t"',
        [M('user.c43.c', 'c43h1!default', 'c\tlrs\t')],
        [M('user.c43.c', 'c43h1!default', 'c\tlrs\t')],
      ],
      ['DELETE "user.c43.d"', [], [{ kind: 'DELETE', args: ['user.c43.d'] }]],
      ['DELETE "user.c43.b"', [{ kind: 'DELETE', args: ['user.c43.b'] }], []],
      ['RESERVE "user.c43.h" "c43h1!default"', [{ kind: 'RESERVE', args: ['user.c43.h', 'c43h1!default'] }], []],
      ['ACTIVATE "user.c43.e" "C43H1!z" ""', [], []],
      ['ACTIVATE "user.c43.g" "c43h1x!default" ""', [], []],
      ['ACTIVATE "user.c43.a" "c43h4!default" ""', [], []], // c43h3 -> c43h4: neither listed
      ['DELETE "user.c43.a"', [], []],
      ['ACTIVATE "user.c43.new" "c43h10" "n\tlrs\t"', [], [M('user.c43.new', 'c43h10', 'n\tlrs\t')]],
    ];
    i = 0;
    for (const [cmd, want1, want2] of steps) {
      t.is(await status(w, `Q${i}`, cmd), DONE(`Q${i}`));
      t.deepEqual(await noop(one.c, 'H1', `N${i}`), want1, `H1 after ${cmd}`);
      t.deepEqual(await noop(two.c, 'H2', `N${i}`), want2, `H2 after ${cmd}`);
      i++;
    }
    // malformed host lists, on a connection that stays usable
    const c = await login(server.port);
    t.is(await status(c, 'E1', 'UPDATE ""'), 'E1 BAD "Badly formed arguments"');
    t.is(await status(c, 'E2', 'UPDATE c43h1'), 'E2 BAD "Badly formed arguments"');
    t.is(await status(c, 'E3', 'UPDATE "c43h1" ""'), 'E3 BAD "Badly formed arguments"');
    const hosts31 = Array.from({ length: 31 }, (_, k) => `"c43x${k}"`).join(' ');
    t.is(await status(c, 'E4', `UPDATE ${hosts31}`), 'E4 BAD "Extra arguments"');
    c.send('E5 FIND "user.c43.h"\r\n');
    t.deepEqual(await c.readUntilTagged('E5', 30_000), [
      ...dataLines('E5', 'RESERVE', ['user.c43.h', 'c43h1!default']),
      'E5 OK "Search completed"',
    ]);
    // 30 hosts are accepted
    const hosts30 = ['"c43h1"', ...Array.from({ length: 29 }, (_, k) => `"c43x${k}"`)].join(' ');
    const r = await command(c, 'E6', `UPDATE ${hosts30}`);
    t.is(r.status, 'E6 OK "streaming starts"');
    t.deepEqual(
      r.records.map((x) => x.args[0]),
      ['user.c43.c', 'user.c43.f', 'user.c43.h'],
    );
    c.close();
    w.close();
    one.c.close();
    two.c.close();
  });

  test.serial('C44 no change is lost or duplicated between the UPDATE snapshot and the stream, under concurrent writers', async (t) => {
    await withServer({ config: { conflict_policy: 'cyrus' } }, async (s) => {
      // a directory big enough that a dump spans several chunks of a dump worker (256 KiB each)
      await populate(
        () => login(s.port),
        12_000,
        (i) => ({
          name: `user.c44.pre.${i}`,
          location: `backend${(i % 2) + 1}!default`,
          acl: `p${i}\tlrs\t`,
        }),
      );
      const names = [
        ...Array.from({ length: 60 }, (_, i) => `user.c44.hot.${i}`),
        ...Array.from({ length: 40 }, (_, i) => `user.c44.pre.${i * 100}`),
      ];
      const locations = ['backend1!default', 'backend1!ssd', 'backend2!default', 'backend3!default'];
      const WRITERS = 4;
      const OPS = 200;
      const total = WRITERS * OPS;
      const LISTENERS = 10;
      const partial = new Set([2, 5, 8]); // these listen to "backend1" only
      const listeners = await Promise.all(Array.from({ length: LISTENERS }, () => login(s.port)));
      const startAt = Array.from({ length: LISTENERS }, () => rnd(total));
      const started = new Array<boolean>(LISTENERS).fill(false);
      let done = 0;
      const startDue = () => {
        startAt.forEach((at, k) => {
          if (!started[k] && done >= at) {
            started[k] = true;
            listeners[k].send(`L${k} UPDATE${partial.has(k) ? ' "backend1"' : ''}\r\n`);
          }
        });
      };
      startDue();
      const outcomes = await Promise.all(
        Array.from({ length: WRITERS }, async (_, w) => {
          const c = await login(s.port);
          let ok = 0;
          for (let i = 0; i < OPS; i++) {
            const name = names[rnd(names.length)];
            const loc = locations[rnd(locations.length)];
            const op = rnd(10);
            const cmd =
              op < 4
                ? `ACTIVATE ${q(name)} ${q(loc)} ${q(`w${w}.${i}\tlrs\t`)}`
                : op < 6
                  ? `RESERVE ${q(name)} ${q(loc)}`
                  : op < 8
                    ? `DELETE ${q(name)}`
                    : `DEACTIVATE ${q(name)} ${q(loc)}`;
            const st = await status(c, `W${w}.${i}`, cmd);
            if (!/^\S+ (OK|NO) "/.test(st)) throw new Error(`${cmd}: ${st}`);
            if (st.includes(' OK ')) ok++;
            done++;
            startDue();
          }
          c.close();
          return ok;
        }),
      );
      t.true(outcomes.reduce((a, b) => a + b, 0) > total / 3, 'a good share of the changes succeeded');
      t.true(started.every(Boolean));
      const fresh = await login(s.port);
      const list = await command(fresh, 'LL', 'LIST');
      t.is(list.status, 'LL OK "list complete"');
      const truth = modelOf(list.records);
      for (let k = 0; k < LISTENERS; k++) {
        const l = listeners[k];
        const dump = await readResponse(l, `L${k}`, `L${k}`, 60_000);
        t.is(dump.status, `L${k} OK "streaming starts"`);
        t.false(
          dump.records.some((r) => r.kind === 'DELETE'),
          `no DELETE before the OK (listener ${k})`,
        );
        const model: Model = modelOf(dump.records);
        l.send(`N${k} NOOP\r\n`);
        const rest = await readResponse(l, `L${k}`, `N${k}`, 60_000);
        t.is(rest.status, `N${k} OK "Noop done"`);
        apply(model, rest.records);
        if (partial.has(k)) {
          const mine = (m: Model) => new Map([...m].filter(([, e]) => e.location.split('!')[0] === 'backend1'));
          t.deepEqual(sorted(mine(model)), sorted(mine(truth)), `partial listener ${k} (started after ${startAt[k]} changes)`);
        } else {
          t.deepEqual(sorted(model), sorted(truth), `listener ${k} (started after ${startAt[k]} changes)`);
        }
        l.close();
      }
      fresh.close();
    });
  });

  test.serial(
    'C45 a consumer that stops reading is disconnected with * BYE; the server and other connections are unaffected',
    async (t) => {
      await withServer({ config: { stream_queue_limit: 100 } }, async (s) => {
        const { c: slow } = await listen(s.port, 'SLOW');
        slow.socket.pause();
        // a listener that keeps reading, in the background
        const { c: fast } = await listen(s.port, 'FAST');
        const fastSeen = new Map<string, Rec>();
        let fastError: Error | null = null;
        let fastStop = false;
        const fastLoop = (async () => {
          while (!fastStop) {
            const u = await readUnit(fast, 'FAST', 'FN', 60_000).catch((e: Error) => {
              fastError = e;
              return null;
            });
            if (u === null) return;
            if (typeof u === 'string') {
              if (u === 'FN OK "Noop done"') return;
              fastError = new Error(`fast listener got ${u}`);
              return;
            }
            fastSeen.set(u.args[0], u);
          }
        })();
        const other = await login(s.port);
        const w = await login(s.port);
        const acl = (i: number) => `big${i}\t${'lrswipkxtecdan'.repeat(7300)}\t`; // ~100 KB
        let made = 0;
        let overflowed = false;
        // the server's log tells when it gave up on the slow stream (so the test resumes reading at once)
        void s.waitForLog(/"msg":"UPDATE stream (?!starts)/, 120_000).then(
          () => {
            overflowed = true;
          },
          () => undefined,
        );
        for (let batch = 0; batch < 60 && !overflowed; batch++) {
          let out = '';
          for (let i = made; i < made + 10; i++) out += `W${i} ACTIVATE ${q(`user.c45.${i}`)} "backend1!default" ${lit(acl(i))}\r\n`;
          w.send(out);
          for (let i = made; i < made + 10; i++) t.is(await w.readLine(30_000), DONE(`W${i}`));
          made += 10;
          // other connections are served all along
          other.send(`F${batch} FIND "user.c45.0"\r\n`);
          const f = await readResponse(other, `F${batch}`);
          t.is(f.status, `F${batch} OK "Search completed"`);
        }
        // more than stream_queue_limit distinct names changed while the socket was backed up
        t.true(made > 100);
        // the slow consumer's connection ends; after it resumes reading, it finds * BYE at the end
        slow.socket.resume();
        const end = await drainToClose(slow, 60_000);
        t.true(end.closed, 'the slow consumer was disconnected');
        t.regex(end.last.at(-1) ?? '', /^\* BYE "[^"]*"$/, `last line: ${JSON.stringify(end.last.at(-1))}`);
        t.is(end.tail, '', 'nothing after the BYE');
        t.true(end.lines < made * 4 + 10, 'the slow consumer did not get everything');
        // the server is healthy: still running, the fast listener got every change, new connections work
        t.is(s.child.exitCode, null);
        t.is(await status(w, 'X1', 'ACTIVATE "user.c45.after" "backend1!default" "a\tlrs\t"'), DONE('X1'));
        fast.send('FN NOOP\r\n');
        await fastLoop;
        fastStop = true;
        t.is(fastError, null);
        t.false(fast.ended);
        t.is(fastSeen.size, made + 1, 'the reading listener received every change');
        t.deepEqual(fastSeen.get('user.c45.after'), { kind: 'MAILBOX', args: ['user.c45.after', 'backend1!default', 'a\tlrs\t'] });
        t.deepEqual(fastSeen.get('user.c45.7'), { kind: 'MAILBOX', args: ['user.c45.7', 'backend1!default', acl(7)] });
        const fresh = await login(s.port);
        t.is(await status(fresh, 'Z1', 'NOOP'), 'Z1 OK "Noop done"');
        fresh.send('Z2 FIND "user.c45.after"\r\n');
        t.is((await fresh.readUntilTagged('Z2', 30_000)).at(-1), 'Z2 OK "Search completed"');
        t.is(await status(other, 'Z3', 'NOOP'), 'Z3 OK "Noop done"');
        t.true(overflowed, 'the server logged why it closed the stream');
        fresh.close();
        other.close();
        fast.close();
        w.close();
      });
    },
  );

  test.serial('C46 no * BYE before OK "streaming starts", also when the server shuts down during the dump', async (t) => {
    await withServer({}, async (s) => {
      // ~24 MB of directory: a dump that cannot complete while its reader is paused
      const acl = (i: number) => `u${i}\t${'lrswipkxtecdan'.repeat(210)}\t`;
      await populate(
        () => login(s.port),
        8000,
        (i) => ({ name: `user.c46.${i}`, location: 'backend1!default', acl: acl(i) }),
      );
      const paused = await login(s.port);
      const reading = await login(s.port);
      paused.send('U01 UPDATE\r\n');
      const first = await paused.readLine(30_000);
      t.regex(first, /^U01 (MAILBOX|RESERVE) \{\d+\+\}$/);
      paused.socket.pause();
      // the reading client records every byte it gets (and keeps RawClient's buffer empty)
      const got: Buffer[] = [];
      let started: () => void = () => undefined;
      const dumpStarted = new Promise<void>((r) => {
        started = r;
      });
      reading.socket.on('data', (d: Buffer) => {
        got.push(Buffer.from(d));
        reading.takeBuffered();
        started();
      });
      reading.send('U02 UPDATE\r\n');
      await dumpStarted;
      const stopped = s.stop('SIGTERM');
      // the server ends every connection at once; when the reading one is closed, the
      // paused one has had whatever the server was going to send it: read it all now
      t.true(await reading.waitClosed(60_000), 'the reading client was disconnected');
      const readingBytes = Buffer.concat(got).toString('latin1');
      paused.socket.resume();
      const statusLines: string[] = [];
      const end = await drainToClose(paused, 60_000, 3, (l) => {
        if (/^(U01|\*) (OK|NO|BAD|BYE) /.test(l)) statusLines.push(l);
      });
      t.true(end.closed, 'the paused client was disconnected');
      t.deepEqual(statusLines, [], 'the paused dump got no OK, NO, BAD or BYE: only the close');
      t.false(end.tail.includes('BYE'), `no * BYE inside the dump: ${JSON.stringify(end.tail.slice(-300))}`);
      t.true(end.lines < 8000 * 4, 'the dump was cut short');
      t.is(await stopped, 0, 'clean exit');
      // the reading client: either the OK came and any BYE is after it, or neither came
      const ok = readingBytes.indexOf('\r\nU02 OK "streaming starts"\r\n');
      const bye = readingBytes.indexOf('* BYE');
      t.false(/\r\nU02 (NO|BAD|BYE) /.test(readingBytes), 'UPDATE is never refused');
      if (ok < 0) t.is(bye, -1, 'no * BYE without the OK');
      else t.true(bye === -1 || bye > ok, 'a * BYE only after the OK');
      paused.close();
      reading.close();
    });
  });

  test('C63 100 idle UPDATE listeners leave the server responsive, and each receives a later change', async (t) => {
    const listeners = await inBatches(
      Array.from({ length: 100 }, (_, i) => i),
      25,
      async (i) => (await listen(server.port, `I${i}`)).c,
    );
    // a new connection: banner, AUTHENTICATE and FIND are answered
    const c = await RawClient.connect(server.port);
    const banner: string[] = [];
    for (let i = 0; i < 10 && !banner.at(-1)?.startsWith('* OK'); i++) banner.push(await c.readLine(30_000));
    t.regex(banner.at(-1)!, /^\* OK MUPDATE "/);
    const ir = Buffer.from('mupdateadmin\0mupdateadmin\0secret').toString('base64');
    c.send(`A01 AUTHENTICATE "PLAIN" {${ir.length}+}\r\n${ir}\r\n`);
    t.is(await c.readLine(30_000), 'A01 OK "Authenticated"');
    c.send('F1 FIND "user.c63.x"\r\n');
    t.deepEqual(await c.readUntilTagged('F1', 30_000), ['F1 OK "Search completed"']);
    t.is(await status(c, 'W1', 'ACTIVATE "user.c63.x" "backend1!default" "x\tlrs\t"'), DONE('W1'));
    const got = await Promise.all(listeners.map((l, i) => waitFor(l, `I${i}`, 'user.c63.x', 30_000)));
    for (let i = 0; i < got.length; i++) {
      t.deepEqual(got[i], { kind: 'MAILBOX', args: ['user.c63.x', 'backend1!default', 'x\tlrs\t'] }, `listener ${i}`);
    }
    c.send('F2 FIND "user.c63.x"\r\n');
    t.is((await c.readUntilTagged('F2', 30_000)).at(-1), 'F2 OK "Search completed"');
    for (const l of listeners) l.close();
    c.close();
  });
}
