/**
 * The small calls the server, sessions and store make so that their work can
 * be counted. Nothing is counted until a sink is installed (`metrics_listen`
 * set): then each call costs one method call. A process runs one server, so
 * the sink and the live-stream set are per process, like prom-client's own.
 */

/** Where the events go (registry.ts turns them into Prometheus metrics). */
export interface MetricsSink {
  /** A tagged answer: `result` is OK, NO or BAD. */
  commandAnswered(command: string, result: string): void;
  /** A write became durable `seconds` after it was asked for. */
  writeCommitted(seconds: number): void;
  /** Writes decided together in one commit round. */
  commitBatch(size: number): void;
  /** An UPDATE stream fell too far behind and was closed. */
  streamDropped(): void;
  /** A login failed on its credentials. */
  failedLogin(): void;
  /** A LIST or UPDATE (XRESUME too) dump ended after `seconds`. */
  dumpFinished(command: string, seconds: number): void;
  /** An idle server unmapped its directory file (idle-trim.ts). */
  directoryUnmapped(): void;
}

/** An UPDATE stream as the metrics see it. */
export interface StreamGauge {
  /** Bytes of changes queued for the client, not yet written. */
  readonly pendingBytes: number;
}

let sink: MetricsSink | null = null;
const streams = new Set<StreamGauge>();
let dumpsRunning = 0;

export function installMetricsSink(s: MetricsSink | null): void {
  sink = s;
}

export const metricsHooks = {
  commandAnswered(command: string, result: string): void {
    sink?.commandAnswered(command, result);
  },
  /** `startedAt` from performance.now() when the write was asked for. */
  writeCommitted(startedAt: number): void {
    sink?.writeCommitted((performance.now() - startedAt) / 1000);
  },
  commitBatch(size: number): void {
    sink?.commitBatch(size);
  },
  streamOpened(stream: StreamGauge): void {
    streams.add(stream);
  },
  streamClosed(stream: StreamGauge): void {
    streams.delete(stream);
  },
  streamDropped(): void {
    sink?.streamDropped();
  },
  failedLogin(): void {
    sink?.failedLogin();
  },
  directoryUnmapped(): void {
    sink?.directoryUnmapped();
  },
  /** `dump` counted as a dump in progress while it runs, and its duration when it ends. */
  timedDump(command: 'LIST' | 'UPDATE', dump: () => Promise<void>): () => Promise<void> {
    return async () => {
      dumpsRunning++;
      const startedAt = performance.now();
      try {
        await dump();
      } finally {
        dumpsRunning--;
        sink?.dumpFinished(command, (performance.now() - startedAt) / 1000);
      }
    };
  },
};

/** Read at scrape time. */
export function liveStreams(): { count: number; pendingBytes: number } {
  let pendingBytes = 0;
  for (const s of streams) pendingBytes += s.pendingBytes;
  return { count: streams.size, pendingBytes };
}

export function dumpsInProgress(): number {
  return dumpsRunning;
}
