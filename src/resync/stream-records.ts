/** The slave's reading of a master's data lines (MAILBOX, RESERVE, DELETE) and the meta keys it keeps. */
import { changeDigest, encodeLogRecord } from '../store/codec.js';
import type { BatchItem } from '../store/types.js';
import type { Response } from '../mupdate/client/responses.js';
import { entryFromData } from './reconcile.js';

export const META_SYNCED = 'slave.synced';
export const META_DBID = 'slave.upstreamDbid';
export const META_SEQ = 'slave.upstreamSeq';
export const META_DIGEST = 'slave.upstreamDigest';

/** Digest of the change a seq-tagged data line carries, as the master computes it from its log. */
export function lineDigest(r: Response): string {
  const { name, entry } = itemOf(r);
  return changeDigest(encodeLogRecord(name, entry));
}

export function isData(r: Response): boolean {
  return r.word === 'MAILBOX' || r.word === 'RESERVE' || r.word === 'DELETE';
}

/** The trailing sequence-number argument of an XRESUME data line. */
export function seqOf(r: Response): number | null {
  const n = r.word === 'MAILBOX' ? 3 : r.word === 'RESERVE' ? 2 : 1;
  const raw = r.args[n];
  return raw === undefined ? null : Number(raw.toString('latin1'));
}

export function itemOf(r: Response): BatchItem {
  if (r.word === 'DELETE') return { name: r.args[0], entry: null };
  return { name: r.args[0], entry: entryFromData(r.word, r.args)! };
}
