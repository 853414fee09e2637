/**
 * Keeping an etcd watch whole: where it resumes after its stream reconnects,
 * and cancelling it without waiting for good on a stream that is gone.
 *
 * Where it resumes: The etcd3 client
 * moves a watcher's start revision to each reply's header revision, which is
 * etcd's current revision, not that of the last event sent. A watch still
 * catching up on old revisions that loses its stream would then resume past
 * the events etcd had not yet sent, and they would never arrive: the view
 * would hold a directory with changes missing and decide writes on it. This
 * keeps the resume point just past the last event received and puts it on
 * the watch request each time the request is sent.
 */
import type { Etcd3, IWatchResponse, Watcher } from 'etcd3';

/**
 * A watch of `prefix` from `revision`, created but not yet sent: the caller
 * puts its handlers on first (etcd may answer the creation and the events
 * after it in one read). It resumes after the last event received.
 */
export function watchPrefixFrom(client: Etcd3, prefix: Buffer, revision: number): Watcher {
  const watcher = client.watch().prefix(prefix).startRevision(String(revision)).watcher();
  resumeAfterReceived(watcher, revision);
  return watcher;
}

function resumeAfterReceived(watcher: Watcher, from: number): void {
  let next = from;
  watcher.on('data', (res: IWatchResponse) => {
    const events = res.events;
    // A reply without events is a progress notification: etcd sends one only once everything up to its revision was sent.
    const upTo = events.length ? Number(events[events.length - 1].kv.mod_revision) : Number(res.header.revision);
    if (upTo + 1 > next) next = upTo + 1;
  });
  // Emitted just before the create request goes out, on the first connect and every reconnect.
  // (Its argument is typed as the outer request, but it is `watcher.request` itself.)
  watcher.on('connecting', () => {
    watcher.request.start_revision = String(next);
  });
}

/** Cancels a watch, waiting at most `ms` for etcd to confirm (a lost stream never does). */
export async function cancelWithin(watcher: Watcher, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([
    watcher.cancel().catch(() => {}),
    new Promise<void>((resolve) => {
      timer = setTimeout(resolve, ms);
    }),
  ]).finally(() => clearTimeout(timer));
}
