/**
 * Tracing a running server's system calls with strace (`-f -y -s`), and
 * reading the trace back as calls with where each starts and returns, so a
 * test can check the order of a sync against a socket write.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';

/** Whether strace can trace a child here (CI installs it; elsewhere a test says why it cannot run). */
export function straceWorks(): boolean {
  return spawnSync('strace', ['-f', '-o', '/dev/null', 'true']).status === 0;
}

/** One system call of the trace: its line numbers where it started and where it returned. */
export interface TracedCall {
  pid: number;
  name: string;
  /** The call's text: arguments and result, joined from its start and resume lines. */
  text: string;
  /** The descriptor's path or socket as `-y` shows it (`/dir/file` or `socket:[...]`), if any. */
  fdPath: string | null;
  fd: number | null;
  started: number;
  returned: number;
  result: number | null;
}

const CALL = /^(\d+)\s+\S+\s+(\w+)\((.*)$/;
const RESUMED = /^(\d+)\s+\S+\s+<\.\.\. (\w+) resumed>(.*)$/;
const FIRST_FD = /^(\d+)<([^>]*)>/;
const RESULT = /\)\s+=\s+(-?\d+)/;

/** Parses `strace -f -tt -y` output (one line per call, or an unfinished line and its resumption). */
export function parseTrace(text: string): TracedCall[] {
  const calls: TracedCall[] = [];
  const open = new Map<number, TracedCall>();
  text.split('\n').forEach((line, index) => {
    const resumed = RESUMED.exec(line);
    if (resumed) {
      const call = open.get(Number(resumed[1]));
      if (!call) return;
      open.delete(call.pid);
      call.text += resumed[3];
      call.returned = index;
      const r = RESULT.exec(resumed[3]);
      call.result = r ? Number(r[1]) : null;
      return;
    }
    const m = CALL.exec(line);
    if (!m) return;
    const fd = FIRST_FD.exec(m[3]);
    const call: TracedCall = {
      pid: Number(m[1]),
      name: m[2],
      text: m[3],
      fd: fd ? Number(fd[1]) : null,
      fdPath: fd ? fd[2] : null,
      started: index,
      returned: index,
      result: null,
    };
    if (m[3].endsWith('<unfinished ...>')) open.set(call.pid, call);
    else {
      const r = RESULT.exec(m[3]);
      call.result = r ? Number(r[1]) : null;
    }
    calls.push(call);
  });
  return calls;
}

/** A strace attached to every thread of a running process, writing to `file`. */
export class AttachedTrace {
  private constructor(
    private readonly strace: ChildProcess,
    readonly file: string,
  ) {}

  /** Attaches to `pid` (all its threads) and resolves once every thread it has now is traced. */
  static async attach(pid: number, file: string, calls: string[]): Promise<AttachedTrace> {
    const strace = spawn('strace', ['-f', '-tt', '-y', '-s', '4096', '-e', `trace=${calls.join(',')}`, '-o', file, '-p', String(pid)], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let said = '';
    strace.stderr.setEncoding('utf8');
    strace.stderr.on('data', (d: string) => (said += d));
    const deadline = Date.now() + 20_000;
    // strace says "Process N attached with M threads" once it traces all of them.
    while (!/attached/.test(said)) {
      if (strace.exitCode !== null || Date.now() > deadline) {
        strace.kill('SIGKILL');
        throw new Error(`strace did not attach to ${pid}: ${said}`);
      }
      await new Promise((r) => setTimeout(r, 50));
    }
    return new AttachedTrace(strace, file);
  }

  /** Detaches and returns the calls traced. */
  async stop(): Promise<TracedCall[]> {
    const exited = new Promise((r) => this.strace.once('exit', r));
    this.strace.kill('SIGINT');
    await exited;
    return parseTrace(readFileSync(this.file, 'utf8'));
  }
}

/** Whether descriptor `fd` of process `pid` was opened with O_DSYNC (each write durable before it returns). */
export function opensDsync(pid: number, fd: number): boolean {
  const info = readFileSync(`/proc/${pid}/fdinfo/${fd}`, 'utf8');
  const flags = /^flags:\s+([0-7]+)/m.exec(info);
  // O_DSYNC is 010000 on Linux (O_SYNC includes it).
  return flags !== null && (parseInt(flags[1], 8) & 0o10000) !== 0;
}
