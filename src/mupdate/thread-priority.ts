/**
 * Lowers the CPU priority of the calling thread alone. Dump workers encode a
 * million entries at a time; on a small machine they would take CPU from the
 * event loop that answers writes. Linux keeps a nice value and a scheduling
 * policy per thread, and setpriority() or sched_setscheduler() given a thread
 * id changes just that thread; the id is read from /proc/thread-self.
 * Elsewhere nothing changes.
 */
import { execFileSync } from 'node:child_process';
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

/**
 * Puts the calling thread under SCHED_IDLE (no privilege needed to lower
 * one's own policy): a thread of normal policy that wakes up (the event loop,
 * on a write's arrival or its flush's end) preempts it at once, where a nice
 * value only shrinks its share of the CPU. Node has no binding for
 * sched_setscheduler, so util-linux's `chrt` sets it; false if that could not
 * be done (no chrt, no /proc), and the thread keeps its nice value.
 */
export function idleThisThread(): boolean {
  const tid = threadId();
  if (tid === null) return false;
  try {
    execFileSync('chrt', ['--idle', '--pid', '0', String(tid)], { stdio: 'ignore', timeout: 5000 });
    return true;
  } catch {
    return false;
  }
}
