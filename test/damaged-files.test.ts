/**
 * A data folder whose LMDB file is damaged (junk, truncated, empty, another
 * LMDB data format) is refused in words by every program that opens it: the
 * master, `verify`, `user list`, `backup`. lmdb-js itself crashes the process
 * with SIGSEGV on such a file, so mupdated checks the header first
 * (src/store/lmdb-open.ts). The damaged file is left exactly as it was.
 */
import test from 'ava';
import { cpSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runCli } from './helpers/operator-tools.js';
import { showRun } from './helpers/run.js';
import { startMupdated, tempDir } from './helpers/server.js';

let pristine = '';

test.before(async () => {
  // A folder a master made (directory.mdb and users.mdb), stopped.
  const s = await startMupdated();
  await s.stop();
  pristine = tempDir('mupdated-damaged-');
  cpSync(s.dataDir, pristine, { recursive: true });
});

interface Damage {
  what: string;
  file: 'directory.mdb' | 'users.mdb';
  damage: (path: string) => void;
  /** What the refusal says is wrong. */
  why: RegExp;
  /** An empty file is started afresh by a writer (LMDB's own first open was cut short): only readers refuse it. */
  readersOnly?: boolean;
  /** The refusal is `cannot open PATH: WHY` alone (no "restore it from a backup"). */
  bare?: boolean;
}

const DAMAGES: Damage[] = [
  {
    what: 'junk whose first bytes look like a meta page flag',
    file: 'users.mdb',
    damage: (p) => writeFileSync(p, Buffer.alloc(16_384, 'j')),
    why: /its first page is not an LMDB meta page/,
  },
  {
    what: 'junk',
    file: 'directory.mdb',
    damage: (p) => writeFileSync(p, Buffer.alloc(16_384, 0xa5)),
    why: /its first page is not an LMDB meta page/,
  },
  { what: 'cut to 20 bytes', file: 'directory.mdb', damage: (p) => truncateSync(p, 20), why: /it holds only 20 bytes/ },
  {
    what: 'another LMDB data format',
    file: 'directory.mdb',
    damage: (p) => {
      const bytes = readFileSync(p);
      bytes.writeUInt32LE(3, 28);
      writeFileSync(p, bytes);
    },
    why: /it has LMDB data format 3, this build reads 2/,
  },
  { what: 'empty', file: 'users.mdb', damage: (p) => truncateSync(p, 0), why: /it is empty \(0 bytes\)/, readersOnly: true },
  {
    what: 'a folder',
    file: 'directory.mdb',
    damage: (p) => {
      rmSync(p);
      mkdirSync(p);
    },
    why: /it is not a file \(a folder\?\)/,
  },
  {
    what: 'with a folder for its lock file',
    file: 'directory.mdb',
    damage: (p) => {
      rmSync(`${p}-lock`, { force: true });
      mkdirSync(`${p}-lock`);
    },
    why: /its lock file \S+-lock is not a file; move it aside/,
    bare: true,
  },
];

/** What is at `path`: a file's bytes or a folder's names (compared before and after). */
function contentOf(path: string): Buffer | string[] {
  return statSync(path).isDirectory() ? readdirSync(path) : readFileSync(path);
}

for (const d of DAMAGES) {
  test(`${d.file} ${d.what}: refused in words by every program, never a crash, the file left as it was`, async (t) => {
    const dir = tempDir('mupdated-damaged-');
    cpSync(pristine, dir, { recursive: true });
    const path = join(dir, d.file);
    d.damage(path);
    const before = contentOf(path);
    const advice = d.bare ? '' : '.*restore it from a backup';
    const refusal = new RegExp(`^mupdated: cannot open \\S*${d.file.replace('.', '\\.')}: ${d.why.source}${advice}`, 'm');
    const runs: Array<[string, string[]]> = [
      ['verify', ['verify', '--data', dir]],
      ['backup', ['backup', join(tempDir('mupdated-damaged-dest-'), 'copy'), '--data', dir]],
    ];
    if (!d.readersOnly) {
      runs.push(['master', ['master', '--data', dir, '--listen', '127.0.0.1:0']]);
      if (d.file === 'users.mdb') runs.push(['user list', ['user', 'list', '--data', dir]]);
    }
    for (const [label, args] of runs) {
      const r = await runCli(args, { timeoutMs: 30_000 });
      t.is(r.signal, null, `${label}: ${showRun(r)}`);
      t.is(r.code, 1, `${label}: ${showRun(r)}`);
      t.regex(r.stderr, refusal, `${label}: ${showRun(r)}`);
    }
    t.deepEqual(contentOf(path), before, 'the damaged file is unchanged');
  });
}

test('the header check lets a sound folder through (the master serves it)', async (t) => {
  const dir = tempDir('mupdated-damaged-');
  cpSync(pristine, dir, { recursive: true });
  const r = await runCli(['verify', '--data', dir]);
  t.is(r.code, 0, showRun(r));
  const s = await startMupdated({ dataDir: dir });
  t.true(s.port > 0);
  await s.stop();
});
