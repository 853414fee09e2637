/** `mupdated user add|remove|list`: login identities in the data folder, or with --etcd the cluster's. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { askPassword } from '../client/password.js';
import { UserDb } from '../sasl/user-db.js';
import { isCluster, toolConfig, type ToolFlags } from './cluster-tool.js';

const USAGE = 'usage: mupdated user add NAME [--admin] | remove NAME | list   [--data DIR | --etcd URL[,URL...]]';

async function readPassword(): Promise<Buffer> {
  // On a terminal: asked without echo (it would stay on the screen and in the scrollback).
  if (process.stdin.isTTY) {
    const typed = await askPassword('Password: ');
    if (typed === '') throw new Error('empty password');
    return Buffer.from(typed, 'utf8');
  }
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) {
    chunks.push(chunk as Buffer);
    if (Buffer.concat(chunks).includes(0x0a)) break;
  }
  const text = Buffer.concat(chunks).toString('utf8').split(/\r?\n/)[0] ?? '';
  if (text === '') throw new Error('empty password (it is read from standard input)');
  return Buffer.from(text, 'utf8');
}

/** The calls `user` makes, on the data folder's users.mdb or on the cluster's records in etcd. */
interface UserStore {
  save(name: string, password: Buffer, admin: boolean): Promise<void>;
  remove(name: string): Promise<boolean>;
  list(): Promise<Array<{ name: string; admin?: unknown }>>;
  close(): Promise<void>;
}

function localUsers(dataDir: string): UserStore {
  const users = UserDb.open(dataDir);
  return {
    save: (name, password, admin) => users.set(name, password, admin),
    remove: (name) => users.remove(name),
    list: () => Promise.resolve(users.list()),
    close: () => users.close(),
  };
}

async function clusterUsers(flags: ToolFlags): Promise<UserStore> {
  const config = toolConfig(flags);
  const { connectEtcd } = await import('../store/etcd/tls-check.js');
  const { EtcdLayout } = await import('../store/etcd/layout.js');
  const { putClusterUser, readClusterUsers, removeClusterUser } = await import('../store/etcd/cluster-users.js');
  const client = await connectEtcd(config.etcd);
  const layout = new EtcdLayout(config.etcd.prefix);
  const ms = config.etcd.writeTimeoutMs;
  return {
    async save(name, password, admin) {
      // The record is made exactly as a node's own user database makes it (a throw-away one), and stored whole.
      const scratch = mkdtempSync(join(tmpdir(), 'mupdated-user-'));
      const db = UserDb.open(scratch);
      try {
        await db.set(name, password, admin);
        const record = db.get(name);
        if (!record) throw new Error(`user ${name} could not be prepared`);
        await putClusterUser(client, layout, { ...record }, ms);
      } finally {
        await db.close();
        rmSync(scratch, { recursive: true, force: true });
      }
    },
    remove: (name) => removeClusterUser(client, layout, name, ms),
    list: async () => (await readClusterUsers(client, layout, ms)).users,
    close: () => Promise.resolve(client.close()),
  };
}

export async function runUser(
  action: string | undefined,
  name: string | undefined,
  flags: ToolFlags & { admin?: boolean | undefined },
): Promise<void> {
  if (!((action === 'add' || action === 'remove') && name) && action !== 'list') throw new Error(USAGE);
  const cluster = isCluster(toolConfig(flags));
  const users = cluster ? await clusterUsers(flags) : localUsers(toolConfig(flags).dataDir);
  const where = cluster ? ' in the cluster' : '';
  try {
    if (action === 'add') {
      await users.save(name!, await readPassword(), !!flags.admin);
      process.stdout.write(`user ${name} saved${where}${flags.admin ? ' (admin)' : ''}\n`);
    } else if (action === 'remove') {
      if (!(await users.remove(name!))) throw new Error(`no user '${name}'${where}`);
      process.stdout.write(`user ${name} removed${where}\n`);
    } else {
      for (const u of await users.list()) process.stdout.write(`${u.name}${u.admin === true ? '\tadmin' : ''}\n`);
    }
  } finally {
    await users.close();
  }
}
