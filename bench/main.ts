/**
 * `npm run bench [-- --quick] [--cluster] [--frontend] [--results DIR] [--no-cyrus] [--only list,dump,...]`: runs the
 * same workloads against `mupdated master` and, when the Debian Cyrus
 * programs are installed, a real Cyrus `mupdate -m`, one server at a time on
 * the same machine; checks every answer; prints a table with both figures,
 * their ratio and the issue's target; appends JSON lines to
 * `bench/results/<timestamp>.jsonl`. Exit status 1 when any answer was wrong
 * (or the harness failed), 0 otherwise: a missed target is a result, not a
 * failure. `--cluster` adds the cluster workloads (spec cluster.md 6: a
 * 3-member etcd and two nodes, cluster-workloads.ts) after both servers.
 * The frontend workload (frontend-workloads.ts) runs in standard runs, and
 * with `--quick` only when `--frontend` (or `--only frontend`) asks for it.
 */
import { chownSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { cpus, hostname, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { CYRUS_BIN, cyrusMissingReason } from '../test/helpers/cyrus.js';
import { runProgram } from '../test/helpers/run.js';
import { CyrusBackend } from '../test/helpers/cyrus-backend.js';
import { PROJECT_ROOT } from '../test/helpers/server.js';
import { entryAt, usersOf, writeBackendDump, writeBackendFlat, writeMasterDump, PER_USER } from './dataset.js';
import { WrongAnswer } from './measure.js';
import { PASSWORD, startCyrusUnderTest, startMupdatedUnderTest, type ServerKind, type ServerUnderTest } from './servers.js';
import { startClusterUnderTest } from './cluster-servers.js';
import { frontendSlave } from './frontend-workloads.js';
import {
  clusterActivate16x8,
  clusterActivateLatency,
  clusterLeaderKill,
  clusterRestartCatchUp,
  type ClusterContext,
} from './cluster-workloads.js';
import {
  activate16x8,
  activate1x1,
  activateDuringDumps,
  churn,
  dumpAll,
  find16x8,
  idleConnections,
  listAll,
  memory,
  mixed,
  propagation,
  pushWithCtlMboxlist,
  pushWithMupdated,
  settle,
  type Context,
  type Measurement,
  type PushSetup,
  type Sizes,
} from './workloads.js';

const args = process.argv.slice(2);
const quick = args.includes('--quick');
const noCyrus = args.includes('--no-cyrus');
const cluster = args.includes('--cluster');
const withFrontend =
  args.includes('--frontend') || (args.includes('--only') && args[args.indexOf('--only') + 1].split(',').includes('frontend'));
const resultsDir = args.includes('--results') ? args[args.indexOf('--results') + 1] : join(PROJECT_ROOT, 'bench', 'results');
/** `--only list,dump,...`: run just these workloads (for profiling one of them). */
const only = args.includes('--only') ? new Set(args[args.indexOf('--only') + 1].split(',')) : null;
const fdLimit = Number(process.env.BENCH_FD_LIMIT ?? 0);

const sizes: Sizes = quick
  ? {
      entries: 20_000,
      throughputMs: 600,
      dumpWriterMs: 1_500,
      propagationSamples: 20,
      propagationIntervalMs: 50,
      idleConnections: 500,
      maxOps: 200_000,
    }
  : {
      entries: 1_000_000,
      throughputMs: 8_000,
      dumpWriterMs: 20_000,
      propagationSamples: 200,
      propagationIntervalMs: 50,
      idleConnections: 10_000,
      maxOps: 2_000_000,
    };
/** `--seconds N`: longer throughput loops (for profiling one workload). */
if (args.includes('--seconds')) sizes.throughputMs = Number(args[args.indexOf('--seconds') + 1]) * 1000;
/** The cluster's preloaded directory, and the changes a stopped node catches up on (spec: 100k). */
const clusterSizes = quick ? { entries: 20_000, catchUp: 10_000 } : { entries: 100_000, catchUp: 100_000 };
if (fdLimit && fdLimit < sizes.idleConnections + 1000) sizes.idleConnections = Math.max(100, fdLimit - 1000);

const log = (line: string) => process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${line}\n`);
const human = (n: number) => (n >= 1_000_000 ? `${n / 1_000_000}M` : n >= 1000 ? `${n / 1000}k` : String(n));

// ---------------------------------------------------------------------------
// what is run, and how rows are derived from it

type WorkloadId =
  | 'list'
  | 'dump'
  | 'memory'
  | 'dumpWriter'
  | 'act1'
  | 'act16'
  | 'churn'
  | 'find'
  | 'mixed'
  | 'propagation'
  | 'push'
  | 'pushCtlToMupdated'
  | 'idle'
  | 'frontend'
  | 'clAct16'
  | 'clLatency'
  | 'clFind'
  | 'clPropagation'
  | 'clLeaderKill'
  | 'clCatchUp';

interface Row {
  id: string;
  workload: WorkloadId;
  label: string;
  unit: string;
  better: 'higher' | 'lower';
  get: (m: Measurement) => number | null;
  /** ratio: mupdated vs Cyrus (in the better direction) at least min; max/min: mupdated's own value. */
  target?: { ratio?: number; max?: number; min?: number };
  /** Only measured on one side. */
  only?: ServerKind;
  /** Compared with Cyrus's figure of this workload (cluster rows). */
  cyrus?: WorkloadId;
}

const value = (m: Measurement) => m.value;
const detail = (key: string) => (m: Measurement) => (typeof m.details[key] === 'number' ? m.details[key] : null);
const N = human(sizes.entries);
const pushCount = usersOf(sizes.entries, 0).length * PER_USER;

const ROWS: Row[] = [
  {
    id: 'activate_1x1',
    workload: 'act1',
    label: 'durable ACTIVATE, 1 conn x 1 in flight',
    unit: '/s',
    better: 'higher',
    get: value,
    target: { ratio: 2 },
  },
  {
    id: 'activate_16x8',
    workload: 'act16',
    label: 'durable ACTIVATE, 16 conns x 8 pipelined',
    unit: '/s',
    better: 'higher',
    get: value,
    target: { ratio: 20 },
  },
  {
    id: 'churn_8',
    workload: 'churn',
    label: 'churn: connect+login+ACTIVATE+LOGOUT, 8 clients',
    unit: '/s',
    better: 'higher',
    get: value,
    target: { ratio: 1 },
  },
  {
    id: 'find_16x8',
    workload: 'find',
    label: 'FIND, 16 conns x 8 pipelined',
    unit: '/s',
    better: 'higher',
    get: value,
    target: { ratio: 2 },
  },
  { id: 'list_all', workload: 'list', label: `LIST of ${N} entries`, unit: 's', better: 'lower', get: value, target: { ratio: 5 } },
  { id: 'dump_all', workload: 'dump', label: `full UPDATE dump of ${N}`, unit: 's', better: 'lower', get: value, target: { ratio: 5 } },
  {
    id: 'propagation_p50',
    workload: 'propagation',
    label: 'propagation to 10 listeners, p50',
    unit: 'ms',
    better: 'lower',
    get: detail('p50'),
  },
  {
    id: 'propagation_p99',
    workload: 'propagation',
    label: 'propagation to 10 listeners, p99',
    unit: 'ms',
    better: 'lower',
    get: value,
    target: { max: 2 },
  },
  {
    id: 'propagation_max',
    workload: 'propagation',
    label: 'propagation to 10 listeners, max',
    unit: 'ms',
    better: 'lower',
    get: detail('max'),
  },
  {
    id: 'activate_during_dumps_p50',
    workload: 'dumpWriter',
    label: `ACTIVATE while 4 clients dump ${N}, p50`,
    unit: 'ms',
    better: 'lower',
    get: detail('p50'),
  },
  {
    id: 'activate_during_dumps_p99',
    workload: 'dumpWriter',
    label: `ACTIVATE while 4 clients dump ${N}, p99`,
    unit: 'ms',
    better: 'lower',
    get: value,
    target: { max: 5 },
  },
  {
    id: 'activate_during_dumps_max',
    workload: 'dumpWriter',
    label: `ACTIVATE while 4 clients dump ${N}, max`,
    unit: 'ms',
    better: 'lower',
    get: detail('max'),
  },
  {
    id: 'dumps_during_writes',
    workload: 'dumpWriter',
    label: `  full dumps completed meanwhile`,
    unit: '',
    better: 'higher',
    get: detail('completedDumps'),
  },
  {
    id: 'mixed_8',
    workload: 'mixed',
    label: 'mixed 90% FIND/9% ACTIVATE/1% DELETE, 8 conns',
    unit: '/s',
    better: 'higher',
    get: value,
    target: { ratio: 5 },
  },
  {
    id: 'idle_connections',
    workload: 'idle',
    label: `idle authenticated connections held (of ${sizes.idleConnections.toLocaleString('en-US')})`,
    unit: '',
    better: 'higher',
    get: value,
    target: { min: sizes.idleConnections },
  },
  { id: 'rss', workload: 'memory', label: `RSS with ${N} entries`, unit: 'MiB', better: 'lower', get: value, target: { ratio: 1 } },
  {
    id: 'push',
    workload: 'push',
    label: `push of ${human(pushCount)} in-sync mailboxes (mupdated push / ctl_mboxlist -m)`,
    unit: 's',
    better: 'lower',
    get: value,
    target: { ratio: 20 },
  },
  {
    id: 'frontend_visible_p50',
    workload: 'frontend',
    label: "frontend: master's OK -> new mailbox in the frontend's sqlite, p50",
    unit: 'ms',
    better: 'lower',
    get: detail('visibleP50'),
  },
  {
    id: 'frontend_visible_p99',
    workload: 'frontend',
    label: "frontend: master's OK -> new mailbox in the frontend's sqlite, p99",
    unit: 'ms',
    better: 'lower',
    get: detail('visibleP99'),
    target: { ratio: 1 },
  },
  {
    id: 'frontend_resync',
    workload: 'frontend',
    label: `frontend: resync of ${N} into its sqlite after a reconnect`,
    unit: 's',
    better: 'lower',
    get: value,
    target: { ratio: 1 },
  },
  {
    id: 'frontend_lookup_failures',
    workload: 'frontend',
    label: '  frontend lookups failed or not found meanwhile',
    unit: '',
    better: 'lower',
    get: detail('lookupFailures'),
    target: { max: 0 },
  },
  {
    id: 'frontend_lookup_max',
    workload: 'frontend',
    label: '  slowest frontend lookup meanwhile',
    unit: 'ms',
    better: 'lower',
    get: detail('lookupMaxMs'),
  },
  {
    id: 'frontend_first_sync',
    workload: 'frontend',
    label: `  first sync of ${N} into an empty frontend sqlite`,
    unit: 's',
    better: 'lower',
    get: detail('firstSyncSeconds'),
  },
  ...(cluster ? clusterRows() : []),
  {
    id: 'push_ctl_mboxlist_to_mupdated',
    workload: 'pushCtlToMupdated',
    label: `  same push by ctl_mboxlist -m against mupdated`,
    unit: 's',
    better: 'lower',
    get: value,
    only: 'mupdated',
  },
];

function clusterRows(): Row[] {
  const cl = (r: Omit<Row, 'better'> & { better?: Row['better'] }): Row => ({
    better: 'lower',
    only: 'mupdated',
    ...r,
    label: `cluster: ${r.label}`,
  });
  return [
    cl({
      id: 'cluster_activate_16x8',
      workload: 'clAct16',
      label: 'durable ACTIVATE through 2 nodes, 16 conns x 8',
      unit: '/s',
      better: 'higher',
      get: value,
      target: { ratio: 5 },
      cyrus: 'act16',
      only: undefined,
    }),
    cl({
      id: 'cluster_activate_1x1_p50',
      workload: 'clLatency',
      label: 'durable ACTIVATE 1x1 through a node, p50',
      unit: 'ms',
      get: detail('activateP50'),
    }),
    cl({
      id: 'cluster_etcd_txn_p50',
      workload: 'clLatency',
      label: '  bare one-key etcd txn, p50 (same run)',
      unit: 'ms',
      get: detail('txnP50'),
    }),
    cl({
      id: 'cluster_activate_vs_txn',
      workload: 'clLatency',
      label: '  ACTIVATE p50 / etcd txn p50',
      unit: 'x',
      get: value,
      target: { max: 1.2 },
    }),
    cl({
      id: 'cluster_find_16x8',
      workload: 'clFind',
      label: 'FIND on a node, 16 conns x 8',
      unit: '/s',
      better: 'higher',
      get: value,
      target: { ratio: 2 },
      cyrus: 'find',
      only: undefined,
    }),
    cl({
      id: 'cluster_propagation_p99',
      workload: 'clPropagation',
      label: 'propagation OK on A -> listener on B, p99',
      unit: 'ms',
      get: value,
      target: { max: 20 },
    }),
    cl({
      id: 'cluster_leader_kill',
      workload: 'clLeaderKill',
      label: 'write unavailability after the etcd leader is killed',
      unit: 's',
      get: value,
      target: { max: 3 },
    }),
    cl({
      id: 'cluster_catch_up',
      workload: 'clCatchUp',
      label: `node restart catch-up after ${human(clusterSizes.catchUp)} changes`,
      unit: 's',
      get: value,
      target: { max: 3 },
    }),
    cl({
      id: 'cluster_catch_up_after_listening',
      workload: 'clCatchUp',
      label: '  of which after the node listened',
      unit: 's',
      get: detail('afterListeningSeconds'),
    }),
  ];
}

// ---------------------------------------------------------------------------
// suites

type Results = Map<WorkloadId, Measurement>;

async function runOne(ctx: Context, id: WorkloadId, fn: () => Promise<Measurement>, results: Results): Promise<void> {
  if (only && !only.has(id)) return;
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

async function runSuite(server: ServerUnderTest, push: PushSetup | null, pushDump: string, pushPasswordFile: string): Promise<Results> {
  const ctx: Context = { server, sizes, log };
  const results: Results = new Map();
  // reads of the untouched preloaded directory first, then memory, then writes
  await runOne(ctx, 'list', () => listAll(ctx), results);
  await runOne(ctx, 'dump', () => dumpAll(ctx), results);
  await runOne(ctx, 'memory', () => memory(ctx), results);
  await runOne(ctx, 'dumpWriter', () => activateDuringDumps(ctx), results);
  await runOne(ctx, 'act1', () => activate1x1(ctx), results);
  await runOne(ctx, 'act16', () => activate16x8(ctx), results);
  await runOne(ctx, 'churn', () => churn(ctx), results);
  await runOne(ctx, 'find', () => find16x8(ctx), results);
  await runOne(ctx, 'mixed', () => mixed(ctx), results);
  await runOne(ctx, 'propagation', () => propagation(ctx), results);
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
  return results;
}

/** The cluster workloads, on their own preloaded cluster, after both single servers. */
async function runClusterSuite(work: string, results: Results): Promise<number> {
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
async function makeBackend(work: string): Promise<{ setup: PushSetup; backend: CyrusBackend }> {
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

// ---------------------------------------------------------------------------
// output

function fmt(v: number | null, unit: string): string {
  if (v === null || Number.isNaN(v)) return '—';
  if (unit === '/s' || unit === '') return Math.round(v).toLocaleString('en-US');
  if (unit === 'ms') return v < 10 ? v.toFixed(2) : v < 100 ? v.toFixed(1) : Math.round(v).toLocaleString('en-US');
  if (unit === 's') return v < 10 ? v.toFixed(3) : v.toFixed(2);
  if (unit === 'x') return v.toFixed(2);
  return v.toFixed(1);
}

interface Judged {
  mupdated: number | null;
  cyrus: number | null;
  ratio: number | null;
  target: string;
  met: boolean | null;
}

function judge(row: Row, m: Measurement | undefined, c: Measurement | undefined): Judged {
  const mv = m ? row.get(m) : null;
  const cv = c && (row.only !== 'mupdated' || row.cyrus) ? row.get(c) : null;
  let ratio: number | null = null;
  if (mv !== null && cv !== null && mv > 0 && cv > 0) ratio = row.better === 'higher' ? mv / cv : cv / mv;
  else if (mv !== null && cv !== null && row.better === 'higher' && cv === 0 && mv > 0) ratio = Infinity;
  let target = '';
  let met: boolean | null = null;
  if (row.target?.ratio !== undefined) {
    target = `>= ${row.target.ratio}x`;
    met = ratio === null ? null : ratio >= row.target.ratio;
  } else if (row.target?.max !== undefined) {
    target = `<= ${row.target.max} ${row.unit}`;
    met = mv === null ? false : mv <= row.target.max;
  } else if (row.target?.min !== undefined) {
    target = `>= ${row.target.min.toLocaleString('en-US')}`;
    met = mv === null ? false : mv >= row.target.min;
  }
  return { mupdated: mv, cyrus: cv, ratio, target, met };
}

function table(rows: Array<{ row: Row; j: Judged }>, cyrusRan: boolean): string {
  const head = ['workload', 'mupdated', 'Cyrus', 'ratio', 'target', 'met?'];
  const lines = rows.map(({ row, j }) => [
    `${row.label}${row.unit && row.unit !== '/s' ? ` (${row.unit})` : row.unit === '/s' ? ' (/s)' : ''}`,
    fmt(j.mupdated, row.unit),
    cyrusRan && row.only !== 'mupdated' ? fmt(j.cyrus, row.unit) : '—',
    j.ratio === null ? '—' : j.ratio === Infinity ? 'inf' : `${j.ratio >= 100 ? Math.round(j.ratio) : j.ratio.toFixed(1)}x`,
    j.target,
    j.met === null ? (j.target ? 'n/a' : '') : j.met ? 'yes' : 'NO',
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i].length)));
  const fmtLine = (cells: string[]) => `| ${cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join(' | ')} |`;
  return [
    fmtLine(head),
    `|${widths.map((w, i) => (i === 0 ? `:${'-'.repeat(w + 1)}` : `${'-'.repeat(w + 1)}:`)).join('|')}|`,
    ...lines.map(fmtLine),
  ].join('\n');
}

function machine(): Record<string, unknown> {
  let cpu = cpus()[0]?.model ?? 'unknown';
  try {
    cpu = /^model name\s*:\s*(.*)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1] ?? cpu;
  } catch {
    /* not Linux */
  }
  return { cores: cpus().length, cpu, ramGiB: Math.round(totalmem() / 2 ** 30), node: process.versions.node, host: hostname() };
}

function loadAvg(): string {
  try {
    return readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
  } catch {
    return '';
  }
}

// ---------------------------------------------------------------------------

async function main(): Promise<number> {
  const started = new Date();
  const loadAtStart = loadAvg();
  const missing = noCyrus ? 'skipped (--no-cyrus)' : cyrusMissingReason();
  log(`${quick ? 'quick' : 'standard'} run: ${sizes.entries.toLocaleString('en-US')} entries; Cyrus: ${missing ?? 'available'}`);
  log(
    'the load client runs in this one Node process and shares the cores with the server under test; ' +
      'each result records the CPU time of both (serverCpuMs, clientCpuMs)',
  );
  const work = mkdtempSync(join(tmpdir(), 'mupdated-bench-'));
  const all = new Map<ServerKind, Results>();
  const versions: Record<string, string> = {};
  const preload: Record<string, number> = {};
  let backend: CyrusBackend | null = null;
  let harnessError: string | null = null;
  try {
    const dumpPath = join(work, 'directory.json');
    await writeMasterDump(dumpPath, sizes.entries);
    let push: PushSetup | null = null;
    const pushDump = join(work, 'backend1-generated.json');
    const pushPasswordFile = join(work, 'backend1.password');
    const wantPush = !only || only.has('push') || only.has('pushCtlToMupdated');
    if (missing === null && wantPush) {
      const b = await makeBackend(work);
      backend = b.backend;
      push = b.setup;
    } else {
      await writeBackendDump(pushDump, sizes.entries, 0);
      writeFileSync(pushPasswordFile, `${PASSWORD}\n`, { mode: 0o600 });
    }
    for (const kind of ['mupdated', 'cyrus'] as const) {
      if (kind === 'cyrus' && missing !== null) continue;
      log(`starting ${kind} with ${sizes.entries.toLocaleString('en-US')} preloaded entries`);
      const server =
        kind === 'mupdated'
          ? await startMupdatedUnderTest(dumpPath, ['mupdateadmin', 'backend1'])
          : await startCyrusUnderTest(sizes.entries);
      versions[kind] = server.version;
      preload[kind] = Math.round(server.preloadMs) / 1000;
      try {
        all.set(kind, await runSuite(server, push, pushDump, pushPasswordFile));
      } finally {
        await server.stop();
      }
    }
    if (cluster)
      preload.cluster = Math.round(await runClusterSuite(work, all.get('mupdated') ?? new Map<WorkloadId, Measurement>())) / 1000;
  } catch (e) {
    harnessError = (e as Error).stack ?? String(e);
    log(`harness error: ${harnessError}`);
  } finally {
    await backend?.remove();
    rmSync(work, { recursive: true, force: true });
  }

  const m = all.get('mupdated');
  const c = all.get('cyrus');
  const ran = (row: Row) => m?.has(row.workload) || c?.has(row.workload);
  const judged = ROWS.filter((row) => harnessError !== null || ran(row)).map((row) => ({
    row,
    j: judge(row, m?.get(row.workload), c?.get(row.cyrus ?? row.workload)),
  }));
  const mach = machine();
  const runId = started.toISOString().replace(/[:.]/g, '-');
  const records = judged.map(({ row, j }) => {
    const mm = m?.get(row.workload);
    const cm = row.only === 'mupdated' ? undefined : c?.get(row.cyrus ?? row.workload);
    const primary = row.get === value;
    return {
      run: runId,
      mode: quick ? 'quick' : 'standard',
      workload: row.id,
      label: row.label,
      unit: row.unit,
      better: row.better,
      mupdated: j.mupdated,
      cyrus: j.cyrus,
      ratio: j.ratio === Infinity ? 'inf' : j.ratio,
      target: j.target || null,
      met: j.met,
      correct: (mm?.correct ?? false) && (cm?.correct ?? true),
      ...(mm?.error || cm?.error ? { errors: { mupdated: mm?.error, cyrus: cm?.error } } : {}),
      ...(primary ? { details: { mupdated: mm?.details, cyrus: cm?.details } } : {}),
    };
  });
  const header = {
    run: runId,
    mode: quick ? 'quick' : 'standard',
    workload: 'run',
    date: started.toISOString(),
    machine: mach,
    loadAvg: { atStart: loadAtStart, atEnd: loadAvg() },
    versions,
    preloadSeconds: preload,
    sizes,
    cyrus: missing ?? 'ran',
    client:
      'one Node process (bench/client.ts; the dumpers of activate_during_dumps in a worker thread of it), sharing the cores with the server under test',
    correct: harnessError === null,
    ...(harnessError ? { error: harnessError } : {}),
  };
  mkdirSync(resultsDir, { recursive: true });
  const file = join(resultsDir, `${runId}${quick ? '-quick' : ''}.jsonl`);
  writeFileSync(file, [header, ...records].map((r) => JSON.stringify(r)).join('\n') + '\n');

  const out = [
    '',
    `mupdated vs Cyrus, ${quick ? 'quick' : 'standard'} run, ${started.toISOString()}`,
    `machine: ${String(mach.cores)} cores, ${String(mach.cpu)}, ${String(mach.ramGiB)} GiB RAM; ${versions.mupdated ?? ''}${versions.cyrus ? `; ${versions.cyrus}` : ''}`,
    missing === null ? '' : `Cyrus not measured: ${missing}`,
    'client: one Node process sharing the cores with the server under test; servers run one at a time',
    `load average (1/5/15 min) at start: ${loadAtStart}; at end: ${loadAvg()}`,
    '',
    table(judged, c !== undefined),
    '',
    `results: ${file}`,
  ]
    .filter((l, i, a) => l !== '' || a[i - 1] !== '')
    .join('\n');
  process.stdout.write(`${out}\n`);
  const wrong = records.filter((r) => !r.correct);
  if (harnessError || wrong.length) {
    process.stderr.write(
      `bench: ${harnessError ? 'harness error' : ''}${wrong.length ? ` wrong answers in: ${wrong.map((r) => r.workload).join(', ')}` : ''}\n`,
    );
    for (const r of wrong) if (r.errors) process.stderr.write(`  ${r.workload}: ${JSON.stringify(r.errors).slice(0, 1000)}\n`);
    return 1;
  }
  return 0;
}

const code = await main();
process.stdout.write('', () => process.exit(code));
