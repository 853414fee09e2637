/**
 * An OK goes out only after its change is on disk (issue 14), checked in the
 * system calls of a real `mupdated master` child traced with strace: SIGKILL
 * alone cannot tell a synced write from one still in the page cache.
 *
 * What is checked, for each write's OK: after its command was read and before
 * the OK's first byte is written to the socket, the directory file reached
 * its commit point, a write to directory.mdb through a descriptor opened
 * O_DSYNC (LMDB's meta page), and every plain write to the file since the
 * command was read was flushed by an fdatasync or fsync of the file that
 * returned before that commit point.
 */
import test, { type ExecutionContext } from 'ava';
import { join } from 'node:path';
import { RawClient } from './helpers/raw-client.js';
import { removeDir, startMupdated, tempDir, type RunningMupdated } from './helpers/server.js';
import { AttachedTrace, opensDsync, parseTrace, straceWorks, type TracedCall } from './helpers/syscall-trace.js';

const scratch = tempDir('commit-order-');
test.after.always(() => removeDir(scratch));

const TRACED = ['read', 'write', 'writev', 'sendto', 'sendmsg', 'pwrite64', 'pwritev', 'fdatasync', 'fsync'];
const WRITES = new Set(['write', 'writev', 'pwrite64', 'pwritev']);
const SOCKET_WRITES = new Set(['write', 'writev', 'sendto', 'sendmsg']);

const isDirectoryFile = (c: TracedCall) => c.fdPath !== null && c.fdPath.endsWith('/directory.mdb');

/** Why the OK of `tag` may have gone out before its change was durable; null when the order is right. */
function orderProblem(calls: TracedCall[], tag: string, dsync: (fd: number) => boolean): string | null {
  const read = calls.find((c) => c.name === 'read' && c.text.includes(`${tag} ACTIVATE`));
  if (!read) return `no read of ${tag}'s command in the trace`;
  const ok = calls.find((c) => SOCKET_WRITES.has(c.name) && c.fdPath?.startsWith('socket:') === true && c.text.includes(`${tag} OK`));
  if (!ok) return `no socket write of ${tag}'s OK in the trace`;
  const fileWrites = calls.filter((c) => WRITES.has(c.name) && isDirectoryFile(c) && c.started > read.returned && c.returned < ok.started);
  const commitPoint = fileWrites.filter((c) => dsync(c.fd!) && c.result !== null && c.result > 0).pop();
  if (!commitPoint) return `no O_DSYNC write to directory.mdb between ${tag}'s command and its OK`;
  const syncs = calls.filter((c) => (c.name === 'fdatasync' || c.name === 'fsync') && isDirectoryFile(c) && c.result === 0);
  for (const w of fileWrites) {
    if (w.started >= commitPoint.started || dsync(w.fd!)) continue;
    const flushed = syncs.some((s) => s.started > w.returned && s.returned < commitPoint.started);
    if (!flushed) return `a write to directory.mdb (trace line ${w.started + 1}) was not flushed before ${tag}'s commit point`;
  }
  return null;
}

async function traced(
  t: ExecutionContext,
  name: string,
  work: (server: RunningMupdated) => Promise<string[]>,
): Promise<{ calls: TracedCall[]; tags: string[]; dsync: (fd: number) => boolean } | null> {
  if (!straceWorks()) {
    if (process.env.CI) t.fail('strace is missing or cannot trace (CI installs it)');
    else t.log('strace cannot run here: not checked');
    return null;
  }
  const server = await startMupdated();
  try {
    let calls: TracedCall[] = [];
    const trace = await AttachedTrace.attach(server.child.pid!, join(scratch, `${name}.trace`), TRACED);
    let tags: string[];
    try {
      tags = await work(server);
    } finally {
      calls = await trace.stop();
    }
    const pid = server.child.pid!;
    // Looked up while the server still holds its descriptors open.
    const flags = new Map<number, boolean>();
    const dsync = (fd: number) => {
      if (!flags.has(fd)) flags.set(fd, opensDsync(pid, fd));
      return flags.get(fd)!;
    };
    for (const c of calls) if (c.fd !== null && isDirectoryFile(c)) dsync(c.fd);
    return { calls, tags, dsync };
  } finally {
    await server.stop();
    removeDir(server.dataDir);
  }
}

test('a lone ACTIVATE: the directory file is synced, then committed through O_DSYNC, before the OK is written to the socket', async (t) => {
  const run = await traced(t, 'lone', async (server) => {
    const c = await RawClient.login(server.port);
    c.send('A02 ACTIVATE "user.lone" "backend1!p1" "lone lrswipkxtecda"\r\n');
    t.deepEqual(await c.readUntilTagged('A02'), ['A02 OK "done"']);
    c.close();
    return ['A02'];
  });
  if (!run) return;
  t.is(orderProblem(run.calls, 'A02', run.dsync), null);
});

test('pipelined ACTIVATEs of two connections, committed together: each OK is written only after the commit that holds it is on disk', async (t) => {
  const run = await traced(t, 'batched', async (server) => {
    const a = await RawClient.login(server.port);
    const b = await RawClient.login(server.port);
    const tags: string[] = [];
    let toA = '';
    let toB = '';
    for (let i = 0; i < 8; i++) {
      toA += `P${i} ACTIVATE "user.p${i}" "backend1!p1" "p${i} lr"\r\n`;
      toB += `Q${i} ACTIVATE "user.q${i}" "backend2!p1" "q${i} lr"\r\n`;
      tags.push(`P${i}`, `Q${i}`);
    }
    a.send(toA);
    b.send(toB);
    const answers = [...(await a.readUntilTagged('P7')), ...(await b.readUntilTagged('Q7'))];
    t.is(answers.filter((l) => / OK "done"$/.test(l)).length, 16, answers.join('\n'));
    a.close();
    b.close();
    return tags;
  });
  if (!run) return;
  for (const tag of run.tags) t.is(orderProblem(run.calls, tag, run.dsync), null, tag);
});

test('the check finds an OK written before the sync that covers it', (t) => {
  // The same calls as a real commit, with the OK moved before the commit point: the check must object.
  const line = (pid: number, call: string) => `${pid} 00:00:00.000000 ${call}`;
  const good = [
    line(1, 'read(9<socket:[1]>, "A02 ACTIVATE \\"x\\" \\"b!p\\" \\"\\"\\r\\n", 65536) = 30'),
    line(1, 'writev(19</d/directory.mdb>, [{iov_base="..", iov_len=4096}], 1) = 4096'),
    line(1, 'fdatasync(19</d/directory.mdb>) = 0'),
    line(1, 'pwrite64(20</d/directory.mdb>, "..", 128, 40) = 128'),
    line(1, 'write(9<socket:[1]>, "A02 OK \\"done\\"\\r\\n", 15) = 15'),
  ];
  const dsync = (fd: number) => fd === 20;
  t.is(orderProblem(parseLines(good), 'A02', dsync), null);
  const okFirst = [good[0], good[1], good[4], good[2], good[3]];
  t.regex(orderProblem(parseLines(okFirst), 'A02', dsync) ?? '', /no O_DSYNC write/);
  const unsynced = [good[0], good[1], good[3], good[2], good[4]];
  t.regex(orderProblem(parseLines(unsynced), 'A02', dsync) ?? '', /was not flushed/);
});

function parseLines(lines: string[]): TracedCall[] {
  return parseTrace(lines.join('\n'));
}
