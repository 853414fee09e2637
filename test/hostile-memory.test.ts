/**
 * Memory a client that does not read can make the server hold, measured on
 * a real server child process (/proc/<pid>/status): a client that pipelines
 * FINDs and never reads, and stalled UPDATE listeners under writes with
 * ~1 KiB ACLs. The figures are logged (t.log) and quoted in the README.
 *
 * The bound is asserted on RssAnon (heap and buffers): VmRSS also counts
 * the LMDB file's pages mapped into the process, which grow with the data
 * written whoever listens; VmRSS is logged beside it.
 */
import test from 'ava';
import { readFileSync } from 'node:fs';
import type { Socket } from 'node:net';
import { RawClient } from './helpers/raw-client.js';
import { serverScope, singleMaster } from './helpers/server-factory.js';
import { lit, login, status } from './helpers/directory.js';

const withServer = serverScope(singleMaster);

const MIB = 1024 * 1024;

interface Memory {
  rss: number;
  anon: number;
}

/** VmRSS and RssAnon of a process, in bytes. */
function memoryOf(pid: number): Memory {
  const text = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kib = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(text)?.[1] ?? NaN) * 1024;
  return { rss: kib('VmRSS'), anon: kib('RssAnon') };
}

/** Samples a process's memory every 100 ms until stopped; keeps the peaks. */
function sampler(pid: number): { stop(): Memory } {
  const peak: Memory = memoryOf(pid);
  const timer = setInterval(() => {
    const m = memoryOf(pid);
    peak.rss = Math.max(peak.rss, m.rss);
    peak.anon = Math.max(peak.anon, m.anon);
  }, 100);
  return {
    stop() {
      clearInterval(timer);
      const m = memoryOf(pid);
      return { rss: Math.max(peak.rss, m.rss), anon: Math.max(peak.anon, m.anon) };
    },
  };
}

const mib = (bytes: number) => (bytes / MIB).toFixed(1);

/** Stops reading a logged-in RawClient's socket: what the server sends piles up in the kernel, then in the server. */
function stallReading(c: RawClient): Socket {
  c.socket.removeAllListeners('data');
  c.socket.pause();
  return c.socket;
}

/** Reads a stalled socket again, calling `line` for every complete line (literal bodies included in their line). */
function readLines(socket: Socket, line: (l: string) => void): void {
  let tail = '';
  socket.on('data', (d: Buffer) => {
    const parts = (tail + d.toString('latin1')).split('\r\n');
    tail = parts.pop()!;
    for (const p of parts) line(p);
  });
  socket.resume();
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** An ACL of about `bytes` bytes. */
function aclOf(bytes: number, seed: number): string {
  const piece = `u${seed}\tlrswipkxtecda\t`;
  return piece.repeat(Math.ceil(bytes / piece.length));
}

test.serial(
  'clients that pipeline writes and FINDs and never read hold at most 4 MiB each in the server; their answers all arrive once they read',
  async (t) => {
    const CLIENTS = 6;
    const FINDS = 1500;
    const PER_CLIENT_BOUND = 4 * MIB;
    // V8's young generation is held at 1 MiB semi-spaces: left to itself V8 sizes it
    // by the allocation rate (up to 16 MiB semi-spaces, touched or not depending on
    // which collection ran last), a swing of ~15 MiB between runs that is no
    // client's doing.
    await withServer({ env: { NODE_OPTIONS: '--max-semi-space-size=1' } }, async (s) => {
      const pid = s.child.pid!;
      const admin = await login(s.port);
      // each answer is ~16 KiB: 1500 unread answers would be ~24 MiB per client
      t.is(await status(admin, 'S1', `ACTIVATE "user.big" "backend1!default" ${lit(aclOf(16 * 1024, 1))}`), 'S1 OK "done"');
      const finds = Array.from({ length: FINDS }, (_, i) => `F${i} FIND "user.big"\r\n`).join('');
      // writes first, so that FINDs are also answered ahead of their commit (answers held in order)
      const writesThenFinds = (k: number) =>
        Array.from({ length: 10 }, (_, i) => `W${i} ACTIVATE "user.w${k}.${i}" "backend1!default" ""\r\n`).join('') + finds;
      // The baseline is the peak while one client does the same work and reads in
      // full. A resting figure would not do: V8 sizes its young generation by the
      // allocation rate (up to 32 MiB) and it is grown or shrunk by whichever
      // collection ran last, so a resting baseline swings by ~15 MiB run to run.
      const warm = await login(s.port);
      const warmPeak = sampler(pid);
      let warmDone = 0;
      const warmAll = new Promise<void>((resolve) =>
        readLines(stallReading(warm), (l) => {
          if (/^F\d+ OK /.test(l) && ++warmDone === FINDS) resolve();
        }),
      );
      warm.send(writesThenFinds(CLIENTS));
      await warmAll;
      const before = warmPeak.stop();
      warm.close();
      await sleep(500);
      const peak = sampler(pid);
      const stalled = await Promise.all(Array.from({ length: CLIENTS }, () => login(s.port)));
      const sockets = stalled.map((c) => stallReading(c));
      sockets.forEach((socket, k) => socket.write(writesThenFinds(k)));
      // bounded: the server has answered what it will within this time (it stops parsing, or has answered all)
      await sleep(5000);
      const after = peak.stop();
      const perClient = (after.anon - before.anon) / CLIENTS;
      t.log(
        `${CLIENTS} clients x ${FINDS} pipelined FINDs of ~16 KiB answers, not read: RssAnon peak ${mib(before.anon)} with one reader -> peak ${mib(after.anon)} MiB ` +
          `(${mib(perClient)} MiB per client); VmRSS peak ${mib(before.rss)} -> ${mib(after.rss)} MiB`,
      );
      t.true(perClient < PER_CLIENT_BOUND, `server memory per stalled client ${mib(perClient)} MiB, bound ${mib(PER_CLIENT_BOUND)} MiB`);
      // others are served meanwhile
      t.is(await status(admin, 'N1', 'NOOP'), 'N1 OK "Noop done"');
      // a stalled client that reads again gets every answer, in order
      const order: number[] = [];
      const all = new Promise<void>((resolve) =>
        readLines(sockets[0], (l) => {
          const m = /^F(\d+) OK "Search completed"$/.exec(l);
          if (m) order.push(Number(m[1]));
          if (order.length === FINDS) resolve();
        }),
      );
      await Promise.race([all, sleep(60_000)]);
      t.deepEqual(
        order,
        Array.from({ length: FINDS }, (_, i) => i),
      );
      t.is(s.child.exitCode, null);
      for (const c of [admin, ...stalled]) c.close();
    });
  },
);

test.serial(
  'stalled UPDATE listeners under writes with ~1 KiB ACLs: each holds at most 2 x stream_queue_bytes + 8 MiB, then gets * BYE and a log line',
  async (t) => {
    const LISTENERS = 2;
    const QUEUE_BYTES = 4 * MIB;
    /**
     * The pending changes (counted as their lines; the allocator and the collector
     * hold about as much again until memory is reused), the socket's write buffer
     * (4 MiB high-water mark), and slack.
     */
    const PER_LISTENER_BOUND = 2 * QUEUE_BYTES + 8 * MIB;
    const MAX_WRITES = 60_000;
    // The young generation held at 1 MiB semi-spaces, as above: queued lines live in V8's
    // heap, and at a high allocation rate V8 grows the young generation by up to ~30 MiB,
    // once for the whole server, whoever causes it.
    await withServer({ config: { stream_queue_bytes: QUEUE_BYTES }, env: { NODE_OPTIONS: '--max-semi-space-size=1' } }, async (s) => {
      const pid = s.child.pid!;
      const writer = await login(s.port);
      // warm-up: writes and an UPDATE that keeps reading
      const warmListener = await login(s.port);
      warmListener.send('W1 UPDATE\r\n');
      t.is((await warmListener.readUntilTagged('W1', 30_000)).at(-1), 'W1 OK "streaming starts"');
      let written = 0;
      const writeBatch = async (count: number) => {
        let out = '';
        for (let i = written; i < written + count; i++)
          out += `A${i} ACTIVATE "user.stall.${i}" "backend1!default" ${lit(aclOf(1024, i))}\r\n`;
        writer.send(out);
        for (let i = written; i < written + count; i++) {
          const l = await writer.readLine(60_000);
          if (l !== `A${i} OK "done"`) throw new Error(`write ${i}: ${l}`);
        }
        written += count;
      };
      await writeBatch(2000);
      warmListener.close();
      await sleep(500);

      const listeners = await Promise.all(Array.from({ length: LISTENERS }, () => login(s.port)));
      const ends: Array<Promise<string[]>> = [];
      for (const [k, l] of listeners.entries()) {
        l.send(`U${k} UPDATE\r\n`);
        t.is((await l.readUntilTagged(`U${k}`, 60_000)).at(-1), `U${k} OK "streaming starts"`);
        const socket = stallReading(l);
        // once the server gives up on this listener, it reads again (before the server's 10 s linger ends)
        const port = socket.localPort!;
        ends.push(
          s.waitForLog(new RegExp(`"peer":"127\\.0\\.0\\.1:${port}".*UPDATE stream fell too far behind`), 180_000).then(
            () => {
              const lines: string[] = [];
              readLines(socket, (line) => lines.push(line));
              return new Promise<string[]>((resolve) => socket.once('close', () => resolve(lines)));
            },
            () => ['(no overflow logged for this listener)'],
          ),
        );
      }
      const overflowed = () => s.logs.filter((l) => l.includes('UPDATE stream fell too far behind')).length;
      await sleep(500);
      const before = memoryOf(pid);
      const peak = sampler(pid);
      const deadline = Date.now() + 120_000;
      while (written < MAX_WRITES && overflowed() < LISTENERS && Date.now() < deadline) await writeBatch(500);
      const after = peak.stop();
      const perListener = (after.anon - before.anon) / LISTENERS;
      t.log(
        `${LISTENERS} stalled listeners, ${written - 2000} writes of ~1 KiB ACLs, stream_queue_bytes ${mib(QUEUE_BYTES)} MiB: ` +
          `RssAnon ${mib(before.anon)} -> peak ${mib(after.anon)} MiB (${mib(perListener)} MiB per listener); VmRSS ${mib(before.rss)} -> peak ${mib(after.rss)} MiB`,
      );
      t.true(
        perListener < PER_LISTENER_BOUND,
        `server memory per stalled listener ${mib(perListener)} MiB, bound ${mib(PER_LISTENER_BOUND)} MiB`,
      );
      t.is(overflowed(), LISTENERS, 'each stalled listener was dropped, with a log line');
      // what each listener finds when it reads again: changes, then * BYE as its last line
      const seen = await Promise.race([Promise.all(ends), sleep(60_000).then(() => null)]);
      t.truthy(seen, 'the dropped listeners were closed');
      for (const lines of seen ?? []) t.regex(lines.at(-1) ?? '', /^\* BYE "[^"]*"$/);
      // the server goes on
      t.is(await status(writer, 'N1', 'NOOP'), 'N1 OK "Noop done"');
      t.is(s.child.exitCode, null);
      writer.close();
      for (const l of listeners) l.close();
    });
  },
);

test.serial('an XRESUME replay of large changes to a client that does not read holds a bounded amount in the server', async (t) => {
  const ENTRIES = 500;
  const ACL_BYTES = 120 * 1024;
  // The replay's lines (500 x 120 KiB, about 60 MiB) must not all be built at once: the socket's
  // high-water mark (4 MiB), one 256 KiB batch and the allocator's slack.
  const BOUND = 24 * MIB;
  await withServer({ env: { NODE_OPTIONS: '--max-semi-space-size=1' } }, async (s) => {
    const pid = s.child.pid!;
    const writer = await login(s.port);
    for (let i = 0; i < ENTRIES; i += 10) {
      writer.send(
        Array.from(
          { length: 10 },
          (_, k) => `A${i + k} ACTIVATE "user.big${i + k}" "backend1!default" ${lit(aclOf(ACL_BYTES, i + k))}\r\n`,
        ).join(''),
      );
      for (let k = 0; k < 10; k++) t.is(await writer.readLine(60_000), `A${i + k} OK "done"`);
    }
    // The directory's id, from the XSYNC line of a resume that knows none (then closed unread).
    const probe = await login(s.port);
    probe.send('P1 XRESUME "" "0"\r\n');
    t.regex(await probe.readLine(30_000), /^P1 XSYNC \{\d+\+\}$/);
    t.is(await probe.readLine(30_000), 'FULL {36+}');
    const dbid = (await probe.readLine(30_000)).replace(/ \{\d+\+\}$/, '');
    probe.close();
    await sleep(500);
    const peak = sampler(pid);
    const before = memoryOf(pid);
    const stalled = await login(s.port);
    stallReading(stalled).write(`R1 XRESUME "${dbid}" "0"\r\n`);
    await sleep(4000);
    const after = peak.stop();
    t.log(`XRESUME replay of ${ENTRIES} changes of ~120 KiB, not read: RssAnon ${mib(before.anon)} -> peak ${mib(after.anon)} MiB`);
    t.true(after.anon - before.anon < BOUND, `the server held ${mib(after.anon - before.anon)} MiB more, bound ${mib(BOUND)} MiB`);
    stalled.close();
    writer.close();
  });
});
