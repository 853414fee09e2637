/**
 * Gives the server thread's heap back once the server is idle. A LIST, a
 * dump or a thousand logins grow V8's young generation (up to 32 MB) and
 * old space, and V8 keeps that memory committed for good when no
 * collection follows; a server idle for hours then holds it all. When the
 * process has used almost no CPU for a whole period and the heap is
 * larger than after the last trim, one full collection runs: with the
 * allocation rate low V8 also shrinks the young generation (to 1 MB). It
 * runs only while idle, so it delays no busy server's answers, and once
 * per growth, not every period. The C heap's free pages go back after it
 * (c-heap-release.ts). Once per idle spell after a busy one, the directory
 * file is unmapped (`releaseMapping`: the store reopens it), so the pages
 * LISTs, dumps and writes touched stop counting in the RSS.
 */
import { readFileSync } from 'node:fs';
import v8 from 'node:v8';
import vm from 'node:vm';
import type { Logger } from '../log.js';
import { metricsHooks } from '../metrics/hooks.js';
import { CHeapReleaser, type CHeapRelease } from './c-heap-release.js';

/** Idle: less CPU than this share of the period (1%). */
const IDLE_CPU_SHARE = 0.01;
/** Heap growth since the last trim that makes another worth it. */
const REGROWTH_BYTES = 4 * 1024 * 1024;
/** A young generation larger than this is shrunk on the next idle period. */
const YOUNG_BYTES = 2 * 1024 * 1024;
/**
 * Trims for a large young generation alone, until the heap grows again: V8
 * shrinks it only once it sees the allocation rate low.
 */
const YOUNG_TRIES = 2;
/**
 * V8 judges the allocation rate over its last 5 s of collections; a retry
 * this long after the previous trim sees only idle time in that window, so
 * it is not misled by the burst that grew the young generation.
 */
const YOUNG_RETRY_GAP_MS = 6000;

/** V8's full collection, made callable from the running process (no start flag). */
function fullCollection(): (() => void) | null {
  try {
    v8.setFlagsFromString('--expose-gc');
    const gc = vm.runInNewContext('gc') as unknown;
    v8.setFlagsFromString('--no-expose-gc');
    return typeof gc === 'function' ? (gc as () => void) : null;
  } catch {
    return null;
  }
}

/** The process's resident file-backed pages (kB), or null where /proc says nothing. */
function fileRssKb(): number | null {
  try {
    const m = /^RssFile:\s+(\d+)/m.exec(readFileSync('/proc/self/status', 'utf8'));
    return m ? Number(m[1]) : null;
  } catch {
    return null;
  }
}

function youngBytes(): number {
  return v8.getHeapSpaceStatistics().find((s) => s.space_name === 'new_space')?.space_size ?? 0;
}

/** Unmaps the directory file if nothing uses it now; false to be asked again next idle period. */
export type MappingRelease = () => Promise<boolean>;

export class IdleTrim {
  private readonly timer: NodeJS.Timeout;
  private readonly cHeap = new CHeapReleaser();
  private cpu = process.cpuUsage();
  /** The heap's committed size after the last trim. */
  private floor = 0;
  private youngTries = 0;
  private lastTrimAt = 0;
  /** Trims done so far. */
  trims = 0;
  /** What the last trim's C heap release did (null before the first trim). */
  lastCHeap: CHeapRelease | null = null;
  /** A busy period came since the directory file was last unmapped. */
  private mappingUsed = true;
  private releasing = false;
  /** A thread of the process exited since the last trim: its C memory waits to be given back. */
  private threadGone = false;

  constructor(
    private readonly periodMs: number,
    private readonly log: Logger,
    private readonly releaseMapping?: MappingRelease,
    /** V8's full collection; null where the runtime does not allow it (then only the C heap is trimmed). */
    private readonly gc: (() => void) | null = fullCollection(),
  ) {
    this.timer = setInterval(() => this.check(), periodMs);
    this.timer.unref();
  }

  private check(): void {
    const used = process.cpuUsage(this.cpu);
    this.cpu = process.cpuUsage();
    const busyMs = (used.user + used.system) / 1000;
    if (busyMs > this.periodMs * IDLE_CPU_SHARE) {
      this.mappingUsed = true;
      return;
    }
    if (this.mappingUsed && this.releaseMapping && !this.releasing) void this.unmap(this.releaseMapping);
    const total = process.memoryUsage().heapTotal;
    if (!this.gc) {
      // No full collection on this runtime, but an exited thread's C memory can still go back.
      if (this.threadGone) this.trim(total, null);
      return;
    }
    // An exited thread's memory is reason enough; otherwise the heap must have grown, or the young generation stayed large.
    if (!this.threadGone) {
      if (total >= this.floor + REGROWTH_BYTES) this.youngTries = 0;
      else if (youngBytes() <= YOUNG_BYTES || this.youngTries >= YOUNG_TRIES) return;
      else if (performance.now() - this.lastTrimAt < YOUNG_RETRY_GAP_MS) return;
      else this.youngTries++;
    }
    this.trim(total, this.gc);
  }

  /** One full collection (when the runtime allows it), then the C heap's free pages back to the system. */
  private trim(total: number, gc: (() => void) | null): void {
    this.threadGone = false;
    const t0 = performance.now();
    this.lastTrimAt = t0;
    gc?.();
    this.floor = process.memoryUsage().heapTotal;
    // After the collection: the C memory of the objects it freed is free now too.
    const cHeap = (this.lastCHeap = this.cHeap.release());
    this.trims++;
    // The collection's own CPU must not count against the next period's idleness.
    this.cpu = process.cpuUsage();
    this.log.debug(
      {
        ms: Math.round(performance.now() - t0),
        heapBefore: total,
        heapAfter: this.floor,
        fullCollection: gc !== null,
        cHeap,
        cHeapOff: this.cHeap.unavailable ?? undefined,
      },
      'idle server: heap trimmed',
    );
  }

  /**
   * A worker thread exited (a dump worker after its idle period): the memory
   * it freed stays in the C heap's arenas until trimmed, so the next idle
   * period trims even though this thread's heap did not grow.
   */
  threadExited(): void {
    this.threadGone = true;
  }

  private async unmap(release: MappingRelease): Promise<void> {
    this.releasing = true;
    const before = fileRssKb();
    try {
      if (!(await release())) return;
      this.mappingUsed = false;
      metricsHooks.directoryUnmapped();
      this.log.debug({ fileRssKbBefore: before, fileRssKbAfter: fileRssKb() }, 'idle server: directory file unmapped');
    } catch (err) {
      this.log.error({ err: (err as Error).message }, 'could not reopen the directory file after unmapping it');
    } finally {
      this.releasing = false;
      // The reopening's own CPU must not make the next period look busy.
      this.cpu = process.cpuUsage();
    }
  }

  stop(): void {
    clearInterval(this.timer);
    this.cHeap.close();
  }
}
