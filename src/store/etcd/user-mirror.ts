/**
 * Keeps a node's users.mdb equal to the cluster's login records (etcd
 * `u/`), so a login is checked locally. A full read at start (and after a
 * cancelled watch), then a watch. Users created locally with `user add
 * --data` stay: only names that came from etcd are ever removed, and those
 * are remembered in `cluster-users.json` so a removal made while the node
 * was down is applied at the next start. A name in both places: etcd's
 * record wins.
 */
import { cancelWithin, watchPrefixFrom } from './watch-resume.js';
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Etcd3, IWatchResponse, Watcher } from 'etcd3';
import type { Logger } from '../../log.js';
import { decodeUser, readClusterUsers, type OpaqueUserRecord } from './cluster-users.js';
import type { EtcdLayout } from './layout.js';

/** What the mirror needs of the node's user database. */
export interface LocalUsers {
  putRaw(record: OpaqueUserRecord): Promise<void>;
  remove(name: string): Promise<boolean>;
}

const MIRRORED_FILE = 'cluster-users.json';

export class UserMirror {
  private watcher: Watcher | null = null;
  private stopWaiting: () => void = () => {};
  private restarting = false;
  private closed = false;
  private applying: Promise<void> = Promise.resolve();
  private readonly mirrored: Set<string>;
  /** Resolves after the first full read (tests and logs). */
  readonly ready: Promise<void>;

  constructor(
    private readonly client: Etcd3,
    private readonly layout: EtcdLayout,
    private readonly users: LocalUsers,
    private readonly dataDir: string,
    private readonly log: Logger,
    private readonly timeoutMs: number,
    /** Called last by close (the mirror's own etcd client). */
    private readonly onClose: () => void = () => {},
  ) {
    this.mirrored = new Set(readMirrored(dataDir));
    this.ready = this.follow();
  }

  /** Full read then watch, retried while etcd does not answer. */
  private async follow(): Promise<void> {
    for (let attempt = 0; !this.closed; attempt++) {
      try {
        const revision = await this.syncAll();
        await this.watchFrom(revision + 1);
        return;
      } catch (err) {
        if (attempt === 0)
          this.log.warn({ err: (err as Error).message }, 'cluster users: cannot read them from etcd yet (local logins go on), retrying');
        await new Promise((r) => setTimeout(r, Math.min(5_000, 250 * 2 ** attempt)));
      }
    }
  }

  private async syncAll(): Promise<number> {
    const { users, revision } = await readClusterUsers(this.client, this.layout, this.timeoutMs);
    const names = new Set(users.map((u) => u.name));
    for (const record of users) await this.users.putRaw(record);
    for (const name of this.mirrored) if (!names.has(name)) await this.users.remove(name);
    this.mirrored.clear();
    for (const name of names) this.mirrored.add(name);
    this.saveMirrored();
    this.log.info({ users: names.size, revision }, 'cluster users mirrored from etcd');
    return revision;
  }

  private async watchFrom(revision: number): Promise<void> {
    const watcher = watchPrefixFrom(this.client, this.layout.users, revision);
    this.watcher = watcher;
    const created = new Promise<void>((resolve) => {
      watcher.once('connected', () => resolve());
      watcher.once('error', () => resolve());
      // A watch cancelled by close() before etcd created it never says so.
      this.stopWaiting = resolve;
    });
    watcher.on('data', (res: IWatchResponse) => {
      this.applying = this.applying
        .then(() => this.apply(res))
        .catch((err: unknown) => {
          this.log.error({ err: (err as Error).message }, 'cluster users: could not apply a change from etcd; reading them all again');
          void this.restart();
        });
    });
    // A cancelled watch (etcd compacted past it): read everything again.
    // etcd has dropped this watch already: cancelling it would wait for an answer that never comes.
    watcher.on('error', () => void this.restart(false));
    await created;
  }

  private async apply(res: IWatchResponse): Promise<void> {
    for (const event of res.events) {
      const what = this.layout.classify(event.kv.key);
      if (what.kind !== 'user') continue;
      if (event.type === 'Delete') {
        await this.users.remove(what.name);
        this.mirrored.delete(what.name);
        this.log.info({ user: what.name }, 'cluster user removed');
      } else {
        await this.users.putRaw({ ...decodeUser(event.kv.value), name: what.name });
        this.mirrored.add(what.name);
        this.log.info({ user: what.name }, 'cluster user saved');
      }
    }
    if (res.events.length) this.saveMirrored();
  }

  /** Reads every user again and watches anew; `cancelOld` false when etcd itself ended the old watch. */
  private async restart(cancelOld = true): Promise<void> {
    if (this.restarting) return;
    this.restarting = true;
    try {
      const old = this.watcher;
      this.watcher = null;
      if (old && cancelOld) await cancelWithin(old, this.timeoutMs);
      if (!this.closed) await this.follow();
    } finally {
      this.restarting = false;
    }
  }

  private saveMirrored(): void {
    const file = join(this.dataDir, MIRRORED_FILE);
    writeFileSync(`${file}.tmp`, JSON.stringify([...this.mirrored]), { mode: 0o600 });
    renameSync(`${file}.tmp`, file);
  }

  async close(): Promise<void> {
    this.closed = true;
    this.stopWaiting();
    const w = this.watcher;
    this.watcher = null;
    if (w) await cancelWithin(w, this.timeoutMs);
    await this.applying.catch(() => {});
    await this.ready;
    this.onClose();
  }
}

function readMirrored(dataDir: string): string[] {
  try {
    const list = JSON.parse(readFileSync(join(dataDir, MIRRORED_FILE), 'utf8')) as unknown;
    return Array.isArray(list) ? list.filter((n): n is string => typeof n === 'string') : [];
  } catch {
    return [];
  }
}
