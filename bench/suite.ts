/**
 * The suites: the order workloads run in against one server (reads of the
 * untouched directory first, then memory, then writes, the memory at the end
 * last), the second directory's LIST, the cluster's workloads, and the
 * Cyrus backend the push workloads need.
 */
import { chownSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CYRUS_BIN } from '../test/helpers/cyrus.js';
import { CyrusBackend } from '../test/helpers/cyrus-backend.js';
import { runProgram } from '../test/helpers/run.js';
import { startClusterUnderTest } from './cluster-servers.js';
import {
  clusterActivate16x8,
  clusterActivateLatency,
  clusterLeaderKill,
  clusterRestartCatchUp,
  type ClusterContext,
} from './cluster-workloads.js';
import { idleConnections, memory, memoryAtEnd } from './connection-workloads.js';
import { entryAt, PER_USER, usersOf, writeBackendFlat, writeMasterDump } from './dataset.js';
import { activateDuringDumps, resyncDuringWrites } from './dump-workloads.js';
import { frontendSlave } from './frontend-workloads.js';
import { dumpAll, listAll } from './listing-workloads.js';
import { WrongAnswer } from './measure.js';
import { clusterSizes, log, only, quick, sizes, withFrontend } from './options.js';
import { propagation } from './propagation-workload.js';
import { pushWithCtlMboxlist, pushWithMupdated, type PushSetup } from './push-workloads.js';
import { find16x8, mixed } from './read-workloads.js';
import type { Results } from './report.js';
import { pushCount, type WorkloadId } from './rows.js';
import { PASSWORD, startCyrusUnderTest, startMupdatedUnderTest, type ServerKind, type ServerUnderTest } from './servers.js';
import { settle, type Context, type Measurement } from './workload-kit.js';
import { activate16x8, activate1x1, churn, createSequential } from './write-workloads.js';

export async function runOne(ctx: Context, id: WorkloadId, fn: () => Promise<Measurement>, results: Results): Promise<void> {
  if (only && !only.has(id)) return;
  // The client's own garbage (a million-entry dump written, the last workload's answers) is
  // collected before, not during, a measurement: `npm run bench` runs node with --expose-gc.
  (globalThis as { gc?: () => void }).gc?.();
  const settled = await settle(ctx);
  const t0 = performance.now();
  let m: Measurement;
  try {
    m = await fn();
  } catch (e) {
    const err = e as Error;
    if (err instanceof WrongAnswer) m = { value: null, correct: false, error: `wrong answer: ${err.message}`, details: {} };
    else if (!ctx.server.running()) {
      // the server under test died: that is its result, not a harness error
      m = {
        value: null,
        correct: true,
        error: `server failed: ${err.message}`,
        details: { server: ctx.server.diagnostics().slice(0, 500) },
      };
    } else m = { value: null, correct: false, error: `harness error: ${err.stack ?? err.message}`, details: {} };
  }
  m.details.wallSeconds = Math.round(performance.now() - t0) / 1000;
  if (settled > 1) m.details.waitedForIdleSeconds = Math.round(settled * 10) / 10;
  results.set(id, m);
  log(
    `${ctx.server.kind} ${id}: ${m.value === null ? 'no value' : m.value.toFixed(3)}${m.correct ? '' : ' WRONG'}${m.error ? ` (${m.error.split('\n')[0]})` : ''}`,
  );
}

export async function runSuite(
  server: ServerUnderTest,
  push: PushSetup | null,
  pushDump: string,
  pushPasswordFile: string,
  results: Results,
): Promise<Results> {
  const ctx: Context = { server, sizes, log };
  // reads of the untouched preloaded directory first, then memory, then writes
  const plan: Array<[WorkloadId, (c: Context) => Promise<Measurement>]> = [
    ['list', listAll],
    ['dump', dumpAll],
    ['memory', memory],
    ['dumpWriter', activateDuringDumps],
    ['resync', resyncDuringWrites],
    ['act1', activate1x1],
    ['create', createSequential],
    ['act16', activate16x8],
    ['churn', churn],
    ['find', find16x8],
    ['mixed', mixed],
    ['propagation', (c) => propagation(c)],
  ];
  for (const [id, fn] of plan) await runOne(ctx, id, () => fn(ctx), results);
  const readFile = (p: string) => readFileSync(p, 'utf8');
  if (server.kind === 'mupdated') {
    const setup: PushSetup = push ?? {
      backendConfig: '',
      dumpPath: pushDump,
      passwordFile: pushPasswordFile,
      mailboxes: pushCount,
      cyrusBin: CYRUS_BIN,
      sample: pushSample(),
    };
    await runOne(ctx, 'push', () => pushWithMupdated(ctx, setup), results);
    if (push) await runOne(ctx, 'pushCtlToMupdated', () => pushWithCtlMboxlist(ctx, push, readFile), results);
  } else if (push) {
    await runOne(ctx, 'push', () => pushWithCtlMboxlist(ctx, push, readFile), results);
  }
  // (--quick leaves it out unless asked for: two more slave starts and first syncs, past the CI test's budget)
  if (!quick || withFrontend) await runOne(ctx, 'frontend', () => frontendSlave(ctx), results);
  await runOne(ctx, 'idle', () => idleConnections(ctx), results);
  // last: what the whole suite left behind in the server's memory
  await runOne(ctx, 'memEnd', () => memoryAtEnd(ctx), results);
  return results;
}

/**
 * The second, smaller directory (sizes.smallEntries, the first entries of the
 * same dataset) on a fresh server of the kind, for `list200k`: LIST of it,
 * then the server is stopped.
 */
export async function runSmallDirectory(kind: ServerKind, work: string, results: Results): Promise<void> {
  if (only && !only.has('list200k')) return;
  const n = sizes.smallEntries;
  log(`starting ${kind} with ${n.toLocaleString('en-US')} preloaded entries (the second directory)`);
  let server: ServerUnderTest;
  if (kind === 'mupdated') {
    const dumpPath = join(work, 'small-directory.json');
    await writeMasterDump(dumpPath, n);
    server = await startMupdatedUnderTest(dumpPath, ['mupdateadmin']);
    rmSync(dumpPath, { force: true });
  } else {
    server = await startCyrusUnderTest(n);
  }
  try {
    const ctx: Context = { server, sizes: { ...sizes, entries: n }, log };
    await runOne(ctx, 'list200k', () => listAll(ctx), results);
  } finally {
    await server.stop();
  }
}

/** The cluster workloads, on their own preloaded cluster, after both single servers. */
export async function runClusterSuite(work: string, results: Results): Promise<number> {
  const dumpPath = join(work, 'cluster-directory.json');
  await writeMasterDump(dumpPath, clusterSizes.entries);
  log(`starting a 3-member etcd and 2 nodes with ${clusterSizes.entries.toLocaleString('en-US')} entries loaded into etcd`);
  const c = await startClusterUnderTest(dumpPath, 'mupdateadmin');
  try {
    const [a, b] = c.nodes;
    const ctx: ClusterContext = {
      server: a,
      sizes: { ...sizes, entries: clusterSizes.entries },
      log,
      cluster: c,
      catchUpChanges: clusterSizes.catchUp,
    };
    await runOne(ctx, 'clAct16', () => clusterActivate16x8(ctx), results);
    await runOne(ctx, 'clLatency', () => clusterActivateLatency(ctx), results);
    await runOne(ctx, 'clFind', () => find16x8(ctx), results);
    await runOne(ctx, 'clPropagation', () => propagation({ ...ctx, server: b }, { listeners: b.port, writer: a.port }), results);
    await runOne(ctx, 'clLeaderKill', () => clusterLeaderKill(ctx), results);
    await runOne(ctx, 'clCatchUp', () => clusterRestartCatchUp(ctx), results);
  } finally {
    await c.stop();
  }
  return c.preloadMs;
}

function pushSample(): PushSetup['sample'] {
  const users = usersOf(sizes.entries, 0);
  const out: PushSetup['sample'] = [];
  for (let i = 0; i < 100 && users.length; i++) {
    const u = users[Math.floor((i * users.length) / 100)];
    const e = entryAt(u * PER_USER + (i % PER_USER));
    out.push(e);
  }
  return out;
}

/** A Cyrus backend (`backend1`) whose own mailboxes.db holds exactly backend1's share of the directory. */
export async function makeBackend(work: string): Promise<{ setup: PushSetup; backend: CyrusBackend }> {
  const backend = await CyrusBackend.create({ mupdatePort: 1, servername: 'backend1', user: 'backend1', password: PASSWORD });
  try {
    const st = statSync(backend.dir);
    const flat = join(backend.dir, 'preload.flat');
    const count = await writeBackendFlat(flat, sizes.entries, 0);
    chownSync(flat, st.uid, st.gid);
    const db = join(backend.confDir, 'mailboxes.db');
    rmSync(db, { force: true });
    const cvt = await runProgram(join(CYRUS_BIN, 'cvt_cyrusdb'), ['-C', backend.configPath, flat, 'flat', db, 'twoskip'], {
      timeoutMs: 10 * 60_000,
    });
    if (cvt.code !== 0) throw new Error(`cvt_cyrusdb for the backend failed: ${cvt.stderr}`);
    rmSync(flat, { force: true });
    const dump = await runProgram(join(CYRUS_BIN, 'ctl_mboxlist'), ['-C', backend.configPath, '-d'], { timeoutMs: 10 * 60_000 });
    if (dump.code !== 0) throw new Error(`ctl_mboxlist -d on the backend failed: ${dump.stderr}`);
    const dumpPath = join(work, 'backend1.json');
    writeFileSync(dumpPath, dump.stdout, 'latin1');
    const lines = dump.stdout.split('\n').filter((l) => l.startsWith('"')).length;
    if (lines !== count) throw new Error(`the backend holds ${lines} mailboxes, expected ${count}`);
    const passwordFile = join(work, 'backend1.password');
    writeFileSync(passwordFile, `${PASSWORD}\n`, { mode: 0o600 });
    return {
      backend,
      setup: { backendConfig: backend.configPath, dumpPath, passwordFile, mailboxes: count, cyrusBin: CYRUS_BIN, sample: pushSample() },
    };
  } catch (e) {
    await backend.remove();
    throw e;
  }
}
