/**
 * The command line of `npm run bench` and the sizes it implies:
 * `[--quick] [--scale 10m] [--cluster] [--frontend] [--results DIR] [--no-cyrus]
 * [--only list,dump,...] [--seconds N]`.
 */
import { join } from 'node:path';
import { PROJECT_ROOT } from '../test/helpers/server.js';
import type { Sizes } from './workload-kit.js';

const args = process.argv.slice(2);
const valueOf = (flag: string): string | undefined => (args.includes(flag) ? args[args.indexOf(flag) + 1] : undefined);

export const quick = args.includes('--quick');
export const noCyrus = args.includes('--no-cyrus');
export const cluster = args.includes('--cluster');
/** `--scale 10m`: the 10-million-entry run (scale.ts) instead of the suite. */
export const scale = valueOf('--scale') ?? null;
export const resultsDir = valueOf('--results') ?? join(PROJECT_ROOT, 'bench', 'results');
/** `--only list,dump,...`: run just these workloads (for profiling one of them). */
export const only = valueOf('--only') ? new Set(valueOf('--only')!.split(',')) : null;
export const withFrontend = args.includes('--frontend') || (only?.has('frontend') ?? false);
const fdLimit = Number(process.env.BENCH_FD_LIMIT ?? 0);

export const sizes: Sizes = quick
  ? {
      entries: 20_000,
      smallEntries: 4_000,
      throughputMs: 600,
      dumpWriterMs: 1_500,
      // (5, not 20: Cyrus serves the dumps one after another, 20 cost --quick 15 s)
      resyncClients: 5,
      resyncMaxMs: 30_000,
      churnedConnections: 200,
      restMs: 1_000,
      propagationSamples: 20,
      propagationIntervalMs: 50,
      idleConnections: 500,
      maxOps: 200_000,
    }
  : {
      entries: 1_000_000,
      smallEntries: 200_000,
      throughputMs: 8_000,
      dumpWriterMs: 20_000,
      resyncClients: 20,
      resyncMaxMs: 120_000,
      churnedConnections: 1_000,
      // a server at rest: its idle dump workers (30 s) have exited and its heap has been trimmed
      restMs: 45_000,
      propagationSamples: 200,
      propagationIntervalMs: 50,
      idleConnections: 10_000,
      maxOps: 2_000_000,
    };
/** `--seconds N`: longer throughput loops (for profiling one workload). */
if (valueOf('--seconds')) sizes.throughputMs = Number(valueOf('--seconds')) * 1000;
if (fdLimit && fdLimit < sizes.idleConnections + 1000) sizes.idleConnections = Math.max(100, fdLimit - 1000);
/** The cluster's preloaded directory, and the changes a stopped node catches up on (spec: 100k). */
export const clusterSizes = quick ? { entries: 20_000, catchUp: 10_000 } : { entries: 100_000, catchUp: 100_000 };

export const log = (line: string) => process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${line}\n`);
export const human = (n: number) => (n >= 1_000_000 ? `${n / 1_000_000}M` : n >= 1000 ? `${n / 1000}k` : String(n));
