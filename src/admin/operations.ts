/**
 * Operator requests on the conflict queue, the same whether they arrive
 * through the running server's admin socket or run on the store directly.
 */
import { appendFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from '../log.js';
import { ConflictRefusal, type ConflictStatus, type DirectoryStore } from '../store/types.js';
import { conflictJson, type ConflictJson } from './conflict-view.js';

export type AdminRequest =
  | { op: 'list'; status?: ConflictStatus | undefined }
  | { op: 'show'; id: number }
  | { op: 'resolve'; id: number; keep: 'current' | 'claimant'; by: string }
  | { op: 'dismiss'; id: number; by: string };

export type AdminResponse = { ok: true; conflicts: ConflictJson[] } | { ok: false; error: string };

export async function handleAdminRequest(req: AdminRequest, store: DirectoryStore, dataDir: string, log?: Logger): Promise<AdminResponse> {
  try {
    switch (req.op) {
      case 'list':
        return { ok: true, conflicts: store.listConflicts(req.status).map(conflictJson) };
      case 'show': {
        const r = store.getConflict(req.id);
        return r ? { ok: true, conflicts: [conflictJson(r)] } : { ok: false, error: `no conflict #${req.id}` };
      }
      case 'resolve':
      case 'dismiss': {
        const keep = req.op === 'dismiss' ? 'none' : req.keep;
        const closed = conflictJson(await store.closeConflict(req.id, keep, req.by));
        const audit = {
          at: closed.resolution!.at,
          by: req.by,
          op: req.op,
          keep,
          conflict: closed.id,
          mailbox: closed.name,
          heldBy: closed.current.location,
          claimedBy: closed.claimed.location,
          claimant: { user: closed.user, authcid: closed.authcid },
        };
        log?.warn({ audit }, `conflict #${closed.id} ${req.op === 'dismiss' ? 'dismissed' : `resolved: kept ${keep}`}`);
        await appendFile(join(dataDir, 'audit.log'), `${JSON.stringify(audit)}\n`, { mode: 0o600 });
        return { ok: true, conflicts: [closed] };
      }
    }
  } catch (err) {
    if (err instanceof ConflictRefusal) return { ok: false, error: err.message };
    throw err;
  }
}
