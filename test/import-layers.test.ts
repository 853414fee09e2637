/** The import check CI runs (scripts/check-imports.mjs): it passes on src/ and catches what it is for. */
import test from 'ava';
import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PROJECT_ROOT, removeDir, tempDir } from './helpers/server.js';

const SCRIPT = join(PROJECT_ROOT, 'scripts/check-imports.mjs');

function check(dir?: string): { status: number | null; out: string } {
  const r = spawnSync(process.execPath, [SCRIPT, ...(dir ? [dir] : [])], { encoding: 'utf8' });
  return { status: r.status, out: r.stdout + r.stderr };
}

/** Runs the check on a throw-away src/ tree made of `files`. */
function checkTree(files: Record<string, string>): { status: number | null; out: string } {
  const dir = tempDir('mupdated-imports-');
  try {
    for (const [path, text] of Object.entries(files)) {
      mkdirSync(join(dir, path, '..'), { recursive: true });
      writeFileSync(join(dir, path), text);
    }
    return check(dir);
  } finally {
    removeDir(dir);
  }
}

test('src/ has no import cycle and no upward import', (t) => {
  const r = check();
  t.is(r.status, 0, r.out);
});

test('an upward import (store -> session) is refused', (t) => {
  const r = checkTree({
    'store/types.ts': "import { Session } from '../mupdate/session.js';\nexport type X = Session;\n",
    'mupdate/session.ts': 'export class Session {}\n',
  });
  t.is(r.status, 1);
  t.regex(r.out, /store\/types\.ts \(layer 0\) imports mupdate\/session\.ts \(layer 1\)/);
});

test('an import cycle is refused', (t) => {
  const r = checkTree({
    'store/a.ts': "import { b } from './b.js';\nexport const a = () => b;\n",
    'store/b.ts': "import { a } from './a.js';\nexport const b = () => a;\n",
  });
  t.is(r.status, 1);
  t.regex(r.out, /import cycle: store\/a\.ts -> store\/b\.ts -> store\/a\.ts/);
});
