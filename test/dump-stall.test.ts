/**
 * A LIST or UPDATE dump to a client that stops reading (issue 11, finding 7):
 * after `dump_stall_timeout` without progress a LIST ends with `* BYE`, an
 * UPDATE dump is closed without a word (spec 3.9: a Cyrus slave would take a
 * dump followed by BYE as the whole directory); SIGTERM during a stalled
 * LIST says `* BYE` and logs no error.
 *
 * The directory is made larger than every buffer between the server and the
 * client (the server's 4 MiB high-water mark and the kernel's socket
 * buffers), so a client that does not read really stalls the dump.
 */
import test from 'ava';
import { writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { runCli } from './helpers/operator-tools.js';
import { RawClient } from './helpers/raw-client.js';
import { addUser, removeDir, startMupdated, tempDir, type RunningMupdated } from './helpers/server.js';
import { showRun } from './helpers/run.js';

const ENTRIES = 100_000;
const folders: string[] = [];
let template: string;

/** A data folder with ENTRIES mailboxes of about 300 bytes each on the wire (30 MB in all). */
async function bigFolder(): Promise<string> {
  const data = tempDir('dump-stall-');
  folders.push(data);
  addUser(data, { name: 'mupdateadmin', admin: true });
  const load = await runCli(['load', template, '--data', data], { timeoutMs: 300_000 });
  if (load.code !== 0) throw new Error(showRun(load));
  return data;
}

test.before(() => {
  const dir = tempDir('dump-stall-src-');
  folders.push(dir);
  template = join(dir, 'big.json');
  const acl: Record<string, string> = {};
  for (let i = 0; i < 20; i++) acl[`someuser${i}`] = 'lrswipkxtecda';
  const lines = ['{'];
  for (let i = 0; i < ENTRIES; i++) {
    const name = `user.stall${String(i).padStart(6, '0')}`;
    lines.push(
      `${JSON.stringify(name)}: ${JSON.stringify({ name, mbtype: 'e', partition: 'default', server: 'backend1', acl })}${i + 1 < ENTRIES ? ',' : ''}`,
    );
  }
  lines.push('}');
  writeFileSync(template, `${lines.join('\n')}\n`);
});

test.after.always(() => {
  for (const d of folders) removeDir(d);
});

/** Reads everything until the server closes (bounded); returns the last line. */
async function lastLineAfterClose(c: RawClient): Promise<string> {
  c.socket.resume();
  const closed = await c.waitClosed(60_000);
  if (!closed) throw new Error('the server did not close the connection');
  const text = c.takeBuffered().toString('latin1');
  const lines = text.split('\r\n');
  return lines[lines.length - 1] === '' ? lines[lines.length - 2] : lines[lines.length - 1];
}

async function stalledClient(server: RunningMupdated, command: string): Promise<RawClient> {
  const c = await RawClient.login(server.port);
  c.socket.pause();
  c.send(command);
  return c;
}

test('a LIST whose reader stops is ended with * BYE after dump_stall_timeout, logged as a stall; the server stays up', async (t) => {
  const server = await startMupdated({ dataDir: await bigFolder(), config: { dump_stall_timeout: 2 } });
  try {
    const c = await stalledClient(server, 'L1 LIST\r\n');
    const line = await server.waitForLog(/dump stalled/, 60_000);
    t.like(JSON.parse(line), { command: 'LIST', seconds: 2 });
    t.is(await lastLineAfterClose(c), '* BYE "LIST stalled: nothing read for 2 s"');
    const other = await RawClient.login(server.port);
    other.send('N1 NOOP\r\n');
    t.is(await other.readLine(), 'N1 OK "Noop done"');
    other.close();
    t.false(
      server.logs.some((l) => /"level":50/.test(l)),
      'no error logged',
    );
  } finally {
    await server.stop();
  }
});

test('an UPDATE dump whose reader stops is closed after dump_stall_timeout without a BYE (spec 3.9)', async (t) => {
  const server = await startMupdated({ dataDir: await bigFolder(), config: { dump_stall_timeout: 2 } });
  try {
    const c = await stalledClient(server, 'U1 UPDATE\r\n');
    t.like(JSON.parse(await server.waitForLog(/dump stalled/, 60_000)), { command: 'UPDATE' });
    c.socket.resume();
    t.true(await c.waitClosed(60_000));
    const text = c.takeBuffered().toString('latin1');
    t.notRegex(text, /BYE|U1 OK/, 'neither BYE nor OK after a partial dump');
  } finally {
    await server.stop();
  }
});

/**
 * A client that logs in and sends one command at once, then reads nothing
 * until told; when reading it keeps only the last bytes (the dump is tens of MB).
 */
async function tailClient(port: number, command: string): Promise<{ resume(): void; closed: Promise<string> }> {
  const sock = connect({ port, host: '127.0.0.1' });
  await new Promise<void>((r) => sock.once('connect', r));
  const ir = Buffer.from('\0mupdateadmin\0secret').toString('base64');
  sock.write(`A01 AUTHENTICATE "PLAIN" {${ir.length}+}\r\n${ir}\r\n${command}`);
  sock.pause();
  let tail = '';
  sock.on('data', (d: Buffer) => {
    tail = (tail + d.toString('latin1')).slice(-4096);
  });
  const closed = new Promise<string>((resolve) => {
    sock.on('error', () => resolve(tail));
    sock.on('close', () => resolve(tail));
  });
  return { resume: () => sock.resume(), closed };
}

test('SIGTERM during a stalled LIST says * BYE to that client (after what was already sent) and logs no error', async (t) => {
  const server = await startMupdated({ dataDir: await bigFolder() });
  const client = await tailClient(server.port, 'L1 LIST\r\n');
  // The dump stalls once every buffer is full: the server has taken the LIST in hand.
  await server.waitForLog(/"msg":"login"/);
  await new Promise((r) => setTimeout(r, 2000));
  const exited = server.stop('SIGTERM');
  await server.waitForLog(/shutting down/);
  // Still not reading: the BYE is queued behind the unsent dump. Then read it all.
  await new Promise((r) => setTimeout(r, 3000));
  client.resume();
  const tail = await client.closed;
  t.regex(tail, /\r\n\* BYE "Server shutting down"\r\n$/);
  t.notRegex(tail, /L1 OK/, 'the LIST did not finish');
  t.is(await exited, 0);
  t.deepEqual(
    server.logs.filter((l) => /"level":(50|60)/.test(l)),
    [],
    'no error logged',
  );
});
