/**
 * Lowers the CPU priority of the calling thread alone. Dump workers encode a
 * million entries at a time; on a small machine they would take CPU from the
 * event loop that answers writes. Linux keeps a nice value per thread, and
 * setpriority() given a thread id changes just that thread; the id is read
 * from /proc/thread-self. Elsewhere nothing changes.
 */
import { readlinkSync } from 'node:fs';
import { setPriority } from 'node:os';

/** The calling thread's kernel id, or null where /proc/thread-self does not exist. */
function threadId(): number | null {
  try {
    // "<pid>/task/<tid>"
    const tid = Number(readlinkSync('/proc/thread-self').split('/').pop());
    return Number.isInteger(tid) && tid > 0 ? tid : null;
  } catch {
    return null;
  }
}

/** Sets the calling thread's nice value (raising it needs no privilege); false if it could not. */
export function niceThisThread(nice: number): boolean {
  const tid = threadId();
  if (tid === null) return false;
  try {
    setPriority(tid, nice);
    return true;
  } catch {
    return false;
  }
}
