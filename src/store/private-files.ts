/**
 * The data folder holds password hashes and the directory: only the server's
 * own user may read it, whatever the umask it was started with. New folders
 * are made 0700 and new files 0600; a folder found wider is narrowed (the
 * caller logs what changed).
 */
import { chmodSync, mkdirSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { isMainThread } from 'node:worker_threads';

export const PRIVATE_FOLDER_MODE = 0o700;
export const PRIVATE_FILE_MODE = 0o600;
/** Clears every group and other bit of what is created while it applies. */
const PRIVATE_UMASK = 0o077;

/** A mode that was narrowed: the path, and the permission bits before and after. */
export interface Narrowed {
  path: string;
  from: number;
  to: number;
}

/** For a socket, which is created 0777 before the umask: 0600 like a file. */
export const PRIVATE_SOCKET_UMASK = 0o177;

/**
 * Runs `create` (which must create its files synchronously) with a umask that
 * leaves group and others nothing, so files are born private rather than
 * chmod-ed after a moment of being readable.
 */
export function createPrivately<T>(create: () => T, umask = PRIVATE_UMASK): T {
  // Worker threads may not set the umask: a thread that creates files runs inside whilePrivate.
  if (!isMainThread) return create();
  const previous = process.umask(umask);
  try {
    return create();
  } finally {
    process.umask(previous);
  }
}

/** Narrows `path` to at most `wanted`; leaves alone what another user owns (only its owner may chmod it). */
function narrow(path: string, wanted: number): Narrowed | null {
  const st = statSync(path);
  const mode = st.mode & 0o7777;
  if ((mode & PRIVATE_UMASK) === 0 || st.uid !== process.getuid?.()) return null;
  const to = mode & ~PRIVATE_UMASK & wanted;
  chmodSync(path, to);
  return { path, from: mode, to };
}

/**
 * Runs `work`, which creates files on a worker thread (where createPrivately
 * cannot set the umask), under the private umask until it settles: the umask
 * is the process's, so it covers the thread's files too. Nothing else may
 * create files meanwhile (a one-shot tool, not the server).
 */
export async function whilePrivate<T>(work: () => Promise<T>): Promise<T> {
  const previous = process.umask(PRIVATE_UMASK);
  try {
    return await work();
  } finally {
    process.umask(previous);
  }
}

/** Creates the folder 0700 (with its parents) if missing; narrows it to 0700 when found wider. */
export function makePrivateFolder(dir: string): Narrowed[] {
  createPrivately(() => mkdirSync(dir, { recursive: true, mode: PRIVATE_FOLDER_MODE }));
  const folder = narrow(dir, PRIVATE_FOLDER_MODE);
  return folder ? [folder] : [];
}

/**
 * Makes the data folder private and narrows every regular file directly in it
 * (the LMDB files and their locks, the audit log, the status file) to 0600.
 * Returns what it changed, for the log.
 */
export function securePrivateFolder(dir: string): Narrowed[] {
  const changed = makePrivateFolder(dir);
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    if (!entry.isFile()) continue;
    const file = narrow(join(dir, entry.name), PRIVATE_FILE_MODE);
    if (file) changed.push(file);
  }
  return changed;
}

/** `0755 -> 0700`, for log lines. */
export function describeNarrowed(n: Narrowed): string {
  return `${n.path}: mode ${n.from.toString(8).padStart(4, '0')} narrowed to ${n.to.toString(8).padStart(4, '0')}`;
}
