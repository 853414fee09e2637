/**
 * The cluster under test for `npm run bench -- --cluster`: a real 3-member
 * etcd (test/helpers/etcd-cluster.ts: each member its own process, loopback
 * ports, temp folder; its Raft timers are the helper's short ones), the
 * benchmark directory loaded with `mupdated load --etcd`, the admin user
 * added with `mupdated user add --etcd`, and two `mupdated master --etcd`
 * nodes, each with its own data folder (its view). All on 127.0.0.1.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runProgram } from '../test/helpers/run.js';
import { EtcdCluster } from '../test/helpers/etcd-cluster.js';
import { CLI } from '../test/helpers/server.js';
import { PASSWORD, type ServerUnderTest } from './servers.js';

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export interface ClusterNode extends ServerUnderTest {
  dataDir: string;
  /** Starts the node (again, on its data folder); resolves once it listens. */
  restart(): Promise<{ spawnedAt: number }>;
  /** SIGTERM, keeping the data folder (its view) for a restart. */
  stopKeepingData(): Promise<void>;
  /** Everything the node logged so far (JSON lines). */
  logText(): string;
}

export interface ClusterUnderTest {
  etcd: EtcdCluster;
  nodes: [ClusterNode, ClusterNode];
  preloadMs: number;
  stop(): Promise<void>;
}

async function cli(args: string[], input?: string): Promise<void> {
  const r = await runProgram(process.execPath, [CLI, ...args], { timeoutMs: 30 * 60_000, ...(input ? { input } : {}) });
  if (r.code !== 0) throw new Error(`mupdated ${args[0]} failed (${r.code}): ${r.stdout}${r.stderr}`);
}

function startNode(etcdFlag: string, name: string): ClusterNode {
  const dataDir = mkdtempSync(join(tmpdir(), `mupdated-bench-${name}-`));
  let proc: ChildProcess | null = null;
  let port = 0;
  const logPath = join(dataDir, 'server.log');
  const log = () => {
    try {
      return readFileSync(logPath, 'utf8');
    } catch {
      return '';
    }
  };
  const exitedOf = (p: ChildProcess) =>
    new Promise<void>((r) => {
      if (p.exitCode !== null || p.signalCode !== null) r();
      else p.once('exit', () => r());
    });
  const spawnNode = async (): Promise<{ spawnedAt: number }> => {
    const logFd = openSync(logPath, 'a');
    const spawnedAt = performance.now();
    const before = log().length;
    proc = spawn(process.execPath, [CLI, 'master', '--data', dataDir, '--listen', '127.0.0.1:0', '--etcd', etcdFlag], {
      stdio: ['ignore', 'ignore', logFd],
      env: { ...process.env, MUPDATED_LOG_LEVEL: 'info' },
    });
    closeSync(logFd);
    for (let i = 0; i < 1200; i++) {
      if (proc.exitCode !== null || proc.signalCode !== null) throw new Error(`node ${name} exited at startup: ${log().slice(-2000)}`);
      const line = log()
        .slice(before)
        .split('\n')
        .find((l) => l.includes('"msg":"listening"'));
      if (line) {
        port = Number(/"port":(\d+)/.exec(line)![1]);
        return { spawnedAt };
      }
      await sleep(25);
    }
    throw new Error(`node ${name} did not listen within 30 s: ${log().slice(-2000)}`);
  };
  const stopProcess = async () => {
    const p = proc;
    if (!p || p.exitCode !== null || p.signalCode !== null) return;
    p.kill('SIGTERM');
    await Promise.race([exitedOf(p), sleep(15_000)]);
    if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
    await exitedOf(p);
  };
  const node: ClusterNode = {
    kind: 'mupdated',
    dataDir,
    version: `mupdated cluster node ${name}`,
    preloadMs: 0,
    get port() {
      return port;
    },
    pids: () => (proc?.pid ? [proc.pid] : []),
    running: () => !!proc && proc.exitCode === null && proc.signalCode === null,
    diagnostics: () => `node ${name}: exit ${proc?.exitCode ?? proc?.signalCode ?? 'none'}; log tail: ${log().slice(-2000)}`,
    restart: spawnNode,
    stopKeepingData: stopProcess,
    logText: log,
    async stop() {
      await stopProcess();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
  return node;
}

/** Starts etcd, loads the dump into it, adds the admin, starts nodes A and B. */
export async function startClusterUnderTest(dumpPath: string, admin: string): Promise<ClusterUnderTest> {
  const etcd = await EtcdCluster.start(3);
  const started: ClusterNode[] = [];
  try {
    const t0 = performance.now();
    await cli(['load', dumpPath, '--etcd', etcd.etcdFlag]);
    const preloadMs = performance.now() - t0;
    await cli(['user', 'add', admin, '--admin', '--etcd', etcd.etcdFlag], `${PASSWORD}\n`);
    for (const name of ['A', 'B']) {
      const n = startNode(etcd.etcdFlag, name);
      started.push(n);
      await n.restart();
    }
    return {
      etcd,
      nodes: [started[0], started[1]],
      preloadMs,
      async stop() {
        for (const n of started) await n.stop();
        await etcd.stop();
      },
    };
  } catch (e) {
    for (const n of started) await n.stop();
    await etcd.stop();
    throw e;
  }
}
