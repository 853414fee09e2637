/**
 * Dump workers (dump_worker_idle): a worker with no dump for its idle period
 * exits, giving its memory back; the next dump starts a new one and gives
 * the same bytes. A real LMDB directory in a temp folder and real worker
 * threads.
 */
import test from 'ava';
import { LmdbDirectoryStore } from '../src/store/lmdb-store.js';
import { DumpPool } from '../src/mupdate/dump-pool.js';
import { createLogger } from '../src/log.js';
import { applySettings, defaultConfig } from '../src/config.js';
import { readdirSync, readFileSync } from 'node:fs';
import { removeDir, tempDir } from './helpers/server.js';

const ENTRIES = 5_000;

/**
 * The pool's workers and timers are unref'd (a server's listening socket keeps
 * its process up): the test keeps its own process up while it waits.
 */
function keepAlive(t: { teardown(fn: () => void): void }): void {
  const timer = setInterval(() => {}, 1000);
  t.teardown(() => clearInterval(timer));
}

async function directory(t: { teardown(fn: () => void): void }): Promise<string> {
  const dataDir = tempDir();
  t.teardown(() => removeDir(dataDir));
  const store = LmdbDirectoryStore.open(dataDir, {});
  const items = Array.from({ length: ENTRIES }, (_, i) => {
    const name = Buffer.from(`user.idle${String(i).padStart(5, '0')}`);
    return {
      name,
      entry: {
        name,
        state: 'active' as const,
        location: Buffer.from(`backend${i % 3}!default`),
        acl: Buffer.from(`user${i}\tlrswipkxtecdan\tanyone\tlrs\t`),
      },
    };
  });
  await store.applyMany(items);
  await store.close();
  return dataDir;
}

/** One whole LIST-style dump through the pool, as the bytes a client would get. */
async function dumpBytes(pool: DumpPool): Promise<Buffer> {
  const parts: Buffer[] = [];
  await pool.dump(
    Buffer.from('L1'),
    {},
    {
      begin: () => {},
      chunk: (data, release) => {
        parts.push(Buffer.from(data));
        release();
      },
      isCancelled: () => false,
    },
  );
  return Buffer.concat(parts);
}

async function until(check: () => boolean, ms: number): Promise<boolean> {
  const end = Date.now() + ms;
  while (!check() && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
  return check();
}

test('an idle dump worker exits and a later dump starts a new one with the same bytes', async (t) => {
  keepAlive(t);
  const dataDir = await directory(t);
  const pool = new DumpPool(dataDir, 1, createLogger('silent'), 300);
  t.teardown(() => pool.close());
  t.is(pool.running, 0, 'no worker before the first dump');
  t.false(pool.threadsOpen, 'nothing holds the directory file open yet');
  const first = await dumpBytes(pool);
  t.is(
    first
      .toString('latin1')
      .split('\r\n')
      .filter((l) => l.startsWith('L1 MAILBOX')).length,
    ENTRIES,
  );
  t.is(pool.running, 1, 'the dump started a worker');
  t.true(pool.threadsOpen, 'its thread has the directory file open (the server must not unmap it now)');
  t.true(await until(() => pool.running === 0, 10_000), 'the idle worker exited');
  t.true(await until(() => !pool.threadsOpen, 10_000), 'and once its thread has ended, nothing holds the file');
  const second = await dumpBytes(pool);
  t.true(second.equals(first), 'a dump after the exit gives the same bytes');
  t.is(pool.running, 1);
});

test('a worker busy with a dump does not exit, and with dump_worker_idle 0 a worker stays', async (t) => {
  keepAlive(t);
  const dataDir = await directory(t);
  const pool = new DumpPool(dataDir, 1, createLogger('silent'), 0);
  t.teardown(() => pool.close());
  await dumpBytes(pool);
  await new Promise((r) => setTimeout(r, 500));
  t.is(pool.running, 1, 'idle 0: the worker stays');
  await pool.close();

  const busyPool = new DumpPool(dataDir, 1, createLogger('silent'), 100);
  t.teardown(() => busyPool.close());
  // A reader slower than the idle period: each chunk waits 150 ms before the next may come.
  let chunks = 0;
  await busyPool.dump(
    Buffer.from('U1'),
    {},
    {
      begin: () => {},
      chunk: async (_data, release) => {
        chunks++;
        t.is(busyPool.running, 1, 'the worker is there while its dump runs');
        await new Promise((r) => setTimeout(r, 150));
        release();
      },
      isCancelled: () => false,
    },
  );
  t.true(chunks >= 2, 'the dump spans several chunks, longer than the idle period');
  t.true(await until(() => busyPool.running === 0, 10_000), 'and exits once idle');
});

test('warm() starts a worker before the first dump; with no dump it exits after the idle period', async (t) => {
  keepAlive(t);
  const dataDir = await directory(t);
  const pool = new DumpPool(dataDir, 2, createLogger('silent'), 300);
  t.teardown(() => pool.close());
  let exits = 0;
  pool.onWorkerExit = () => exits++;
  const ready = pool.warm();
  void pool.warm();
  t.is(pool.running, 1, 'one worker, however often warmed');
  await ready;
  t.is(pool.running, 1, 'warm() settles once the worker is up; its idle period starts then');
  t.true(await until(() => pool.running === 0, 10_000), 'no dump came: it exited');
  t.true(await until(() => exits === 1, 10_000), 'and the pool said so once (the idle trim gives its memory back)');
  const lines = (await dumpBytes(pool)).toString('latin1').split('\r\n');
  t.is(lines.filter((l) => l.startsWith('L1 MAILBOX')).length, ENTRIES, 'a dump afterwards still works');
});

/** The nice value of each thread of this process, by thread id (field 19 of /proc/self/task/<tid>/stat). */
function threadNices(): Map<number, number> {
  const nices = new Map<number, number>();
  for (const tid of readdirSync('/proc/self/task')) {
    const stat = readFileSync(`/proc/self/task/${tid}/stat`, 'latin1');
    nices.set(Number(tid), Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[16]));
  }
  return nices;
}

test.serial('a dump worker runs at nice 10, below the thread that answers writes', async (t) => {
  keepAlive(t);
  const dataDir = await directory(t);
  const pool = new DumpPool(dataDir, 1, createLogger('silent'), 0);
  t.teardown(() => pool.close());
  t.deepEqual(
    [...threadNices().values()].filter((n) => n !== 0),
    [],
    'before any worker every thread is at nice 0',
  );
  await dumpBytes(pool);
  const nices = threadNices();
  t.is(nices.get(process.pid), 0, 'the event loop thread keeps nice 0');
  t.deepEqual(
    [...nices.values()].filter((n) => n !== 0),
    [10],
    'one thread, the worker, at nice 10',
  );
});

test('dump_worker_idle is read in seconds, 30 by default', (t) => {
  const read = (value: string) => {
    const config = defaultConfig();
    applySettings(config, new Map([['dump_worker_idle', value]]));
    return config.dumpWorkerIdleMs;
  };
  t.is(defaultConfig().dumpWorkerIdleMs, 30_000);
  t.is(read('5'), 5_000);
  t.is(read('0'), 0);
});
