/**
 * Running a program to completion for a test: the one process runner of the
 * test helpers (Cyrus tools, the mupdated CLI, openssl ...).
 */
import { spawn } from 'node:child_process';

export interface ProgramResult {
  /** Exit status (null if killed by a signal). */
  code: number | null;
  signal: NodeJS.Signals | null;
  /** Output as bytes (latin1, one char per byte). */
  stdout: string;
  stderr: string;
  /** The command line, for messages. */
  command: string;
}

export interface RunOptions {
  /** Standard input (closed after it). */
  input?: string | Buffer;
  /** Killed with SIGKILL after this long (default 60 s). */
  timeoutMs?: number;
}

/** Runs `file args` to completion, capturing stdout and stderr. */
export function runProgram(file: string, args: string[], options: RunOptions = {}): Promise<ProgramResult> {
  const command = [file, ...args].map((a) => (/[\s']/.test(a) ? `'${a}'` : a)).join(' ');
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (d: Buffer) => out.push(d));
    child.stderr.on('data', (d: Buffer) => err.push(d));
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 60_000);
    child.once('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout: Buffer.concat(out).toString('latin1'), stderr: Buffer.concat(err).toString('latin1'), command });
    });
    child.stdin.on('error', () => {
      /* the program may exit before reading everything */
    });
    child.stdin.end(options.input ?? '');
  });
}

/** A readable summary of a run for assertion messages. */
export function showRun(r: ProgramResult): string {
  return `${r.command} -> exit ${r.code ?? r.signal}\nstdout: ${JSON.stringify(r.stdout)}\nstderr: ${JSON.stringify(r.stderr)}`;
}
