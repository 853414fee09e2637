/**
 * A backend's startup push from a `ctl_mboxlist -d` dump, like
 * `ctl_mboxlist -m` but pipelined and never deleting anything local: reads
 * the dump, LISTs the backend's entries on the master, looks up what differs
 * and writes what must change.
 */
import { createReadStream } from 'node:fs';
import { entryFromData } from '../resync/reconcile.js';
import type { MupdateConnection } from '../mupdate/client/connection.js';
import { MupdateClientError } from '../mupdate/client/errors.js';
import { commandResult, isStatus, type CommandResult, type Response } from '../mupdate/client/responses.js';
import { showBytes } from '../admin/conflict-view.js';
import { judgeLookUp, planPush, type LocalMailbox } from './push-plan.js';
import { PackedMailboxes } from './packed-mailboxes.js';
import { readLocal } from './local-dump.js';

/** Reads the dump in 64 KiB pieces: measured faster to read a 30 MB dump than 1 MiB ones, which outgrow the CPU's cache. */
const READ_PIECE = 1 << 16;

interface Command {
  word: string;
  args: Buffer[];
  label: string;
}

/** Runs commands with up to `window` in flight; responses come back in order. */
async function pipeline(
  conn: MupdateConnection,
  commands: Command[],
  window: number,
  progress: (done: number) => void,
): Promise<CommandResult[]> {
  const results: CommandResult[] = [];
  let sent = 0;
  const sendMore = () => {
    while (sent < commands.length && sent - results.length < window) {
      const c = commands[sent];
      conn.send(`P${sent}`, c.word, c.args);
      sent++;
    }
  };
  sendMore();
  while (results.length < commands.length) {
    const data: Response[] = [];
    const status = await conn.collectUntil(data, isStatus, 'the master closed the connection', 120_000);
    if (status.word === 'BYE') throw new MupdateClientError('the master ended the session (BYE)');
    results.push(commandResult(status, data));
    progress(results.length);
    sendMore();
  }
  return results;
}

function progressBar(label: string, total: number): (done: number) => void {
  if (!process.stderr.isTTY || total === 0) return () => {};
  let last = -1;
  return (done) => {
    const pct = Math.floor((done / total) * 100);
    if (pct === last && done !== total) return;
    last = pct;
    const width = 30;
    const filled = Math.round((done / total) * width);
    process.stderr.write(`\r${label} [${'#'.repeat(filled)}${' '.repeat(width - filled)}] ${done}/${total}${done === total ? '\n' : ''}`);
  };
}

/** What `pushDump` needs: who we are, how to reach the master, and how to push. */
export interface PushOptions {
  /** This backend's server name (`BACKEND` of `BACKEND!partition`). */
  backend: string;
  /** Opens the logged-in session to the master (called once the dump has been read). */
  connect: () => Promise<MupdateConnection>;
  /** Commands in flight at once. */
  window: number;
  dryRun: boolean;
  /** One report line (stdout). */
  out: (line: string) => void;
}

/** The dump file does not exist or is a folder (exit code 2, like bad usage). */
export class DumpUnreadableError extends Error {
  override name = 'DumpUnreadableError';
}

/**
 * Pushes a backend's `ctl_mboxlist -d` dump to the master: 0 when the master
 * now matches it, 3 when some mailboxes need review or a write was refused.
 * The dump is read whole before the master is reached, so a dump that cannot
 * be read never opens a session.
 */
export async function pushDump(dump: string, options: PushOptions): Promise<number> {
  const { backend, window, out } = options;
  let local: PackedMailboxes;
  try {
    local = await readLocal(dump === '-' ? process.stdin : createReadStream(dump, { highWaterMark: READ_PIECE }), backend);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT' || (err as NodeJS.ErrnoException).code === 'EISDIR') {
      throw new DumpUnreadableError(`mupdated push: cannot read ${dump}: ${(err as Error).message}`);
    }
    throw err;
  }
  const conn = await options.connect();
  let review = 0;
  // On a mupdated master a claim on a mailbox active elsewhere is queued for an operator (never applied);
  // on Cyrus it would overwrite, so there it is only reported.
  const queuesConflicts = /"mupdated"/.test(conn.bannerText);
  try {
    // A NOOP first: this is not ctl_mboxlist, so the master need not hide other servers' entries from FIND.
    await conn.command('X00', 'NOOP', [], 30_000);
    const listed = new PackedMailboxes();
    const list = await conn.commandStreaming(
      'X0',
      'LIST',
      [Buffer.from(`${backend}!`)],
      (word, args) => {
        const e = entryFromData(word, args);
        if (e) listed.add(e.name, e.location, e.acl, e.state);
      },
      120_000,
    );
    if (list.status !== 'OK') throw new MupdateClientError(`the master refused LIST (${list.status})`);
    const plan = planPush(local, listed);

    const finds = await pipeline(
      conn,
      plan.lookUp.map((m) => ({ word: 'FIND', args: [m.name], label: showBytes(m.name) })),
      window,
      progressBar('looking up', plan.lookUp.length),
    );
    const toActivate = [...plan.reactivate];
    const toQueue: LocalMailbox[] = [];
    plan.lookUp.forEach((m, i) => {
      const found = finds[i].data.map((r) => entryFromData(r.word, r.args)).find((e) => e !== null) ?? null;
      if (judgeLookUp(backend, found) === 'activate') return void toActivate.push(m);
      review++;
      out(`Review (held by ${showBytes(found!.location)} on the master; local copy kept): ${showBytes(m.name)}`);
      if (queuesConflicts && found!.state === 'active') toQueue.push(m);
    });
    for (const name of plan.removeFromMaster) out(`Remove from MUPDATE: ${showBytes(name)}`);
    for (const m of toActivate) out(`Force Activate: ${showBytes(m.name)}`);
    if (options.dryRun) {
      out(
        `# dry run: ${plan.inSync} in sync, ${plan.removeFromMaster.length} to remove, ${toActivate.length} to activate, ` +
          `${review} to review${toQueue.length ? ` (${toQueue.length} to be queued as conflicts)` : ''}`,
      );
      return review ? 3 : 0;
    }
    const commands: Command[] = [
      ...plan.removeFromMaster.map((n) => ({ word: 'DELETE', args: [n], label: showBytes(n) })),
      ...toActivate.map((m) => ({ word: 'ACTIVATE', args: [m.name, m.location, m.acl], label: showBytes(m.name) })),
      // Refused by the master's conflict rule; the claim lands in its operator queue.
      ...toQueue.map((m) => ({ word: 'ACTIVATE', args: [m.name, m.location, m.acl], label: showBytes(m.name) })),
    ];
    const results = await pipeline(conn, commands, window, progressBar('pushing', commands.length));
    let refused = 0;
    const removedOk = results.slice(0, plan.removeFromMaster.length).filter((r) => r.status === 'OK').length;
    const activatedOk = results.slice(plan.removeFromMaster.length).filter((r) => r.status === 'OK').length;
    results.forEach((r, i) => {
      if (r.status === 'OK') return;
      refused++;
      out(`Refused (${commands[i].word}: ${r.status} ${r.text}): ${commands[i].label}`);
    });
    out(`# ${plan.inSync} in sync, ${removedOk} removed, ${activatedOk} activated, ${review} to review, ${refused} refused`);
    return review || refused ? 3 : 0;
  } finally {
    await conn.logout();
  }
}
