/**
 * When a batched commit fails (the disk is full, an I/O error), lmdb-js 3.5
 * rejects the promises of the writes in it, which the store awaits and
 * answers (NO to the client, a slave drops its connection and retries), and
 * also two promises of its own that nobody can await: the batch's commit
 * promise (rejected with `Error('Commit failed ...')`) and that error's
 * `commitError` (rejected with the file system's error). Node ends the
 * process on an unhandled rejection, so a full disk killed a slave with a
 * stack trace while the failure itself had been handled. These are absorbed
 * here; every other unhandled rejection still ends the process as before.
 */

/** lmdb-js's error for a failed batched commit: its `commitError` settles with the cause. */
interface CommitFailed extends Error {
  commitError: PromiseLike<unknown>;
}

function isCommitFailed(reason: unknown): reason is CommitFailed {
  if (!(reason instanceof Error) || !reason.message.startsWith('Commit failed')) return false;
  const cause = (reason as { commitError?: { then?: unknown } }).commitError;
  return typeof cause?.then === 'function';
}

/**
 * commitError promises already accounted for. Node reports a rejection that
 * was pending when the handler of an earlier one attached a catch to it all
 * the same, so the listener below also skips these by identity.
 */
const absorbed = new WeakSet<object>();

/** Marks the `commitError` of lmdb-js's commit failure as handled (the caller handles the failure itself). */
function absorbCommitError(err: unknown): void {
  if (!isCommitFailed(err)) return;
  absorbed.add(err.commitError);
  void Promise.resolve(err.commitError).catch(() => {});
}

/**
 * What to report for a failed write: for lmdb-js's "Commit failed (see
 * commitError for details)", the file system's error it stands for (for
 * example "No space left on device ..."); any other error as it is.
 */
async function commitFailureCause(err: unknown): Promise<unknown> {
  if (!isCommitFailed(err)) return err;
  try {
    await err.commitError;
    return err;
  } catch (cause) {
    return cause instanceof Error ? cause : err;
  }
}

/** Awaits an lmdb-js write; a failed commit rejects with the file system's error, its own promises accounted for. */
export async function lmdbWrite<T>(write: PromiseLike<T>): Promise<T> {
  try {
    return await write;
  } catch (err) {
    absorbCommitError(err);
    throw await commitFailureCause(err);
  }
}

let installed = false;

/** Absorbs lmdb-js's own rejections of a failed commit in this process (idempotent). */
export function absorbLmdbCommitRejections(): void {
  if (installed) return;
  installed = true;
  process.on('unhandledRejection', (reason, promise) => {
    if (isCommitFailed(reason)) return absorbCommitError(reason);
    if (absorbed.has(promise)) return;
    // What Node would have done without this listener: end the process with the reason.
    throw reason;
  });
}
