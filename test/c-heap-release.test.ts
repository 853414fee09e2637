/**
 * The C heap's free pages go back to the system (c-heap-release.ts): glibc
 * keeps freed chunks below live ones resident, and malloc_trim, reached
 * through SQLite's extension loader, releases them.
 */
import test from 'ava';
import { readFileSync } from 'node:fs';
import v8 from 'node:v8';
import vm from 'node:vm';
import { CHeapReleaser } from '../src/mupdate/c-heap-release.js';

const MIB = 1024 * 1024;
const rssAnon = () => Number(/^RssAnon:\s+(\d+) kB/m.exec(readFileSync('/proc/self/status', 'utf8'))![1]) * 1024;

function fullCollection(): () => void {
  v8.setFlagsFromString('--expose-gc');
  const gc = vm.runInNewContext('gc') as () => void;
  v8.setFlagsFromString('--no-expose-gc');
  return gc;
}

test('after 200 MB of 1 KB buffers are freed but one in 50 is kept, the freed pages go back', (t) => {
  const gc = fullCollection();
  // Every 50th buffer stays alive: glibc cannot shrink its heap past any of them.
  const kept: Buffer[] = [];
  let all: Buffer[] = [];
  for (let i = 0; i < 200_000; i++) {
    const b = Buffer.allocUnsafeSlow(1000).fill(i & 0xff);
    all.push(b);
    if (i % 50 === 0) kept.push(b);
  }
  all = [];
  gc();
  gc();
  const before = rssAnon();
  const releaser = new CHeapReleaser();
  t.teardown(() => releaser.close());
  t.is(releaser.release(), 'released', releaser.unavailable ?? '');
  const after = rssAnon();
  t.log(`RssAnon ${(before / MIB).toFixed(1)} -> ${(after / MIB).toFixed(1)} MiB (${kept.length} buffers kept)`);
  t.true(before - after > 100 * MIB, `at least 100 of the ~190 MiB freed went back (${((before - after) / MIB).toFixed(1)} MiB)`);
  t.is(kept.filter((b, i) => b[0] !== ((i * 50) & 0xff)).length, 0, 'the live buffers are intact');
});
