/**
 * The two servers under test, each started on a private temp folder with
 * the benchmark directory preloaded offline: `mupdated master` (preloaded with
 * `mupdated load`) and a real Cyrus 3.6 `mupdate -m` under its own master(8)
 * and private imapd.conf (preloaded with `cvt_cyrusdb flat -> twoskip`, see
 * dataset.ts). Both listen on 127.0.0.1 only.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { chownSync, closeSync, mkdtempSync, openSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CYRUS_BIN, startCyrusMaster, type CyrusServer } from '../test/helpers/cyrus.js';
import { childrenOf } from '../test/helpers/processes.js';
import { runProgram } from '../test/helpers/run.js';
import { addUser, CLI } from '../test/helpers/server.js';
import { writeCyrusFlat } from './dataset.js';

export type ServerKind = 'mupdated' | 'cyrus';

export const PASSWORD = 'secret';
export const ADMIN = 'mupdateadmin';
/** Connection ceiling configured on both servers (the idle-connection workload needs 10,000). */
export const MAX_CONNECTIONS = 12_000;
/** File descriptors each server (and the benchmark) may use. */
export const MAX_FDS = 20_000;

export interface ProcessMemory {
  rssKb: number;
  anonKb: number;
  fileKb: number;
  hwmKb: number;
}

export interface ServerUnderTest {
  kind: ServerKind;
  port: number;
  version: string;
  /** How long the offline preload took (ms). */
  preloadMs: number;
  /** The server's processes (for memory). */
  pids(): number[];
  running(): boolean;
  /** What the server printed or why it stopped, for failure reports. */
  diagnostics(): string;
  stop(): Promise<void>;
  /**
   * (mupdated only) SIGKILLs the server, waits for it to go, and spawns it
   * again on the same data and port; resolves right after the spawn, with
   * performance.now() at the kill and at the spawn.
   */
  killAndRestart?(): Promise<{ killedAt: number; spawnedAt: number }>;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export function processMemory(pid: number): ProcessMemory | null {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = (key: string) => Number(new RegExp(`^${key}:\\s+(\\d+)`, 'm').exec(status)?.[1] ?? 0);
    return { rssKb: kb('VmRSS'), anonKb: kb('RssAnon'), fileKb: kb('RssFile') + kb('RssShmem'), hwmKb: kb('VmHWM') };
  } catch {
    return null;
  }
}

function run(file: string, args: string[], timeoutMs: number): Promise<{ code: number | null; out: string }> {
  return runProgram(file, args, { timeoutMs }).then((r) => ({ code: r.code, out: `${r.stdout}${r.stderr}` }));
}

// ---------------------------------------------------------------------------
// mupdated

/** Starts `mupdated master` on a fresh folder preloaded from a ctl_mboxlist -d JSON dump. */
export async function startMupdatedUnderTest(dumpPath: string, users: string[]): Promise<ServerUnderTest> {
  const dataDir = mkdtempSync(join(tmpdir(), 'mupdated-bench-'));
  let child: ChildProcess | null = null;
  try {
    for (const name of users) addUser(dataDir, { name, admin: true, password: PASSWORD });
    const t0 = performance.now();
    const load = await run(process.execPath, [CLI, 'load', dumpPath, '--data', dataDir], 30 * 60_000);
    if (load.code !== 0) throw new Error(`mupdated load failed (${load.code}): ${load.out}`);
    const preloadMs = performance.now() - t0;
    const configPath = join(dataDir, 'bench.conf');
    // BENCH_MUPDATED_CONFIG: extra config-file lines for experiments, e.g. "dump_workers: 1"
    writeFileSync(configPath, `max_connections: ${MAX_CONNECTIONS}\n${(process.env.BENCH_MUPDATED_CONFIG ?? '').replace(/\\n/g, '\n')}\n`);
    const logPath = join(dataDir, 'server.log');
    // Logs go to a file: the benchmark process must not spend its CPU reading them.
    // BENCH_MUPDATED_NODE_ARGS: extra node flags for the server, e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof"
    const nodeArgs = (process.env.BENCH_MUPDATED_NODE_ARGS ?? '').split(' ').filter(Boolean);
    const spawnMaster = (listen: string): ChildProcess => {
      const logFd = openSync(logPath, 'w');
      const c = spawn(process.execPath, [...nodeArgs, CLI, 'master', '--data', dataDir, '--listen', listen, '--config', configPath], {
        stdio: ['ignore', 'ignore', logFd],
      });
      closeSync(logFd);
      return c;
    };
    let proc = spawnMaster('127.0.0.1:0');
    child = proc;
    const log = () => {
      try {
        return readFileSync(logPath, 'utf8');
      } catch {
        return '';
      }
    };
    let port = 0;
    for (let i = 0; i < 600 && !port; i++) {
      if (proc.exitCode !== null || proc.signalCode !== null) throw new Error(`mupdated exited at startup: ${log()}`);
      const m = /"msg":"listening"/.test(log())
        ? /"port":(\d+)/.exec(
            log()
              .split('\n')
              .find((l) => l.includes('"listening"'))!,
          )
        : null;
      if (m) port = Number(m[1]);
      else await sleep(50);
    }
    if (!port) throw new Error(`mupdated did not log "listening" within 30 s: ${log()}`);
    // Workloads start once the server says it is ready (its dump worker is up), as a client
    // ordered after it by systemd would: else the first LIST also times the worker's start.
    for (let i = 0; i < 600 && !/"msg":"ready to serve"/.test(log()); i++) await sleep(10);
    if (!/"msg":"ready to serve"/.test(log())) throw new Error(`mupdated did not log "ready to serve" within 6 s: ${log()}`);
    const exitOf = (c: ChildProcess) =>
      new Promise<void>((r) => (c.exitCode !== null || c.signalCode !== null ? r() : c.once('exit', () => r())));
    let exited = exitOf(proc);
    const version = (JSON.parse(readFileSync(join(CLI, '../../../../package.json'), 'utf8')) as { version: string }).version;
    return {
      kind: 'mupdated',
      port,
      version: `mupdated ${version} (Node ${process.versions.node})`,
      preloadMs,
      pids: () => (proc.pid ? [proc.pid] : []),
      running: () => proc.exitCode === null && proc.signalCode === null,
      diagnostics: () => `exit ${proc.exitCode ?? proc.signalCode ?? 'none'}; log tail: ${log().slice(-2000)}`,
      async killAndRestart() {
        const killedAt = performance.now();
        proc.kill('SIGKILL');
        await exited;
        const spawnedAt = performance.now();
        proc = spawnMaster(`127.0.0.1:${port}`);
        exited = exitOf(proc);
        return { killedAt, spawnedAt };
      },
      async stop() {
        if (proc.exitCode === null && proc.signalCode === null) {
          proc.kill('SIGTERM');
          await Promise.race([exited, sleep(15_000)]);
          if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
          await exited;
        }
        rmSync(dataDir, { recursive: true, force: true });
      },
    };
  } catch (e) {
    child?.kill('SIGKILL');
    rmSync(dataDir, { recursive: true, force: true });
    throw e;
  }
}

// ---------------------------------------------------------------------------
// Cyrus

/** Owner of the folder the helper made (cyrus:mail): files added there must match. */
function ownerOf(path: string): { uid: number; gid: number } {
  const st = statSync(path);
  return { uid: st.uid, gid: st.gid };
}

/**
 * Starts a real Cyrus `mupdate -m` (test/helpers/cyrus.ts) whose
 * mailboxes.db holds the first n benchmark entries. Its cyrus.conf service
 * gets `maxfds` and its imapd.conf `mupdate_connections_max` raised for the
 * idle-connection workload; everything else is Cyrus's defaults.
 */
export async function startCyrusUnderTest(n: number): Promise<ServerUnderTest> {
  const server: CyrusServer = await startCyrusMaster({
    extraConfig: { mupdate_connections_max: MAX_CONNECTIONS },
    startTimeoutMs: 120_000,
  });
  try {
    await server.stop();
    const ids = ownerOf(server.dir);
    const conf = readFileSync(server.cyrusConf, 'utf8').replace('maxchild=1', `maxchild=1 maxfds=${MAX_FDS}`);
    writeFileSync(server.cyrusConf, conf);
    const t0 = performance.now();
    const flat = join(server.dir, 'preload.flat');
    await writeCyrusFlat(flat, n);
    chownSync(flat, ids.uid, ids.gid);
    const db = join(server.dir, 'conf', 'mailboxes.db');
    rmSync(db, { force: true });
    const cvt = await run(join(CYRUS_BIN, 'cvt_cyrusdb'), ['-C', server.imapdConf, flat, 'flat', db, 'twoskip'], 30 * 60_000);
    if (cvt.code !== 0) throw new Error(`cvt_cyrusdb failed (${cvt.code}): ${cvt.out}`);
    rmSync(flat, { force: true });
    const preloadMs = performance.now() - t0;
    await server.start();
    const okLine = server.banner.find((l) => l.startsWith('* OK')) ?? '';
    return {
      kind: 'cyrus',
      port: server.port,
      version: `Cyrus ${/"Cyrus IMAP" "([^"]+)"/.exec(okLine)?.[1] ?? okLine}`,
      preloadMs,
      pids: () => {
        const master = server.pid;
        return master && server.running ? [master, ...childrenOf(master)] : [];
      },
      running: () => server.running && !!server.pid && childrenOf(server.pid).length > 0,
      diagnostics: () => `master(8) ${server.running ? 'running' : 'exited'}; output: ${server.output.join('').slice(-2000)}`,
      stop: () => server.cleanup(),
    };
  } catch (e) {
    await server.cleanup();
    throw e;
  }
}
