/**
 * The absorber of lmdb-js's own commit-failure rejections
 * (src/store/lmdb-commit-failures.ts) takes only those: any other unhandled
 * rejection still ends the process with its reason, as Node does by itself.
 * Each case runs in a child Node process (an unhandled rejection there is the
 * point of the test).
 */
import test from 'ava';
import { join } from 'node:path';
import { runProgram } from './helpers/run.js';
import { PROJECT_ROOT } from './helpers/server.js';

const MODULE = join(PROJECT_ROOT, 'dist/src/store/lmdb-commit-failures.js');

async function runWithAbsorber(body: string) {
  const script = `import { absorbLmdbCommitRejections } from ${JSON.stringify(MODULE)};\nabsorbLmdbCommitRejections();\n${body}`;
  return runProgram(process.execPath, ['--input-type=module', '-e', script], { timeoutMs: 20_000 });
}

test("lmdb-js's commit failure and its commitError are absorbed: the process goes on", async (t) => {
  const r = await runWithAbsorber(`
    // In lmdb-js's order: the write's "Commit failed" is rejected first, its commitError right after.
    let rejectCause;
    const cause = new Promise((_, reject) => (rejectCause = reject));
    const failed = Object.assign(new Error('Commit failed (see commitError for details)'), { commitError: cause });
    Promise.reject(failed);
    rejectCause(new Error('No space left on device'));
    setTimeout(() => console.log('still running'), 100);
  `);
  t.is(r.code, 0, r.stderr);
  t.is(r.stdout, 'still running\n');
  t.is(r.stderr, '', 'no warning either');
});

test('any other unhandled rejection still ends the process with its reason', async (t) => {
  for (const reason of ["new Error('something else broke')", "Object.assign(new Error('Commit failed'), { commitError: 42 })"]) {
    const r = await runWithAbsorber(`Promise.reject(${reason}); setTimeout(() => console.log('still running'), 100);`);
    t.not(r.code, 0, `${reason}: ${r.stderr}`);
    t.is(r.stdout, '', reason);
    t.regex(r.stderr, /something else broke|Commit failed/, reason);
  }
});
