/**
 * Each subcommand answers --help, `mupdated --version` prints the version,
 * and `npm pack` gives a tarball without tests or bench that installs
 * globally and runs (issue 13, point 8).
 */
import test from 'ava';
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { VERSION } from '../src/version.js';
import { CLI, PROJECT_ROOT, removeDir, tempDir } from './helpers/server.js';

const PACKAGE = JSON.parse(readFileSync(join(PROJECT_ROOT, 'package.json'), 'utf8')) as { version: string };
const COMMANDS = ['master', 'slave', 'conflicts', 'push', 'dump', 'load', 'backup', 'verify', 'user', 'client'];

function run(args: string[]) {
  return spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', timeout: 30_000 });
}

for (const command of COMMANDS) {
  test(`mupdated ${command} --help prints its usage on stdout and exits 0, without starting anything`, (t) => {
    for (const flag of ['--help', '-h']) {
      const r = run([command, flag]);
      t.is(r.status, 0, r.stderr);
      t.regex(r.stdout, new RegExp(`^usage: mupdated ${command}`, 'm'), r.stdout);
      t.is(r.stderr, '', 'no log line: nothing started');
    }
  });
}

test('mupdated --help lists every command; mupdated --version prints the version of package.json and src/version.ts', (t) => {
  const help = run(['--help']);
  t.is(help.status, 0);
  for (const command of COMMANDS) t.regex(help.stdout, new RegExp(`^  ${command} `, 'm'));
  t.is(VERSION, PACKAGE.version);
  for (const flag of ['--version', '-V']) {
    const r = run([flag]);
    t.is(r.status, 0);
    t.is(r.stdout, `mupdated ${PACKAGE.version}\n`);
  }
});

/** Runs npm with a bounded time; the tarball installs from npm's cache when it can. */
function npm(args: string[], cwd: string, timeout: number) {
  return spawnSync('npm', [...args, '--no-audit', '--no-fund', '--loglevel', 'error'], { cwd, encoding: 'utf8', timeout });
}

test('npm pack gives a tarball without tests or bench; installed globally into a prefix it runs mupdated --version', (t) => {
  t.timeout(15 * 60_000);
  const out = tempDir('mupdated-pack-');
  try {
    // The build the tests run on is what gets packed (no second compile).
    const pack = npm(['pack', '--ignore-scripts', '--pack-destination', out], PROJECT_ROOT, 120_000);
    t.is(pack.status, 0, pack.stderr);
    const tarball = readdirSync(out).find((f) => /^mupdated-.*\.tgz$/.test(f));
    t.truthy(tarball);
    const list = spawnSync('tar', ['tzf', join(out, tarball!)], { encoding: 'utf8' })
      .stdout.trim()
      .split('\n');
    t.true(list.includes('package/bin/mupdated.js'));
    t.true(list.includes('package/dist/src/cli/main.js'));
    t.deepEqual(
      list.filter((f) => /^package\/(dist\/)?(test|bench)\/|\.ts$|\.map$|^package\/src\//.test(f)),
      [],
      'no tests, bench, sources or maps',
    );
    const prefix = join(out, 'prefix');
    // From npm's cache when it holds the dependencies; else from the registry (slow, so a long bound).
    let install = npm(['install', '-g', '--prefix', prefix, '--offline', '--ignore-scripts', join(out, tarball!)], out, 300_000);
    if (install.status !== 0)
      install = npm(['install', '-g', '--prefix', prefix, '--prefer-offline', '--ignore-scripts', join(out, tarball!)], out, 840_000);
    t.is(install.status, 0, install.stderr);
    const installed = spawnSync(join(prefix, 'bin', 'mupdated'), ['--version'], { encoding: 'utf8', timeout: 30_000 });
    t.is(installed.status, 0, installed.stderr);
    t.is(installed.stdout, `mupdated ${PACKAGE.version}\n`);
    // The installed copy opens a data folder (LMDB): the dependencies are there.
    const users = spawnSync(join(prefix, 'bin', 'mupdated'), ['user', 'list', '--data', join(out, 'data')], {
      encoding: 'utf8',
      timeout: 30_000,
    });
    t.is(users.status, 0, users.stderr);
  } finally {
    removeDir(out);
  }
});
