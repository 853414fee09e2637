/**
 * `npm run bench -- --scale 10m`: mupdated with a 10,000,000-entry directory
 * (the same dataset as the suite's, 2,000,000 users x 5 folders): the time of
 * `mupdated load`, LIST and a full UPDATE dump timed by a client that only
 * counts bytes (byte-count-client.ts; a parsed LIST afterwards checks every
 * entry), the server's memory after both, and the restart to a first answer
 * (SIGKILL, start again on the same data, until a FIND answers). Writes its
 * rows to a results file of the suite's format (mode `scale-10m`). Cyrus is
 * not run at this scale (see CYRUS_NOTE).
 */
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { countedListing } from './byte-count-client.js';
import { MupdateConn } from './client.js';
import { serverMemory } from './connection-workloads.js';
import { entryAt, writeMasterDump } from './dataset.js';
import { listAll } from './listing-workloads.js';
import { expectOk, sleep, WrongAnswer } from './measure.js';
import { log, sizes } from './options.js';
import { loadAvg, report, type Results } from './report.js';
import { detail, value, type Row } from './rows.js';
import { ADMIN, PASSWORD, startMupdatedUnderTest } from './servers.js';
import { runOne } from './suite.js';
import { checkFound, type Context, type Measurement } from './workload-kit.js';

const SCALES: Record<string, number> = { '10m': 10_000_000 };

const CYRUS_NOTE =
  'Cyrus not run at 10M: the targets of this scale are absolute (not ratios to Cyrus), and preloading and listing 10M ' +
  'entries in Cyrus (cvt_cyrusdb, then its LIST and dump at several seconds per million) would add many minutes';

function scaleRows(label: string): Row[] {
  const row = (r: Omit<Row, 'better' | 'only'>): Row => ({ better: 'lower', only: 'mupdated', ...r });
  return [
    row({ id: 'scale_load', workload: 'scaleLoad', label: `${label}: mupdated load`, unit: 's', get: value, target: { max: 60 } }),
    row({
      id: 'scale_list',
      workload: 'scaleList',
      label: `${label}: LIST (client counting bytes)`,
      unit: 's',
      get: value,
      target: { max: 10 },
    }),
    row({
      id: 'scale_dump',
      workload: 'scaleDump',
      label: `${label}: full UPDATE dump (client counting bytes)`,
      unit: 's',
      get: value,
      target: { max: 10 },
    }),
    row({
      id: 'scale_anon',
      workload: 'scaleMemory',
      label: `${label}: anonymous memory after LIST and dump`,
      unit: 'MiB',
      get: value,
      target: { max: 128 },
    }),
    row({ id: 'scale_rss', workload: 'scaleMemory', label: `  RSS (with the mapped LMDB file)`, unit: 'MiB', get: detail('rssMiB') }),
    row({
      id: 'scale_restart',
      workload: 'scaleRestart',
      label: `${label}: restart (SIGKILL, start) to a FIND answered`,
      unit: 's',
      get: value,
      target: { max: 1 },
    }),
  ];
}

/** The timed listing by the counting client; for LIST, a parsed listing afterwards checks every entry. */
async function countedWorkload(ctx: Context, command: 'LIST' | 'UPDATE'): Promise<Measurement> {
  const okText = command === 'LIST' ? 'list complete' : 'streaming starts';
  const r = await countedListing(ctx.server.port, ADMIN, PASSWORD, command, okText, 10 * 60_000);
  const details: Record<string, unknown> = { bytes: r.bytes, firstByteMs: r.firstByteMs };
  if (command === 'LIST') {
    const checked = await listAll(ctx);
    details.checkedListing = { seconds: checked.value, ...checked.details };
  }
  return { value: r.seconds, correct: true, details };
}

/** SIGKILL, start again on the same data and port, then log in and FIND until it answers (at most 120 s). */
async function restartToFind(ctx: Context): Promise<Measurement> {
  const { killedAt, spawnedAt } = await ctx.server.killAndRestart!();
  const name = entryAt(ctx.sizes.entries - 1).name;
  let attempts = 0;
  let lastError = '';
  while (performance.now() - spawnedAt < 120_000) {
    attempts++;
    let conn: MupdateConn | null = null;
    try {
      conn = await MupdateConn.login(ctx.server.port, ADMIN, PASSWORD);
      const { entry, status } = await conn.find(name);
      const answeredAt = performance.now();
      expectOk(status, 'Search completed', `FIND ${name}`);
      checkFound(name, ctx.sizes.entries - 1, entry);
      return {
        value: (answeredAt - spawnedAt) / 1000,
        correct: true,
        details: { fromKillSeconds: (answeredAt - killedAt) / 1000, attempts },
      };
    } catch (e) {
      if (e instanceof WrongAnswer) throw e;
      lastError = (e as Error).message;
      await sleep(5);
    } finally {
      conn?.destroy();
    }
  }
  throw new Error(`no FIND answered within 120 s of the restart (${attempts} attempts; last: ${lastError})`);
}

export async function runScale(scale: string): Promise<number> {
  const n = SCALES[scale];
  if (n === undefined) {
    process.stderr.write(`bench: unknown --scale ${scale} (known: ${Object.keys(SCALES).join(', ')})\n`);
    return 2;
  }
  const started = new Date();
  const loadAtStart = loadAvg();
  const results: Results = new Map();
  const versions: Record<string, string> = {};
  const header: Record<string, unknown> = { entries: n, cyrus: CYRUS_NOTE };
  let harnessError: string | null = null;
  const work = mkdtempSync(join(tmpdir(), 'mupdated-bench-scale-'));
  try {
    const dumpPath = join(work, 'directory.json');
    log(`writing the ${n.toLocaleString('en-US')}-entry dump`);
    const g0 = performance.now();
    await writeMasterDump(dumpPath, n);
    header.dumpFile = { seconds: Math.round(performance.now() - g0) / 1000, bytes: statSync(dumpPath).size };
    log(`loading it with mupdated load (${JSON.stringify(header.dumpFile)})`);
    const server = await startMupdatedUnderTest(dumpPath, [ADMIN]);
    rmSync(dumpPath, { force: true });
    versions.mupdated = server.version;
    const ctx: Context = { server, sizes: { ...sizes, entries: n }, log };
    try {
      await runOne(ctx, 'scaleLoad', () => Promise.resolve({ value: server.preloadMs / 1000, correct: true, details: {} }), results);
      await runOne(ctx, 'scaleList', () => countedWorkload(ctx, 'LIST'), results);
      await runOne(ctx, 'scaleDump', () => countedWorkload(ctx, 'UPDATE'), results);
      await runOne(
        ctx,
        'scaleMemory',
        () => {
          const m = serverMemory(ctx);
          return Promise.resolve({
            value: m.anonMiB,
            correct: m.processes.length > 0,
            details: { rssMiB: m.rssMiB, processes: m.processes },
          });
        },
        results,
      );
      await runOne(ctx, 'scaleRestart', () => restartToFind(ctx), results);
    } finally {
      await server.stop();
    }
  } catch (e) {
    harnessError = (e as Error).stack ?? String(e);
    log(`harness error: ${harnessError}`);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  return report(scaleRows(`${n / 1_000_000}M entries`), results, undefined, {
    started,
    mode: `scale-${scale}`,
    loadAtStart,
    versions,
    harnessError,
    notes: [CYRUS_NOTE],
    header,
  });
}
