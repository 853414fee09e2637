/**
 * The server thread's heap is trimmed once the process is idle (idle-trim.ts):
 * a young generation grown by a burst of allocations is given back, and an
 * idle process with nothing new to give back is not collected again and again.
 */
import test from 'ava';
import v8 from 'node:v8';
import { IdleTrim } from '../src/mupdate/idle-trim.js';
import { createLogger } from '../src/log.js';

const young = () => v8.getHeapSpaceStatistics().find((s) => s.space_name === 'new_space')!.space_size;

test('after a burst of allocations an idle process trims its heap, then stops trimming', async (t) => {
  // Many objects that survive a while: V8 grows the young generation (bounded: 40 rounds).
  let keep: object[] = [];
  for (let round = 0; round < 40 && young() < 8 * 1024 * 1024; round++) {
    for (let i = 0; i < 200_000; i++) keep.push({ i, s: `x${i}` });
    if (keep.length > 400_000) keep = [];
  }
  keep = [];
  const grown = young();
  t.true(grown > 2 * 1024 * 1024, `the young generation grew (${grown} bytes)`);
  // V8 shrinks the young generation once the burst is out of its 5 s allocation-rate window.
  const trim = new IdleTrim(2000, createLogger('silent'));
  t.teardown(() => trim.stop());
  const end = Date.now() + 25_000;
  while (young() > 2 * 1024 * 1024 && Date.now() < end) await new Promise((r) => setTimeout(r, 100));
  t.true(trim.trims >= 1, 'a trim ran');
  t.true(trim.lastCHeap === 'released' || trim.lastCHeap === 'nothing to release', `the C heap was trimmed too (${trim.lastCHeap})`);
  t.true(young() <= 2 * 1024 * 1024, `the young generation shrank (${young()} bytes)`);
  const done = trim.trims;
  await new Promise((r) => setTimeout(r, 4500));
  t.is(trim.trims, done, 'nothing more to give back: no more collections');
});
