/** `mupdated conflicts list|show|resolve|dismiss`: the operator queue. */
import { connect } from 'node:net';
import { userInfo } from 'node:os';
import { conflictDetail, conflictTable } from '../admin/conflict-view.js';
import { handleAdminRequest, type AdminRequest, type AdminResponse } from '../admin/operations.js';
import { adminSocketPath } from '../admin/socket-server.js';
import { LmdbDirectoryStore } from '../store/lmdb-store.js';
import type { ConflictStatus } from '../store/types.js';
import { isCluster, openClusterDirectory, toolConfig, type ToolFlags } from './cluster-tool.js';

const USAGE =
  'usage: mupdated conflicts list [--all|--status open|resolved|dismissed] [--json] | show ID [--json] | ' +
  'resolve ID --keep current|claimant | dismiss ID   [--data DIR | --etcd URL[,URL...]]';

/** Asks the running server; null when none is listening on the data folder's admin socket. */
function askServer(dataDir: string, req: AdminRequest): Promise<AdminResponse | null> {
  return new Promise((resolve, reject) => {
    const sock = connect(adminSocketPath(dataDir));
    let buf = '';
    sock.setEncoding('utf8');
    sock.on('connect', () => sock.write(`${JSON.stringify(req)}\n`));
    sock.on('data', (d: string) => {
      buf += d;
    });
    sock.on('end', () => {
      try {
        resolve(JSON.parse(buf) as AdminResponse);
      } catch {
        reject(new Error('the server sent an unreadable answer on its admin socket'));
      }
    });
    sock.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT' || err.code === 'ECONNREFUSED') resolve(null);
      else reject(err);
    });
  });
}

/**
 * With --etcd: straight on the cluster (every node's view sees the change);
 * the audit line goes to --data's audit.log when one is given.
 */
async function runOnCluster(flags: ConflictFlags, req: AdminRequest): Promise<AdminResponse> {
  const config = toolConfig(flags);
  const dir = await openClusterDirectory(config, { mustExist: true });
  try {
    return await handleAdminRequest(req, dir.store, flags.data ?? dir.viewDir);
  } finally {
    await dir.close();
  }
}

async function run(dataDir: string, req: AdminRequest): Promise<AdminResponse> {
  const viaServer = await askServer(dataDir, req);
  if (viaServer) return viaServer;
  // No server running: work on the data folder directly.
  const store = LmdbDirectoryStore.open(dataDir, { mustExist: true });
  try {
    return await handleAdminRequest(req, store, dataDir);
  } finally {
    await store.close();
  }
}

function parseId(raw: string | undefined): number {
  // Digits only: Number() would also read '0x10' or '1e1' as some other conflict's id.
  const digits = raw?.replace(/^#/, '') ?? '';
  const id = /^[0-9]{1,15}$/.test(digits) ? Number(digits) : NaN;
  if (!Number.isSafeInteger(id) || id <= 0) throw new Error(`${USAGE}\n(expected a conflict id, got '${raw ?? ''}')`);
  return id;
}

export interface ConflictFlags extends ToolFlags {
  json?: boolean | undefined;
  keep?: string | undefined;
  all?: boolean | undefined;
  status?: string | undefined;
}

export async function runConflicts(args: string[], flags: ConflictFlags): Promise<number> {
  const [action, idArg] = args;
  const config = toolConfig(flags);
  const by = `${userInfo().username}@cli`;
  let req: AdminRequest;
  switch (action) {
    case 'list': {
      const status = flags.all ? undefined : ((flags.status ?? 'open') as ConflictStatus);
      if (status && !['open', 'resolved', 'dismissed'].includes(status)) throw new Error(USAGE);
      req = { op: 'list', status };
      break;
    }
    case 'show':
      req = { op: 'show', id: parseId(idArg) };
      break;
    case 'resolve':
      if (flags.keep !== 'current' && flags.keep !== 'claimant') throw new Error(`${USAGE}\n(--keep current or --keep claimant)`);
      req = { op: 'resolve', id: parseId(idArg), keep: flags.keep, by };
      break;
    case 'dismiss':
      req = { op: 'dismiss', id: parseId(idArg), by };
      break;
    default:
      throw new Error(USAGE);
  }
  const res = isCluster(config) ? await runOnCluster(flags, req) : await run(config.dataDir, req);
  if (!res.ok) {
    process.stderr.write(`mupdated conflicts: ${res.error}\n`);
    return 1;
  }
  if (flags.json) {
    if (req.op === 'list') process.stdout.write(`${JSON.stringify(res.conflicts)}\n`);
    else process.stdout.write(`${JSON.stringify(res.conflicts[0])}\n`);
  } else if (req.op === 'list') {
    process.stdout.write(conflictTable(res.conflicts));
  } else {
    process.stdout.write(conflictDetail(res.conflicts[0]));
  }
  return 0;
}
