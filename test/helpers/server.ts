/**
 * Starts a real `mupdated` in a child process on a free loopback port, with a
 * fresh data folder in a temp dir, for tests.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The project root (tests run from dist/test/...). */
export const PROJECT_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
export const CLI = join(PROJECT_ROOT, 'dist/src/cli/main.js');

export const PASSWORD = 'secret';

// Test servers hash at scrypt N=2^14 (16 MiB): dozens of tests log in at once on a shared
// machine. passwords.test.ts checks the production cost (N=2^17) explicitly.
process.env.MUPDATED_SCRYPT_LOG2N ??= '14';

export interface UserSpec {
  name: string;
  admin?: boolean;
  password?: string;
}

/** The admin logins most tests give a server: the MUPDATE admin and two backends. */
export const BACKEND_ADMINS: UserSpec[] = [
  { name: 'mupdateadmin', admin: true },
  { name: 'backend1', admin: true },
  { name: 'backend2', admin: true },
];

export interface StartOptions {
  /** Extra config-file lines (`key: value`). */
  config?: Record<string, string | number | boolean>;
  /** Users to create before start; default one admin `mupdateadmin`. */
  users?: UserSpec[];
  /** Reuse an existing data folder (restarts). */
  dataDir?: string;
  /** Extra command-line arguments. */
  args?: string[];
  mode?: 'master' | 'slave';
  env?: Record<string, string>;
  /** Run as this user (the data folder must be theirs). */
  runAs?: { uid: number; gid: number };
}

export interface RunningMupdated {
  host: string;
  port: number;
  dataDir: string;
  child: ChildProcess;
  /** Everything the server logged (JSON lines on stderr). */
  logs: string[];
  stop(signal?: NodeJS.Signals): Promise<number | null>;
  /** Waits for a log line whose msg matches. */
  waitForLog(match: RegExp, timeoutMs?: number): Promise<string>;
}

const madeDirs: string[] = [];
// Every folder made here goes when the test worker exits, whatever the test did:
// a run must not leave a thousand folders (some holding passwords) in /tmp.
process.once('exit', () => {
  for (const dir of madeDirs) rmSync(dir, { recursive: true, force: true, maxRetries: 2 });
});

export function tempDir(prefix = 'mupdated-test-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  madeDirs.push(dir);
  return dir;
}

export function addUser(dataDir: string, user: UserSpec): void {
  const args = [CLI, 'user', 'add', user.name, '--data', dataDir, ...(user.admin ? ['--admin'] : [])];
  const r = spawnSync(process.execPath, args, { input: `${user.password ?? PASSWORD}\n`, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`user add failed: ${r.stderr}`);
}

/**
 * Stores the users with the same UserDb code `mupdated user add` runs, in this
 * process: a `user add` child per user costs a node start each, and most
 * servers the tests start get three users. The CLI itself is tested in
 * passwords.test.ts and private-files.test.ts (and addUser above).
 */
async function addUsersInProcess(dataDir: string, users: UserSpec[]): Promise<void> {
  if (users.length === 0) return; // no users.mdb at all, as before
  // imported here, not at the top: the scrypt cost is read when the module loads, after the line above sets it
  const { UserDb } = await import('../../src/sasl/user-db.js');
  const db = UserDb.open(dataDir);
  try {
    for (const u of users) await db.set(u.name, Buffer.from(u.password ?? PASSWORD, 'utf8'), !!u.admin);
  } finally {
    await db.close();
  }
}

function configText(config: Record<string, string | number | boolean>): string {
  return (
    Object.entries(config)
      .map(([k, v]) => `${k}: ${typeof v === 'boolean' ? (v ? 'yes' : 'no') : v}`)
      .join('\n') + '\n'
  );
}

export async function startMupdated(options: StartOptions = {}): Promise<RunningMupdated> {
  const dataDir = options.dataDir ?? tempDir();
  const fresh = options.dataDir === undefined;
  if (fresh) await addUsersInProcess(dataDir, options.users ?? [{ name: 'mupdateadmin', admin: true }]);
  const configPath = join(dataDir, 'test.conf');
  writeFileSync(configPath, configText({ failedloginpause: 0.05, ...(options.config ?? {}) }));
  const args = [
    CLI,
    options.mode ?? 'master',
    '--data',
    dataDir,
    '--listen',
    '127.0.0.1:0',
    '--config',
    configPath,
    ...(options.args ?? []),
  ];
  const child = spawn(process.execPath, args, {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, MUPDATED_LOG_LEVEL: 'debug', ...(options.env ?? {}) },
    ...(options.runAs ?? {}),
  });
  const logs: string[] = [];
  const waiters: Array<{ match: RegExp; resolve: (l: string) => void }> = [];
  let partial = '';
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (d: string) => {
    partial += d;
    const lines = partial.split('\n');
    partial = lines.pop()!;
    for (const line of lines) {
      logs.push(line);
      for (const w of waiters.slice()) {
        if (w.match.test(line)) {
          waiters.splice(waiters.indexOf(w), 1);
          w.resolve(line);
        }
      }
    }
  });
  child.stdout.resume();
  const exited = new Promise<number | null>((res) => child.once('exit', (code, sig) => res(code ?? (sig ? -1 : null))));
  const waitForLog = (match: RegExp, timeoutMs = 20_000) => {
    const seen = logs.find((l) => match.test(l));
    if (seen) return Promise.resolve(seen);
    return new Promise<string>((resolvePromise, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`no log line matching ${match} within ${timeoutMs} ms; logs:\n${logs.join('\n')}`)),
        timeoutMs,
      );
      waiters.push({
        match,
        resolve: (l) => {
          clearTimeout(timer);
          resolvePromise(l);
        },
      });
      void exited.then((code) => {
        clearTimeout(timer);
        reject(new Error(`mupdated exited (${code}) before logging ${match}; logs:\n${logs.join('\n')}`));
      });
    });
  };
  let line: string;
  try {
    // Bounded, with room for a machine busy with other test files.
    line = await waitForLog(/"msg":"listening"/, 60_000);
  } catch (err) {
    // A server that did not come up must not outlive the test: its pipes would keep the test file's process alive.
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    throw err;
  }
  const { host, port } = JSON.parse(line) as { host: string; port: number };
  return {
    host,
    port,
    dataDir,
    child,
    logs,
    waitForLog,
    async stop(signal: NodeJS.Signals = 'SIGTERM') {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return exited;
    },
  };
}

export function removeDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
}
