/**
 * How far a slave is behind its master, from what it can see itself: the
 * changes it has received and not yet applied, and since when it has been
 * behind. Caught up means streaming with nothing received left to apply; while
 * not streaming (connecting, resyncing) the lag keeps growing from the last
 * moment it was caught up.
 */
export class SlaveLag {
  private behindSince: number;
  private unapplied = 0;

  constructor(private readonly now: () => number = Date.now) {
    this.behindSince = now();
  }

  /** Applies `count` received changes with `apply`; `moreWaiting` tells whether others arrived meanwhile. */
  async track(count: number, apply: () => Promise<void>, moreWaiting: () => boolean): Promise<void> {
    this.received(count);
    await apply();
    this.applied(count, moreWaiting());
  }

  /** Changes arrived (about to be applied). */
  received(count: number): void {
    if (Number.isNaN(this.behindSince)) this.behindSince = this.now();
    this.unapplied += count;
  }

  /** Changes applied; `moreWaiting`: others were received meanwhile. */
  applied(count: number, moreWaiting: boolean): void {
    this.unapplied = Math.max(0, this.unapplied - count);
    if (!moreWaiting && this.unapplied === 0) this.behindSince = Number.NaN;
  }

  /** The stream (re)started after a sync: nothing is outstanding. */
  caughtUp(): void {
    this.unapplied = 0;
    this.behindSince = Number.NaN;
  }

  /** The follower's state changed: streaming starts caught up; any other state is behind from now on. */
  state(streaming: boolean): void {
    if (streaming) this.caughtUp();
    else if (Number.isNaN(this.behindSince)) this.behindSince = this.now();
  }

  snapshot(): { changes: number; seconds: number } {
    const seconds = Number.isNaN(this.behindSince) ? 0 : Math.max(0, (this.now() - this.behindSince) / 1000);
    return { changes: this.unapplied, seconds };
  }
}
