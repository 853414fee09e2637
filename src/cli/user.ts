/** `mupdated user add|remove|list`: login identities in the data folder. */
import { UserDb } from '../sasl/user-db.js';

async function readPassword(): Promise<Buffer> {
  if (process.stdin.isTTY) process.stderr.write('Password: ');
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) {
    chunks.push(chunk as Buffer);
    if (Buffer.concat(chunks).includes(0x0a)) break;
  }
  const text = Buffer.concat(chunks).toString('utf8').split(/\r?\n/)[0] ?? '';
  if (text === '') throw new Error('empty password (it is read from standard input)');
  return Buffer.from(text, 'utf8');
}

export async function runUser(action: string | undefined, name: string | undefined, flags: { data?: string | undefined; admin?: boolean | undefined }): Promise<void> {
  const users = UserDb.open(flags.data ?? './data');
  try {
    if (action === 'add' && name) {
      await users.set(name, await readPassword(), !!flags.admin);
      process.stdout.write(`user ${name} saved${flags.admin ? ' (admin)' : ''}\n`);
    } else if (action === 'remove' && name) {
      if (!(await users.remove(name))) throw new Error(`no user '${name}'`);
      process.stdout.write(`user ${name} removed\n`);
    } else if (action === 'list') {
      for (const u of users.list()) process.stdout.write(`${u.name}${u.admin ? '\tadmin' : ''}\n`);
    } else {
      throw new Error('usage: mupdated user add NAME [--admin] | remove NAME | list   [--data DIR]');
    }
  } finally {
    await users.close();
  }
}
