/**
 * A backend's push of its in-sync mailboxes: `mupdated push` of its
 * `ctl_mboxlist -d` dump, and the real `ctl_mboxlist -m`; a sample of the
 * pushed names is read back afterwards (nothing may have changed).
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runProgram, type ProgramResult } from '../test/helpers/run.js';
import { CLI } from '../test/helpers/server.js';
import { verifyWithFind, WrongAnswer, type Expected } from './measure.js';
import { ADMIN, PASSWORD } from './servers.js';
import type { Context, Measurement } from './workload-kit.js';

export interface PushSetup {
  /** The backend's imapd.conf (its mupdate_server line is pointed at each server in turn). */
  backendConfig: string;
  /** `ctl_mboxlist -d` of the backend, for `mupdated push`. */
  dumpPath: string;
  passwordFile: string;
  mailboxes: number;
  cyrusBin: string;
  /** Sample of (name, expected entry) to read back after each push. */
  sample: Array<{ name: string; location: string; acl: string }>;
}

/** `runProgram` (the test helpers' one process runner), timed. */
async function timed(file: string, args: string[], timeoutMs: number): Promise<ProgramResult & { ms: number }> {
  const t0 = performance.now();
  const r = await runProgram(file, args, { timeoutMs });
  return { ...r, ms: performance.now() - t0 };
}

export function pointBackendAt(setup: PushSetup, port: number, readFile: (p: string) => string): void {
  const text = readFile(setup.backendConfig).replace(/^mupdate_server: .*$/m, `mupdate_server: 127.0.0.1:${port}`);
  writeFileSync(setup.backendConfig, text);
}

async function checkSample(ctx: Context, setup: PushSetup): Promise<void> {
  const expected = new Map<string, Expected | null>(setup.sample.map((s) => [s.name, { location: s.location, acl: s.acl }]));
  const v = await verifyWithFind(ctx.server.port, ADMIN, PASSWORD, expected);
  if (v.wrong) throw new WrongAnswer(`after the push ${v.wrong} sampled entries changed: ${v.examples.join('; ')}`);
}

/** The real `ctl_mboxlist -m` of an in-sync backend against the server. */
export async function pushWithCtlMboxlist(ctx: Context, setup: PushSetup, readFile: (p: string) => string): Promise<Measurement> {
  pointBackendAt(setup, ctx.server.port, readFile);
  const r = await timed(join(setup.cyrusBin, 'ctl_mboxlist'), ['-C', setup.backendConfig, '-m'], 10 * 60_000);
  if (r.code !== 0 || r.stdout.trim() !== '') {
    throw new WrongAnswer(
      `ctl_mboxlist -m exited ${r.code}; stdout ${JSON.stringify(r.stdout.slice(0, 300))}; stderr ${JSON.stringify(r.stderr.slice(0, 300))}`,
    );
  }
  await checkSample(ctx, setup);
  return { value: r.ms / 1000, correct: true, details: { mailboxes: setup.mailboxes, exit: r.code } };
}

/** `mupdated push` of the same backend's dump. */
export async function pushWithMupdated(ctx: Context, setup: PushSetup): Promise<Measurement> {
  const nodeArgs = (process.env.BENCH_MUPDATED_NODE_ARGS ?? '').split(' ').filter(Boolean);
  const r = await timed(
    process.execPath,
    [
      ...nodeArgs,
      CLI,
      'push',
      '--master',
      `127.0.0.1:${ctx.server.port}`,
      '--user',
      'backend1',
      '--password-file',
      setup.passwordFile,
      '--server',
      'backend1',
      setup.dumpPath,
    ],
    10 * 60_000,
  );
  const summary = `# ${setup.mailboxes} in sync, 0 removed, 0 activated, 0 to review, 0 refused`;
  if (r.code !== 0 || r.stdout.trim() !== summary) {
    throw new WrongAnswer(
      `mupdated push exited ${r.code}; stdout ${JSON.stringify(r.stdout.slice(0, 300))} (expected ${JSON.stringify(summary)}); stderr ${JSON.stringify(r.stderr.slice(0, 300))}`,
    );
  }
  await checkSample(ctx, setup);
  return { value: r.ms / 1000, correct: true, details: { mailboxes: setup.mailboxes, exit: r.code, summary: r.stdout.trim() } };
}
