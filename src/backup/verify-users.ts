/** `mupdated verify`, users.mdb: every record is filed under its own name and has a password hash. */
import { openUsersDatabase } from './folder-databases.js';
import { show, type Problems } from './problems.js';

export interface UserCounts {
  users: number;
  admins: number;
}

/** Counts and checks the login records of `dir` (none when the folder has no users.mdb). */
export async function checkUsers(dir: string, problems: Problems): Promise<UserCounts | null> {
  const db = openUsersDatabase(dir);
  if (!db) return null;
  const counts: UserCounts = { users: 0, admins: 0 };
  try {
    for (const { key, value } of db.getRange()) {
      counts.users++;
      const record = value as { name?: unknown; hash?: unknown; admin?: unknown } | undefined;
      if (!record || record.name !== key) {
        problems.add(`user record ${show(Buffer.from(String(key), 'utf8'))} does not carry its own name`);
        continue;
      }
      if (typeof record.hash !== 'string' || record.hash.length === 0)
        problems.add(`user ${show(Buffer.from(key, 'utf8'))} has no password hash`);
      if (record.admin === true) counts.admins++;
    }
  } finally {
    await db.close();
  }
  return counts;
}
