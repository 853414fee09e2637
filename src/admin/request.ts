/**
 * Checks an admin-socket request before anything acts on it: the socket is
 * local, but a request is still input (a typo'd `keep` must not be saved as a
 * resolution).
 */
import type { ConflictStatus } from '../store/types.js';
import type { AdminRequest } from './operations.js';

const STATUSES: readonly ConflictStatus[] = ['open', 'resolved', 'dismissed'];
const KEEPS = ['current', 'claimant'] as const;
/** Who decided, as recorded in the audit log: `user@cli`, printable, bounded. */
const BY = /^[^\x00-\x1f\x7f]{1,256}$/u;

/** Refused admin request; the message says which field is wrong. */
export class AdminRequestInvalid extends Error {}

function field(req: Record<string, unknown>, name: string): unknown {
  return Object.prototype.hasOwnProperty.call(req, name) ? req[name] : undefined;
}

function conflictId(req: Record<string, unknown>): number {
  const id = field(req, 'id');
  if (typeof id !== 'number' || !Number.isSafeInteger(id) || id < 1) throw new AdminRequestInvalid('id: expected a conflict number');
  return id;
}

function decidedBy(req: Record<string, unknown>): string {
  const by = field(req, 'by');
  if (typeof by !== 'string' || !BY.test(by)) throw new AdminRequestInvalid('by: expected a name (1 to 256 printable characters)');
  return by;
}

/** The request as its operation needs it, or AdminRequestInvalid. Unknown fields are ignored. */
export function parseAdminRequest(value: unknown): AdminRequest {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new AdminRequestInvalid('expected a JSON object');
  const req = value as Record<string, unknown>;
  const op = field(req, 'op');
  switch (op) {
    case 'list': {
      const status = field(req, 'status');
      if (status !== undefined && !STATUSES.includes(status as ConflictStatus)) {
        throw new AdminRequestInvalid(`status: expected ${STATUSES.join(', ')} or none`);
      }
      return { op, status: status as ConflictStatus | undefined };
    }
    case 'show':
      return { op, id: conflictId(req) };
    case 'resolve': {
      const keep = field(req, 'keep');
      if (!KEEPS.includes(keep as (typeof KEEPS)[number])) throw new AdminRequestInvalid('keep: expected current or claimant');
      return { op, id: conflictId(req), keep: keep as (typeof KEEPS)[number], by: decidedBy(req) };
    }
    case 'dismiss':
      return { op, id: conflictId(req), by: decidedBy(req) };
    default:
      throw new AdminRequestInvalid('op: expected list, show, resolve or dismiss');
  }
}
