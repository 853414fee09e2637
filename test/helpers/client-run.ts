/**
 * Runs `mupdated client` as a child process for tests: scripted (commands on
 * stdin), either all at once or step by step while watching its output.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CLI, PASSWORD, tempDir } from './server.js';

export interface ClientRunOptions {
  host?: string;
  user?: string;
  /** Written to a password file; null: no --password-file at all. */
  password?: string | null;
  args?: string[];
  env?: Record<string, string>;
  /** setsid: no controlling terminal (so /dev/tty cannot be opened). */
  detached?: boolean;
  timeoutMs?: number;
}

export interface ClientResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** stdout split into lines (UTF-8), without the last empty one. */
  lines: string[];
}

let passwordFiles: string | undefined;
let fileNo = 0;

/** A password file holding `password` (one line). */
export function passwordFile(password: string): string {
  passwordFiles ??= tempDir('mupdated-client-pw-');
  const path = join(passwordFiles, `pw${++fileNo}`);
  writeFileSync(path, `${password}\n`, { mode: 0o600 });
  return path;
}

export function clientArgs(port: number, o: ClientRunOptions = {}): string[] {
  return [
    CLI,
    'client',
    `${o.host ?? '127.0.0.1'}:${port}`,
    '--user',
    o.user ?? 'mupdateadmin',
    ...(o.password === null ? [] : ['--password-file', passwordFile(o.password ?? PASSWORD)]),
    ...(o.args ?? []),
  ];
}

/** A running scripted client: type lines, wait for output, end stdin. */
export class ClientProcess {
  stdout = '';
  stderr = '';
  private wake: (() => void) | null = null;
  private cursor = 0;
  readonly done: Promise<ClientResult>;

  constructor(
    readonly child: ChildProcess,
    timeoutMs: number,
  ) {
    child.stdout!.on('data', (d: Buffer) => {
      this.stdout += d.toString('utf8');
      this.wake?.();
    });
    child.stderr!.on('data', (d: Buffer) => {
      this.stderr += d.toString('utf8');
      this.wake?.();
    });
    child.stdin!.on('error', () => {
      /* it exited */
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    this.done = new Promise((resolve) =>
      child.once('close', (code, signal) => {
        clearTimeout(timer);
        this.wake?.();
        const lines = this.stdout.split('\n');
        if (lines[lines.length - 1] === '') lines.pop();
        resolve({ code, signal, stdout: this.stdout, stderr: this.stderr, lines });
      }),
    );
  }

  type(line: string | Buffer): void {
    this.child.stdin!.write(typeof line === 'string' ? Buffer.from(`${line}\n`, 'utf8') : line);
  }

  end(): Promise<ClientResult> {
    this.child.stdin!.end();
    return this.done;
  }

  get exited(): boolean {
    return this.child.exitCode !== null || this.child.signalCode !== null;
  }

  /** Waits until stdout (or stderr) printed after the previous wait matches; bounded. */
  async waitFor(what: RegExp, timeoutMs = 30_000, stream: 'stdout' | 'stderr' = 'stdout'): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    for (let i = 0; i < 100_000; i++) {
      const text = stream === 'stdout' ? this.stdout : this.stderr;
      const rest = stream === 'stdout' ? text.slice(this.cursor) : text;
      const m = what.exec(rest);
      if (m) {
        if (stream === 'stdout') this.cursor += m.index + m[0].length;
        return m[0];
      }
      if (this.exited || Date.now() >= deadline) break;
      await new Promise<void>((r) => {
        const t = setTimeout(
          () => {
            this.wake = null;
            r();
          },
          Math.min(200, Math.max(1, deadline - Date.now())),
        );
        this.wake = () => {
          clearTimeout(t);
          this.wake = null;
          r();
        };
      });
    }
    throw new Error(`client output never matched ${what}; stdout:\n${this.stdout}\nstderr:\n${this.stderr}`);
  }
}

export function startClient(port: number, o: ClientRunOptions = {}): ClientProcess {
  const child = spawn(process.execPath, clientArgs(port, o), {
    stdio: ['pipe', 'pipe', 'pipe'],
    env: { ...process.env, NO_COLOR: '', ...(o.env ?? {}) },
    detached: o.detached ?? false,
  });
  return new ClientProcess(child, o.timeoutMs ?? 60_000);
}

/** Runs a whole script (lines on stdin, then EOF) and returns what the client printed. */
export function runClient(port: number, lines: Array<string | Buffer>, o: ClientRunOptions = {}): Promise<ClientResult> {
  const c = startClient(port, o);
  for (const l of lines) c.type(l);
  return c.end();
}

/** The `--json` object `mupdated client` prints for a FIND's MAILBOX answer; `rights` as (id, rights) pairs. */
export function jsonFindMailbox(
  tag: string,
  name: string,
  location: string,
  acl: string,
  rights: Array<[string, string]>,
): Record<string, unknown> {
  return { command: 'find', tag, response: 'MAILBOX', name, location, acl, rights: rights.map(([id, r]) => ({ id, rights: r })) };
}
