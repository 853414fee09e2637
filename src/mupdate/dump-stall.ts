/**
 * A dump (LIST, UPDATE) to a client that stopped reading holds an LMDB read
 * snapshot, and the file grows under writes meanwhile. A StallWatch runs
 * while a dump does: every sign of progress (the socket took bytes or
 * drained) restarts it; if none comes for its whole period it calls
 * `onStall` once.
 */
export class StallWatch {
  private readonly timer: NodeJS.Timeout;

  constructor(periodMs: number, onStall: () => void) {
    this.timer = setTimeout(onStall, periodMs);
    this.timer.unref();
  }

  /** The reader took bytes: the period starts again. */
  progress(): void {
    this.timer.refresh();
  }

  stop(): void {
    clearTimeout(this.timer);
  }
}

/**
 * Runs `dump` with a StallWatch of `periodMs` that `track` hands to the
 * caller (null again afterwards), so its I/O can report progress.
 * `onStall` gets the period in seconds.
 */
export async function underStallWatch(
  periodMs: number,
  track: (watch: StallWatch | null) => void,
  dump: () => Promise<void>,
  onStall: (seconds: number) => void,
): Promise<void> {
  const watch = new StallWatch(periodMs, () => onStall(periodMs / 1000));
  track(watch);
  try {
    await dump();
  } finally {
    watch.stop();
    track(null);
  }
}
