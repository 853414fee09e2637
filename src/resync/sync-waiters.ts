/**
 * Who waits on the slave's link to its master: NOOPs sent upstream (answered
 * by their OK, or given up when the link is lost) and callers waiting for
 * the slave to stream again after a reconnect.
 */
export class SyncWaiters {
  private noops: Array<{ tag: number; resolve: (answered: boolean) => void }> = [];
  private streaming: Array<() => void> = [];

  /** Resolves true once the NOOP with this tag is answered, false if the link is lost first. */
  noop(tag: number): Promise<boolean> {
    return new Promise((resolve) => this.noops.push({ tag, resolve }));
  }

  /** The master answered the NOOP `tag` (and, in order, every one before it). */
  answered(tag: number): void {
    this.settleNoops((t) => t <= tag, true);
  }

  /** The link is gone: no NOOP in flight will be answered. */
  linkLost(): void {
    this.settleNoops(() => true, false);
  }

  /** Resolves the next time the slave streams again (or stops). */
  untilStreaming(): Promise<void> {
    return new Promise((resolve) => this.streaming.push(resolve));
  }

  streamingAgain(): void {
    const waiters = this.streaming;
    this.streaming = [];
    for (const w of waiters) w();
  }

  private settleNoops(which: (tag: number) => boolean, answered: boolean): void {
    const settled = this.noops.filter((w) => which(w.tag));
    this.noops = this.noops.filter((w) => !which(w.tag));
    for (const w of settled) w.resolve(answered);
  }
}
