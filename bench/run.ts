/**
 * Entry point of `npm run bench`: makes sure the process may hold enough file
 * descriptors for 10,000 idle connections (re-running itself under
 * `ulimit -n` when it may not), maps `ava` to a stub for the test helpers it
 * reuses (see ava-shim.ts), then runs main.ts.
 */
import { spawn, spawnSync } from 'node:child_process';
import { register } from 'node:module';
import { fileURLToPath } from 'node:url';

const WANT_FDS = 20_000;

function fdLimit(kind: '-Sn' | '-Hn'): number {
  const r = spawnSync('bash', ['-c', `ulimit ${kind}`], { encoding: 'utf8' });
  const v = r.stdout.trim();
  return v === 'unlimited' ? Infinity : Number(v) || 0;
}

const soft = fdLimit('-Sn');
if (soft < WANT_FDS && !process.env.BENCH_FD_LIMIT) {
  const target = Math.min(WANT_FDS, fdLimit('-Hn'));
  const script = fileURLToPath(import.meta.url);
  const child = spawn(
    'bash',
    [
      '-c',
      `ulimit -n ${target} 2>/dev/null || ulimit -n "$(ulimit -Hn)"; exec "$0" "$@"`,
      process.execPath,
      script,
      ...process.argv.slice(2),
    ],
    { stdio: 'inherit', env: { ...process.env, BENCH_FD_LIMIT: String(target) } },
  );
  child.on('exit', (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
} else {
  if (!process.env.BENCH_FD_LIMIT) process.env.BENCH_FD_LIMIT = String(soft === Infinity ? WANT_FDS : soft);
  register('./ava-shim.js', import.meta.url);
  await import('./main.js');
}
