/**
 * `npm run bench [-- --quick] [--scale 10m] [--cluster] [--frontend] [--results DIR] [--no-cyrus] [--only list,dump,...]`:
 * runs the same workloads against `mupdated master` and, when the Debian
 * Cyrus programs are installed, a real Cyrus `mupdate -m`, one server at a
 * time on the same machine; checks every answer; prints a table with both
 * figures, their ratio and the target; appends JSON lines to
 * `bench/results/<timestamp>.jsonl`. Exit status 1 when any answer was wrong
 * (or the harness failed), 0 otherwise: a missed target is a result, not a
 * failure. `--cluster` adds the cluster workloads (spec cluster.md 6: a
 * 3-member etcd and two nodes, cluster-workloads.ts) after both servers.
 * The frontend workload (frontend-workloads.ts) runs in standard runs, and
 * with `--quick` only when `--frontend` (or `--only frontend`) asks for it.
 * `--scale 10m` runs the 10-million-entry workloads instead (scale.ts).
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cyrusMissingReason } from '../test/helpers/cyrus.js';
import type { CyrusBackend } from '../test/helpers/cyrus-backend.js';
import { writeBackendDump, writeMasterDump } from './dataset.js';
import { cluster, log, noCyrus, only, quick, scale, sizes } from './options.js';
import type { PushSetup } from './push-workloads.js';
import { loadAvg, report, type Results } from './report.js';
import { ROWS } from './rows.js';
import { runScale } from './scale.js';
import { PASSWORD, startCyrusUnderTest, startMupdatedUnderTest, type ServerKind } from './servers.js';
import { makeBackend, runClusterSuite, runSmallDirectory, runSuite } from './suite.js';

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
    // The dumps just written (hundreds of MB) reach the disk now, not in the kernel's
    // writeback during a measurement.
    spawnSync('sync');
    for (const kind of ['mupdated', 'cyrus'] as const) {
      if (kind === 'cyrus' && missing !== null) continue;
      const results: Results = new Map();
      all.set(kind, results);
      await runSmallDirectory(kind, work, results);
      if (only && [...only].every((id) => id === 'list200k')) continue;
      log(`starting ${kind} with ${sizes.entries.toLocaleString('en-US')} preloaded entries`);
      const server =
        kind === 'mupdated'
          ? await startMupdatedUnderTest(dumpPath, ['mupdateadmin', 'backend1'])
          : await startCyrusUnderTest(sizes.entries);
      versions[kind] = server.version;
      preload[kind] = Math.round(server.preloadMs) / 1000;
      try {
        await runSuite(server, push, pushDump, pushPasswordFile, results);
      } finally {
        await server.stop();
      }
    }
    if (cluster) preload.cluster = Math.round(await runClusterSuite(work, all.get('mupdated') ?? (new Map() as Results))) / 1000;
  } catch (e) {
    harnessError = (e as Error).stack ?? String(e);
    log(`harness error: ${harnessError}`);
  } finally {
    await backend?.remove();
    rmSync(work, { recursive: true, force: true });
  }
  return report(ROWS, all.get('mupdated'), all.get('cyrus'), {
    started,
    mode: quick ? 'quick' : 'standard',
    loadAtStart,
    versions,
    harnessError,
    notes: missing === null ? [] : [`Cyrus not measured: ${missing}`],
    header: {
      preloadSeconds: preload,
      sizes,
      cyrus: missing ?? 'ran',
      client:
        'one Node process (bench/client.ts; the dumpers of activate_during_dumps and resync_* in a worker thread of it), sharing the cores with the server under test',
    },
  });
}

const code = scale === null ? await main() : await runScale(scale);
process.stdout.write('', () => process.exit(code));
