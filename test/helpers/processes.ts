/**
 * Processes a test started, seen through Linux /proc: whether one is alive,
 * its children, waiting for them to go.
 */
import { readdirSync, readFileSync } from 'node:fs';

/** Whether a process exists (EPERM: it does, and is someone else's). */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Direct children of a process (from /proc). */
export function childrenOf(pid: number): number[] {
  const kids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'latin1');
      // pid (comm) state ppid ... ; comm may contain spaces and parentheses
      const after = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(after[1]) === pid) kids.push(Number(entry));
    } catch {
      /* gone */
    }
  }
  return kids;
}

/** Children, grandchildren ... of a process (bounded walk). */
export function descendantsOf(pid: number): number[] {
  const out: number[] = [];
  const queue = [pid];
  for (let i = 0; i < 1000 && queue.length; i++) {
    const p = queue.shift()!;
    for (const k of childrenOf(p)) {
      out.push(k);
      queue.push(k);
    }
  }
  return out;
}

/** Waits until the processes are gone (bounded); the ones still there. */
export async function waitGone(pids: number[], timeoutMs: number): Promise<number[]> {
  const deadline = Date.now() + timeoutMs;
  let left = pids.filter(alive);
  while (left.length && Date.now() < deadline) {
    await new Promise<void>((r) => setTimeout(r, 50));
    left = left.filter(alive);
  }
  return left;
}
