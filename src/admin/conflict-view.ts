/** Conflict records as operators see them: text for people, JSON for scripts. */
import { staleCopy } from '../store/decisions.js';
import type { ConflictRecord, Entry } from '../store/types.js';

/** Bytes as readable text: printable ASCII as is, TAB as \t, anything else as \xNN. */
export function showBytes(b: Buffer): string {
  let out = '';
  for (const c of b) {
    if (c === 0x09) out += '\\t';
    else if (c === 0x5c) out += '\\\\';
    else if (c >= 0x20 && c < 0x7f) out += String.fromCharCode(c);
    else out += `\\x${c.toString(16).padStart(2, '0')}`;
  }
  return out;
}

export interface ConflictJson {
  id: number;
  status: string;
  name: string;
  current: { state: string; location: string; acl: string };
  claimed: { state: string; location: string; acl: string };
  command: string;
  user: string;
  authcid: string;
  peer: string;
  firstSeen: string;
  lastSeen: string;
  count: number;
  resolution?: { keep: string; at: string; by: string } | undefined;
  /** A decision's left-out copy: the location whose backend still holds a copy the directory does not point to. */
  staleCopy?: string | undefined;
  /** A decision's count of the same claim made again and refused, and when the last came. */
  refused?: number | undefined;
  lastRefused?: string | undefined;
}

function entryJson(e: Pick<Entry, 'state' | 'location' | 'acl'>) {
  return { state: e.state, location: showBytes(e.location), acl: showBytes(e.acl) };
}

export function conflictJson(r: ConflictRecord): ConflictJson {
  return {
    id: r.id,
    status: r.status,
    name: showBytes(r.name),
    current: entryJson(r.current),
    claimed: entryJson(r.claimed),
    command: r.command,
    user: r.user,
    authcid: r.authcid ?? r.user,
    peer: r.peer,
    firstSeen: r.firstSeen,
    lastSeen: r.lastSeen,
    count: r.count,
    resolution: r.resolution,
    ...decisionJson(r),
  };
}

function decisionJson(r: ConflictRecord): Pick<ConflictJson, 'staleCopy' | 'refused' | 'lastRefused'> {
  const stale = staleCopy(r);
  if (!stale) return {};
  return { staleCopy: showBytes(stale), refused: r.refused ?? 0, ...(r.lastRefused ? { lastRefused: r.lastRefused } : {}) };
}

/** The server part of a location as shown (the text before the first `!`). */
function serverShown(location: string): string {
  const bang = location.indexOf('!');
  return bang < 0 ? location : location.slice(0, bang);
}

function pad(s: string, n: number): string {
  return s.length >= n ? s : s + ' '.repeat(n - s.length);
}

/** A fixed-width table, one conflict per row. */
export function conflictTable(rows: ConflictJson[]): string {
  if (rows.length === 0) return 'no conflicts\n';
  const header = ['ID', 'STATUS', 'MAILBOX', 'HELD BY', 'CLAIMED BY', 'USER', 'SEEN', 'LAST SEEN'];
  const data = rows.map((r) => [String(r.id), r.status, r.name, r.current.location, r.claimed.location, r.user, `${r.count}x`, r.lastSeen]);
  const widths = header.map((h, i) => Math.max(h.length, ...data.map((d) => d[i].length)));
  return (
    [header, ...data]
      .map((cols) =>
        cols
          .map((c, i) => pad(c, widths[i]))
          .join('  ')
          .trimEnd(),
      )
      .join('\n') + '\n'
  );
}

export function conflictDetail(r: ConflictJson): string {
  const lines = [
    `conflict #${r.id} (${r.status})`,
    `  mailbox:     ${r.name}`,
    `  held by:     ${r.current.location} (${r.current.state}), acl ${r.current.acl || '(empty)'}`,
    `  claimed by:  ${r.claimed.location} (${r.command}), acl ${r.claimed.acl || '(empty)'}`,
    `  claimant:    ${r.user}${r.authcid !== r.user ? ` (authenticated as ${r.authcid})` : ''} from ${r.peer}`,
    `  seen:        ${r.count} time(s), first ${r.firstSeen}, last ${r.lastSeen}`,
  ];
  if (r.resolution) lines.push(`  resolution:  keep ${r.resolution.keep}, by ${r.resolution.by} at ${r.resolution.at}`);
  if (r.staleCopy !== undefined) {
    lines.push(
      `  stale copy:  ${serverShown(r.staleCopy)} still holds a copy (${r.staleCopy}) the directory does not point to; ` +
        'remove it there once nothing in it is needed',
    );
    lines.push(`  refused:     ${r.refused ?? 0} repeated claim(s) since the decision` + (r.lastRefused ? `, last ${r.lastRefused}` : ''));
  } else lines.push(`  resolve with: mupdated conflicts resolve ${r.id} --keep current|claimant  (or dismiss ${r.id})`);
  return lines.join('\n') + '\n';
}
