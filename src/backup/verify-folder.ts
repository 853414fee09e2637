/**
 * `mupdated verify`: checks a data folder (a live one, or a backup) and says
 * what it holds and what is wrong with it. The directory is read in one read
 * transaction, so a folder a server is writing is checked as of one commit.
 */
import { storageKey } from '../store/order.js';
import { decodeRecord } from '../store/codec.js';
import { FORMAT } from '../store/lmdb-store.js';
import type { DirectoryOrder, Entry } from '../store/types.js';
import { CLUSTER_VIEW_KEY, openDirectoryDatabases } from './folder-databases.js';
import { Problems } from './problems.js';
import { checkDirectory, type EntryCounts } from './verify-directory.js';
import { checkConflicts, checkLog, checkLogAgainstEntries, type ConflictCounts, type LogCounts } from './verify-log.js';
import { checkUsers, type UserCounts } from './verify-users.js';

export interface FolderReport {
  dir: string;
  format: number | null;
  order: DirectoryOrder | null;
  dbid: string | null;
  /** The directory's last change (meta `seq`). */
  seq: number;
  clusterView: boolean;
  entries: EntryCounts;
  log: LogCounts;
  conflicts: ConflictCounts;
  /** null: the folder has no users.mdb. */
  users: UserCounts | null;
  notes: string[];
  /** What is wrong, as lines (at most 50, then how many more). */
  problems: string[];
  problemCount: number;
}

const ORDERS = new Set<unknown>(['cyrus', 'bytes']);

/** The meta keys verify relies on, each checked; null where unusable (the problem is recorded). */
function readMeta(
  get: (key: string) => unknown,
  problems: Problems,
): {
  format: number | null;
  order: DirectoryOrder | null;
  dbid: string | null;
  seq: number;
  clusterView: boolean;
  logFrom: unknown;
} {
  const order = get('order');
  const formatRaw = get('format') ?? (order === undefined ? undefined : 1);
  const format = typeof formatRaw === 'number' && Number.isInteger(formatRaw) && formatRaw >= 1 && formatRaw <= FORMAT ? formatRaw : null;
  if (format === null) {
    problems.add(`the directory's storage format is ${JSON.stringify(formatRaw)}; this mupdated reads formats 1 to ${FORMAT}`);
  }
  if (!ORDERS.has(order)) problems.add(`the directory's order is ${JSON.stringify(order)}, not 'cyrus' or 'bytes'`);
  const dbid = get('dbid');
  if (typeof dbid !== 'string' || !dbid) problems.add('the directory has no id (meta dbid)');
  const seqRaw = get('seq') ?? 0;
  const seq = typeof seqRaw === 'number' && Number.isSafeInteger(seqRaw) && seqRaw >= 0 ? seqRaw : 0;
  if (seq !== seqRaw) problems.add(`the directory's last change number is ${JSON.stringify(seqRaw)}, not a count`);
  return {
    format,
    order: ORDERS.has(order) ? (order as DirectoryOrder) : null,
    dbid: typeof dbid === 'string' ? dbid : null,
    seq,
    clusterView: get(CLUSTER_VIEW_KEY) !== undefined,
    logFrom: get('logFrom'),
  };
}

/** Checks the folder `dir`; the report's `problems` is empty when it is sound. */
export async function verifyFolder(dir: string): Promise<FolderReport> {
  const problems = new Problems();
  const notes: string[] = [];
  const dbs = openDirectoryDatabases(dir);
  const txn = dbs.root.useReadTransaction();
  let report: Omit<FolderReport, 'users' | 'problems' | 'problemCount' | 'notes'>;
  try {
    const meta = readMeta((key) => dbs.meta.get(key, { transaction: txn }), problems);
    const order = meta.order ?? 'cyrus';
    let entries: EntryCounts = { entries: 0, active: 0, reserved: 0, locations: 0, indexPairs: 0 };
    let current: (name: Buffer) => Entry | undefined = () => undefined;
    if (meta.format === 1) {
      notes.push(`storage format 1: converted to format ${FORMAT} when a server opens the folder; the index checks are skipped`);
      const old = dbs.formatOneEntries;
      for (const _ of old?.getKeys({ transaction: txn }) ?? []) entries.entries++;
      current = (name) => {
        const raw = old?.get(storageKey(name, order), { transaction: txn });
        return raw ? (decodeRecord(Buffer.from(raw)).entry ?? undefined) : undefined;
      };
    } else if (meta.format !== null && meta.order !== null) {
      const checked = checkDirectory(dbs, txn, order, problems);
      entries = checked.counts;
      current = (name) => checked.lookup.byName(name);
    }
    const gapsAllowed = meta.clusterView || meta.logFrom !== undefined;
    if (meta.clusterView) notes.push("a cluster node's view of etcd: its change log takes the cluster's numbers, with gaps");
    const log = checkLog(dbs, txn, { seq: meta.seq, gapsAllowed }, problems);
    if (meta.order !== null) checkLogAgainstEntries(dbs, txn, current, problems);
    const conflicts = checkConflicts(dbs, txn, problems);
    report = {
      dir,
      format: meta.format,
      order: meta.order,
      dbid: meta.dbid,
      seq: meta.seq,
      clusterView: meta.clusterView,
      entries,
      log,
      conflicts,
    };
  } finally {
    txn.done();
    await dbs.root.close();
  }
  const users = await checkUsers(dir, problems);
  return { ...report, users, notes, problems: problems.lines(), problemCount: problems.count };
}

/** The report as lines for a person: what the folder holds, then notes and problems. */
export function describeReport(r: FolderReport): string[] {
  const e = r.entries;
  const lines = [
    `${r.dir}: directory ${r.dbid ?? '(no id)'}, storage format ${r.format ?? '?'}, order ${r.order ?? '?'}, at change #${r.seq}`,
    `  entries: ${e.entries} (${e.active} active, ${e.reserved} reserved); locations: ${e.locations}; by-server index: ${e.indexPairs} pairs`,
    `  change log: ${r.log.records} records` + (r.log.first === null ? '' : ` (#${r.log.first} to #${r.log.last})`),
    `  conflicts: ${r.conflicts.open} open, ${r.conflicts.resolved} resolved, ${r.conflicts.dismissed} dismissed`,
    `  users: ${r.users ? `${r.users.users} (${r.users.admins} admin)` : "none (no users.mdb: create one with 'mupdated user add')"}`,
  ];
  for (const n of r.notes) lines.push(`  note: ${n}`);
  for (const p of r.problems) lines.push(`  PROBLEM: ${p}`);
  return lines;
}
