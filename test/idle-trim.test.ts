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

test.serial(
  'the directory file is unmapped once per idle spell: asked again while refused, not again while idle, again after a busy period',
  async (t) => {
    let calls = 0;
    let answer = false;
    const trim = new IdleTrim(500, createLogger('silent'), () => {
      calls++;
      return Promise.resolve(answer);
    });
    t.teardown(() => trim.stop());
    const until = async (cond: () => boolean, ms: number) => {
      const end = Date.now() + ms;
      while (!cond() && Date.now() < end) await new Promise((r) => setTimeout(r, 50));
      return cond();
    };
    t.true(await until(() => calls >= 2, 10_000), `refused: asked again the next idle period (${calls} calls)`);
    answer = true;
    const refused = calls;
    t.true(await until(() => calls > refused, 10_000), 'asked once more, and it unmapped');
    const done = calls;
    await new Promise((r) => setTimeout(r, 2500));
    t.is(calls, done, 'idle since: not asked again');
    // A busy period (well over 1% of one): the pages may be touched again.
    const spinUntil = Date.now() + 300;
    while (Date.now() < spinUntil);
    t.true(await until(() => calls === done + 1, 10_000), `asked again after the busy period (${calls - done} more calls)`);
  },
);

test.serial('after a worker thread exits, the next idle period trims once more, though the heap did not grow', async (t) => {
  const trim = new IdleTrim(300, createLogger('silent'));
  t.teardown(() => trim.stop());
  const wait = (ms: number) => new Promise((r) => setTimeout(r, ms));
  // Whatever this process had to give back first (earlier tests, a young generation still
  // large: retried twice, 6 s apart), then a steady state: no trim for 7 s (at most 30 s).
  let settled = trim.trims;
  let quietSince = Date.now();
  for (const giveUp = Date.now() + 30_000; Date.now() - quietSince < 7000 && Date.now() < giveUp;) {
    await wait(100);
    if (trim.trims !== settled) [settled, quietSince] = [trim.trims, Date.now()];
  }
  t.true(Date.now() - quietSince >= 7000, 'idle, nothing new: no trim for 7 s');
  trim.threadExited();
  const end = Date.now() + 10_000;
  while (trim.trims === settled && Date.now() < end) await wait(50);
  t.is(trim.trims, settled + 1, 'a trim after the thread exited');
  t.true(trim.lastCHeap === 'released' || trim.lastCHeap === 'nothing to release', `the C heap was trimmed too (${trim.lastCHeap})`);
  await wait(1200);
  t.is(trim.trims, settled + 1, 'once only');
});

test.serial('without a full collection (a runtime that refuses it) an exited thread still gets its C memory given back', async (t) => {
  const trim = new IdleTrim(300, createLogger('silent'), undefined, null);
  t.teardown(() => trim.stop());
  const wait = (ms: number) => new Promise((r) => setTimeout(r, ms));
  await wait(1000);
  t.is(trim.trims, 0, 'no collection to run and no thread gone: nothing to trim');
  trim.threadExited();
  const end = Date.now() + 10_000;
  while (trim.trims === 0 && Date.now() < end) await wait(50);
  t.is(trim.trims, 1, 'a trim after the thread exited');
  t.true(trim.lastCHeap === 'released' || trim.lastCHeap === 'nothing to release', `the C heap was trimmed (${trim.lastCHeap})`);
  await wait(1000);
  t.is(trim.trims, 1, 'once only');
});
