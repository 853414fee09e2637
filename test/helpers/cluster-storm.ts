/**
 * Helpers for the cluster failure tests (spec cluster.md section 5): cluster
 * nodes as child processes on a real etcd cluster, and "storm writers" that
 * pipeline ACTIVATE/DELETE through a node, reconnect to another node when
 * theirs dies, and record the answer to every write. From the record,
 * `allowedStates` says which final states of each name are consistent with
 * the answers: a write answered OK must be there unless a later write of the
 * same name whose outcome is unknown (NO "may or may not", or no answer at
 * all) replaced it.
 */
import { command, lit, listSorted, login, readResponse, type Rec } from './directory.js';
import type { EtcdCluster } from './etcd-cluster.js';
import type { RawClient } from './raw-client.js';
import { sleep } from './slave-tools.js';
import { startMupdated, type RunningMupdated, type StartOptions } from './server.js';

/** Starts a mupdated master node on the cluster (`--etcd`), with extra config and arguments. */
export function startNode(cluster: EtcdCluster, options: StartOptions = {}): Promise<RunningMupdated> {
  return startMupdated({
    ...options,
    args: ['--etcd', cluster.etcdFlag, ...(options.args ?? [])],
  });
}

/** SIGKILLs a node by its own PID and waits for it to exit. */
export async function killNode(node: RunningMupdated): Promise<void> {
  const child = node.child;
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  process.kill(child.pid!, 'SIGKILL');
  await exited;
}

export type Outcome = 'ok' | 'no' | 'lost';

export interface StormOp {
  name: string;
  verb: 'ACTIVATE' | 'DELETE';
  location: string;
  acl: string;
  outcome?: Outcome;
  /** The status text of a NO. */
  text?: string;
  /** The port of the node it was sent to. */
  port?: number;
  /** Sent after the fault was injected (StormWriter.markFault). */
  afterFault?: boolean;
}

/** The state an op leaves its name in, as a LIST line would show it (`absent` for DELETE). */
export function effectOf(op: StormOp): string {
  return op.verb === 'DELETE' ? 'absent' : `MAILBOX ${op.location} ${op.acl}`;
}

/**
 * One client writing its own names (no other writer touches them, so every
 * answer has one meaning): ACTIVATE, then DELETE, then ACTIVATE again with a
 * new ACL, ... `depth` commands pipelined at once. When its connection dies
 * it marks the unanswered commands lost and goes on through the next node of
 * `ports()` that accepts it. After a batch with a NO it pauses briefly, as a
 * Cyrus backend retrying later would.
 */
export class StormWriter {
  readonly ops: StormOp[] = [];
  reconnects = 0;
  private faultInjected = false;
  private client: RawClient | null = null;
  private clientPort = 0;

  constructor(
    readonly id: string,
    private readonly ports: () => number[],
    private readonly names: number,
    private readonly depth = 8,
  ) {}

  name(i: number): string {
    return `user.storm${this.id}.n${i}`;
  }

  markFault(): void {
    this.faultInjected = true;
  }

  private opFor(i: number): StormOp {
    const k = i % this.names;
    const round = Math.floor(i / this.names);
    const name = this.name(k);
    const location = `backend${this.id}!default`;
    if (round % 2 === 1) return { name, verb: 'DELETE', location, acl: '' };
    return { name, verb: 'ACTIVATE', location, acl: `storm${this.id}\tlrswipkxtecdan\tu${i}\tlr\t` };
  }

  private async connect(deadline: number): Promise<RawClient> {
    for (let attempt = 0; attempt < 200 && Date.now() < deadline; attempt++) {
      for (const port of this.ports()) {
        try {
          const c = await login(port, 'mupdateadmin', 'secret', 10_000);
          this.clientPort = port;
          return c;
        } catch {
          // that node is down: the next one
        }
      }
      await sleep(100);
    }
    throw new Error(`writer ${this.id}: no node accepted a connection`);
  }

  /** Writes `count` ops (bounded also by `deadline`); every op gets an outcome. */
  async run(count: number, deadline: number): Promise<void> {
    try {
      for (let i = 0; i < count && Date.now() < deadline;) {
        this.client ??= await this.connect(deadline);
        const batch: StormOp[] = [];
        let text = '';
        for (let j = 0; j < this.depth && i + j < count; j++) {
          const op = this.opFor(i + j);
          op.port = this.clientPort;
          op.afterFault = this.faultInjected;
          batch.push(op);
          this.ops.push(op);
          text +=
            op.verb === 'DELETE'
              ? `S${i + j} DELETE ${lit(op.name)}\r\n`
              : `S${i + j} ACTIVATE ${lit(op.name)} ${lit(op.location)} ${lit(op.acl)}\r\n`;
        }
        this.client.send(text);
        let refused = false;
        for (let j = 0; j < batch.length; j++) {
          const op = batch[j];
          let line: string;
          try {
            line = await this.client.readLine(30_000);
          } catch {
            for (const lost of batch.slice(j)) lost.outcome = 'lost';
            this.client.close();
            this.client = null;
            this.reconnects++;
            break;
          }
          const m = /^S(\d+) (OK|NO|BAD) (.*)$/.exec(line);
          if (!m || Number(m[1]) !== i + j) throw new Error(`writer ${this.id}: unexpected answer ${JSON.stringify(line)} to op ${i + j}`);
          if (m[2] === 'BAD') throw new Error(`writer ${this.id}: ${line}`);
          op.outcome = m[2] === 'OK' ? 'ok' : 'no';
          if (m[2] === 'NO') {
            op.text = m[3];
            refused = true;
          }
        }
        i += batch.length;
        if (refused) await sleep(50);
      }
    } finally {
      this.client?.close();
      this.client = null;
    }
  }
}

export interface Tally {
  ok: number;
  no: number;
  lost: number;
  okAfterFault: number;
}

export function tally(writers: StormWriter[]): Tally {
  const t: Tally = { ok: 0, no: 0, lost: 0, okAfterFault: 0 };
  for (const w of writers) {
    for (const op of w.ops) {
      t[op.outcome ?? 'lost']++;
      if (op.outcome === 'ok' && op.afterFault) t.okAfterFault++;
    }
  }
  return t;
}

/** Per name, the final states the writers' answers allow (see the module comment). */
export function allowedStates(writers: StormWriter[]): Map<string, Set<string>> {
  const allowed = new Map<string, Set<string>>();
  for (const w of writers) {
    for (const op of w.ops) {
      const set = allowed.get(op.name) ?? new Set(['absent']);
      if (op.outcome === 'ok') allowed.set(op.name, new Set([effectOf(op)]));
      else {
        set.add(effectOf(op));
        allowed.set(op.name, set);
      }
    }
  }
  return allowed;
}

/** A node's (or slave's) directory as name -> `MAILBOX loc acl` / `RESERVE loc` (LIST). */
export async function directoryOf(port: number): Promise<Map<string, string>> {
  return new Map(
    (await listSorted(port)).map(([n, e]) => [n, e.kind === 'MAILBOX' ? `MAILBOX ${e.location} ${e.acl}` : `RESERVE ${e.location}`]),
  );
}

/** Names whose state in `dir` is not one the answers allow (empty when all is well). */
export function violations(dir: Map<string, string>, allowed: Map<string, Set<string>>): string[] {
  const bad: string[] = [];
  for (const [name, states] of allowed) {
    const got = dir.get(name) ?? 'absent';
    if (!states.has(got)) bad.push(`${name}: has ${JSON.stringify(got)}, allowed ${JSON.stringify([...states])}`);
  }
  return bad;
}

/** Writes one ACTIVATE through `port` until it is answered OK (bounded); returns the attempts it took. */
export async function writeUntilOk(port: number, name: string, attempts = 40): Promise<number> {
  for (let i = 1; i <= attempts; i++) {
    let c: RawClient | null = null;
    try {
      c = await login(port, 'mupdateadmin', 'secret', 10_000);
      const r = await command(c, 'W1', `ACTIVATE ${lit(name)} ${lit('backendw!default')} ${lit(`w\tlr\t`)}`, 30_000);
      if (r.status === 'W1 OK "done"') return i;
    } catch {
      // node busy or not answering: try again
    } finally {
      c?.close();
    }
    await sleep(250);
  }
  throw new Error(`ACTIVATE ${name} through ${port} never answered OK in ${attempts} attempts`);
}

/** Opens an UPDATE stream (tag U1) and reads its dump; returns the client, streaming, and the dump. */
export async function openStream(port: number): Promise<{ client: RawClient; dump: Rec[] }> {
  const c = await login(port);
  c.send('U1 UPDATE\r\n');
  const dump = await readResponse(c, 'U1', 'U1', 60_000);
  if (dump.status !== 'U1 OK "streaming starts"') throw new Error(`UPDATE on ${port}: ${dump.status}`);
  return { client: c, dump: dump.records };
}
