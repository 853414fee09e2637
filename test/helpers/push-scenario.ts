/** Shared pieces of the push scenarios (push-tool.test.ts against mupdated, interop-push-conflicts.test.ts against Cyrus too). */
import type { MailboxSpec } from './cyrus-backend.js';
import { canonicalEntries, listDirectory } from './cyrus.js';
import { drainStream, wireSummary, type RecordingProxy } from './operator-tools.js';
import type { RawClient } from './raw-client.js';

/** What one push run of a scenario did. */
export interface PushStep {
  step: string;
  code: number | null;
  stdout: string;
  stderr: string;
  /** What the push sent (through a recording proxy). */
  wire: string[];
  /** The LIST of the pushed server afterwards, canonical. */
  list: string[];
  /** Changes an UPDATE stream got meanwhile. */
  streamed: string[];
}

/**
 * ACLs for a scenario's mailboxes owned by `owner`: the one at `bareAt` has
 * none, the one at `mixedAt` has the owner's and `mixedExtra`, `shared-*`
 * ones are readable by anyone, the others are the owner's alone.
 */
export function ownedMailboxes(
  names: string[],
  owner: string,
  bareAt: number,
  mixedAt: number,
  mixedExtra: Array<[string, string]>,
): MailboxSpec[] {
  const own: [string, string] = [owner, 'lrswipkxtecdan'];
  return names.map((name, i): MailboxSpec => {
    if (i === bareAt) return { name, acl: [] };
    if (i === mixedAt) return { name, acl: [own, ...mixedExtra] };
    if (name.startsWith('shared')) return { name, acl: [['anyone', 'lrs']] };
    return { name, acl: [own] };
  });
}

/** `mupdated push` arguments: log in to the master on loopback `port` as `user`, then `rest` (--server, flags, the dump). */
export function pushArgs(port: number, user: string, passwordFile: string, ...rest: string[]): string[] {
  return ['push', '--master', `127.0.0.1:${port}`, '--user', user, '--password-file', passwordFile, ...rest];
}

/**
 * One step of a push scenario against the master on `port`: `run` (a push
 * through `proxy`) while `stream` (an UPDATE answered up to its OK, tag U1)
 * is open; what it printed, sent and streamed, and the LIST of `server` after.
 */
export async function recordStep(
  step: string,
  port: number,
  server: string,
  proxy: RecordingProxy,
  stream: RawClient,
  run: () => Promise<{ code: number | null; stdout: string; stderr: string }>,
): Promise<PushStep> {
  proxy.clear();
  const r = await run();
  const streamed = (await drainStream(stream, 'U1', 'N1')).map((e) =>
    'deleted' in e ? `DELETE ${e.deleted}` : `${e.state} ${e.name} ${e.location}`,
  );
  stream.close();
  const wire = wireSummary(proxy.commands());
  const list = canonicalEntries(await listDirectory(port, { prefix: `${server}!` }));
  return { step, code: r.code, stdout: r.stdout, stderr: r.stderr, wire, list, streamed };
}
