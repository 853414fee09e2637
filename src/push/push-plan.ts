/**
 * What a backend's startup push should do (the plan of `ctl_mboxlist -m`,
 * spec 7.3), except that nothing local is ever deleted: a mailbox the master
 * places on another server is reported for review instead.
 */
import { serverPart } from '../mupdate/location.js';
import { compareNames } from '../store/order.js';
import type { Entry } from '../store/types.js';
import type { PackedMailboxes } from './packed-mailboxes.js';

export interface LocalMailbox {
  name: Buffer;
  location: Buffer;
  acl: Buffer;
}

export interface PushPlan {
  /** Master entries at this backend that the backend does not have: DELETE. */
  removeFromMaster: Buffer[];
  /** Local mailboxes the master lists here but with another location, ACL or state: ACTIVATE. */
  reactivate: LocalMailbox[];
  /** Local mailboxes the master does not list here: FIND first. */
  lookUp: LocalMailbox[];
  inSync: number;
}

const key = (b: Buffer) => b.toString('latin1');

/** How two packed lists' names compare: entry i of `a` against entry j of `b`. */
type Order = (a: PackedMailboxes, i: number, b: PackedMailboxes, j: number) => number;
const byteOrder: Order = (a, i, b, j) => a.compareName(i, b, j);
const cyrusOrder: Order = (a, i, b, j) => compareNames(a.name(i), b.name(j), 'cyrus');

/**
 * The plan. Both lists usually come in one order (a master LISTs in its directory order, which
 * matches the backend's mailboxes.db): then one merge pass, without a map of either side.
 * Only the entries that need a command come out of the packed lists as objects.
 */
export function planPush(local: PackedMailboxes, listed: PackedMailboxes): PushPlan {
  for (const order of [byteOrder, cyrusOrder]) {
    if (ascending(local, order) && ascending(listed, order)) return planByMerge(local, listed, order);
  }
  return planByMaps(local.entries(), listed.entries());
}

/** Whether every name sorts strictly after the one before it (so no name repeats). */
function ascending(list: PackedMailboxes, order: Order): boolean {
  for (let i = 1; i < list.count; i++) if (order(list, i - 1, list, i) >= 0) return false;
  return true;
}

/** The plan of two lists sorted strictly by `order`: the same plan as planByMaps gives them. */
function planByMerge(local: PackedMailboxes, listed: PackedMailboxes, order: Order): PushPlan {
  const plan: PushPlan = { removeFromMaster: [], reactivate: [], lookUp: [], inSync: 0 };
  let i = 0;
  let j = 0;
  while (i < local.count && j < listed.count) {
    const c = order(local, i, listed, j);
    if (c < 0) {
      plan.lookUp.push(local.entry(i));
      i++;
    } else if (c > 0) {
      plan.removeFromMaster.push(listed.name(j));
      j++;
    } else {
      if (listed.state(j) === 'active' && local.sameLocationAndAcl(i, listed, j)) plan.inSync++;
      else plan.reactivate.push(local.entry(i));
      i++;
      j++;
    }
  }
  for (; i < local.count; i++) plan.lookUp.push(local.entry(i));
  for (; j < listed.count; j++) plan.removeFromMaster.push(listed.name(j));
  return plan;
}

function inSync(m: LocalMailbox, e: Entry): boolean {
  return e.state === 'active' && e.location.equals(m.location) && e.acl.equals(m.acl);
}

/** The plan of lists in any order (duplicates included: the last of a name counts). */
export function planByMaps(local: readonly LocalMailbox[], listed: readonly Entry[]): PushPlan {
  const localByName = new Map(local.map((m) => [key(m.name), m]));
  const listedByName = new Map(listed.map((e) => [key(e.name), e]));
  const plan: PushPlan = { removeFromMaster: [], reactivate: [], lookUp: [], inSync: 0 };
  for (const e of listed) if (!localByName.has(key(e.name))) plan.removeFromMaster.push(e.name);
  for (const m of local) {
    const e = listedByName.get(key(m.name));
    if (!e) plan.lookUp.push(m);
    else if (inSync(m, e)) plan.inSync++;
    else plan.reactivate.push(m);
  }
  return plan;
}

export type LookUpVerdict = 'activate' | 'review';

/** After FIND: activate when the master has nothing (or it is ours); review when another server holds it. */
export function judgeLookUp(backend: string, found: Entry | null): LookUpVerdict {
  return found && serverPart(found.location) !== backend ? 'review' : 'activate';
}
