/**
 * Whole-directory dumps (LIST, UPDATE) in worker threads (dump-worker.ts):
 * the server thread only writes finished chunks to sockets, so writers and
 * FINDs are answered at once while slaves resync. Workers start on the first
 * dump and are shared: each dump goes to the worker with the fewest. A worker
 * with no dump for `idleMs` exits: its V8 heap and chunk memory (about 20 MB)
 * go back to the system, and the next dump starts a new one.
 */
import { Worker } from 'node:worker_threads';
import type { Logger } from '../log.js';
import type { ScanFilter } from '../store/types.js';
import type { DumpConsumer, DumpSource } from './dump-lines.js';
import type { FromWorker, ToWorker } from './dump-protocol.js';

/** Chunks a dump may have on their way before the server has written the first. */
const CREDIT = 2;

interface ActiveDump {
  consumer: DumpConsumer;
  /** Chunks are written in order, one after the other. */
  chain: Promise<void>;
  resolve: () => void;
  reject: (err: Error) => void;
}

class DumpWorker {
  readonly dumps = new Map<number, ActiveDump>();
  private readonly worker: Worker;
  dead = false;
  private idleTimer: NodeJS.Timeout | null = null;
  /** Settles once the worker can start a dump at once (or has exited). */
  readonly ready: Promise<void>;
  private markReady!: () => void;

  constructor(
    dataDir: string,
    private readonly log: Logger,
    onExit: (w: DumpWorker) => void,
    private readonly idle: { ms: number; onIdle: (w: DumpWorker) => void },
  ) {
    this.ready = new Promise((resolve) => (this.markReady = resolve));
    const spawnedAt = performance.now();
    void this.ready.then(() => {
      if (!this.dead) this.log.debug({ startMs: Math.round(performance.now() - spawnedAt) }, 'dump worker started');
    });
    // A worker holds a read transaction and a few chunks: small heaps keep its memory small.
    this.worker = new Worker(new URL('./dump-worker.js', import.meta.url), {
      workerData: { dataDir },
      resourceLimits: { maxYoungGenerationSizeMb: 4, maxOldGenerationSizeMb: 128 },
    });
    this.worker.unref();
    this.worker.on('message', (msg: FromWorker) => this.onMessage(msg));
    this.worker.on('error', (err) => this.log.error({ err: err.message }, 'dump worker failed'));
    this.worker.on('exit', (code) => {
      this.dead = true;
      this.markReady();
      this.busy();
      for (const [, d] of this.dumps) d.reject(new Error(`dump worker exited (${code})`));
      this.dumps.clear();
      onExit(this);
    });
  }

  /** Takes a dump: the worker is not idle. */
  add(id: number, dump: ActiveDump): void {
    this.busy();
    this.dumps.set(id, dump);
  }

  /** A dump is over (ended, failed or its reader left); with none left the idle period starts. */
  remove(id: number): void {
    this.dumps.delete(id);
    this.idleUnlessBusy();
  }

  idleUnlessBusy(): void {
    if (this.dumps.size > 0 || this.dead || this.idle.ms <= 0 || this.idleTimer) return;
    this.idleTimer = setTimeout(() => {
      this.idleTimer = null;
      if (this.dumps.size === 0 && !this.dead) this.idle.onIdle(this);
    }, this.idle.ms);
    this.idleTimer.unref();
  }

  private busy(): void {
    if (this.idleTimer) clearTimeout(this.idleTimer);
    this.idleTimer = null;
  }

  send(msg: ToWorker, transfer?: ArrayBuffer[]): void {
    if (!this.dead) this.worker.postMessage(msg, transfer);
  }

  private onMessage(msg: FromWorker): void {
    if (msg.type === 'ready') return this.markReady();
    const d = this.dumps.get(msg.id);
    if (!d) return;
    if (msg.type === 'begin') {
      d.consumer.begin(msg.seq);
    } else if (msg.type === 'chunk') {
      const memory = msg.data;
      const data = Buffer.from(memory, 0, msg.length);
      const release = () => this.send({ type: 'recycle', data: memory }, [memory]);
      d.chain = d.chain.then(async () => {
        if (d.consumer.isCancelled()) return;
        await d.consumer.chunk(data, release);
        this.send({ type: 'ack', id: msg.id });
      });
      d.chain.catch(() => {
        /* reported through end */
      });
    } else if (msg.type === 'end') {
      // Idle only once the last chunk is written: a chunk still to write may recycle its memory.
      d.chain.then(d.resolve, d.reject).finally(() => this.remove(msg.id));
    } else {
      this.remove(msg.id);
      d.reject(new Error(msg.message));
    }
  }

  terminate(): Promise<void> {
    this.busy();
    this.send({ type: 'close' });
    const exited = new Promise<void>((r) => this.worker.once('exit', () => r()));
    const timer = setTimeout(() => void this.worker.terminate(), 5000);
    timer.unref();
    return exited.finally(() => clearTimeout(timer));
  }
}

export class DumpPool implements DumpSource {
  private readonly workers: DumpWorker[] = [];
  private nextId = 1;
  private closed = false;
  /** Idle workers on their way out: close() waits for them too. */
  private readonly leaving = new Set<Promise<void>>();
  /** Called when a worker thread has exited (its memory is freed then). */
  onWorkerExit: (() => void) | null = null;

  /** `idleMs`: a worker with no dump for this long exits (0: workers stay). */
  constructor(
    private readonly dataDir: string,
    private readonly size: number,
    private readonly log: Logger,
    private readonly idleMs = 0,
  ) {}

  /** Worker threads running now. */
  get running(): number {
    return this.workers.length;
  }

  get threadsOpen(): boolean {
    return this.workers.length > 0 || this.leaving.size > 0;
  }

  /** Streams one dump to `consumer`; resolves when the last chunk has been written (or the reader left). */
  dump(tag: Buffer, filter: ScanFilter, consumer: DumpConsumer): Promise<void> {
    if (this.closed) return Promise.reject(new Error('the server is shutting down'));
    const worker = this.pick();
    const id = this.nextId++;
    return new Promise<void>((resolve, reject) => {
      const active: ActiveDump = { consumer, chain: Promise.resolve(), resolve, reject };
      worker.add(id, active);
      worker.send({
        type: 'start',
        id,
        tag,
        credit: CREDIT,
        locationPrefix: filter.locationPrefix,
        servers: filter.servers ? [...filter.servers] : undefined,
      });
      // A reader that leaves mid-dump stops the worker's scan (checked between chunks).
      const poll = setInterval(() => {
        if (!consumer.isCancelled() || !worker.dumps.has(id)) return;
        clearInterval(poll);
        worker.remove(id);
        worker.send({ type: 'cancel', id });
        resolve();
      }, 200);
      poll.unref();
      const stopPoll = () => clearInterval(poll);
      active.resolve = () => {
        stopPoll();
        resolve();
      };
      active.reject = (err) => {
        stopPoll();
        reject(err);
      };
    });
  }

  /**
   * Starts a worker ahead of the first dump when none runs: a worker's start
   * (a V8 isolate, Node's bootstrap, the store's modules) is then not part of
   * the first LIST's time. It exits again after the idle period if no dump comes.
   * Settles once a worker can start a dump at once (or there is none to wait for).
   */
  warm(): Promise<void> {
    if (this.closed || this.size === 0) return Promise.resolve();
    if (this.workers.length > 0) return this.workers[0].ready;
    const w = this.spawn();
    // The idle period counts from when the worker is up, not from its spawn.
    return w.ready.then(() => w.idleUnlessBusy());
  }

  private pick(): DumpWorker {
    if (this.workers.length < this.size) return this.spawn();
    return this.workers.reduce((a, b) => (b.dumps.size < a.dumps.size ? b : a));
  }

  private spawn(): DumpWorker {
    const w = new DumpWorker(
      this.dataDir,
      this.log,
      (dead) => {
        this.forget(dead);
        this.onWorkerExit?.();
      },
      {
        ms: this.idleMs,
        onIdle: (idle) => {
          // Out of the pool first, so no new dump is given to a worker on its way out.
          this.forget(idle);
          const exit = idle.terminate();
          this.leaving.add(exit);
          void exit.finally(() => this.leaving.delete(exit));
        },
      },
    );
    this.workers.push(w);
    return w;
  }

  private forget(w: DumpWorker): void {
    const i = this.workers.indexOf(w);
    if (i >= 0) this.workers.splice(i, 1);
  }

  async close(): Promise<void> {
    this.closed = true;
    await Promise.all([...this.workers.map((w) => w.terminate()), ...this.leaving]);
  }
}
