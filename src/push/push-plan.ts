/**
 * What a backend's startup push should do (the plan of `ctl_mboxlist -m`,
 * spec 7.3), except that nothing local is ever deleted: a mailbox the master
 * places on another server is reported for review instead.
 */
import { serverPart } from '../mupdate/location.js';
import type { Entry } from '../store/types.js';

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

export function planPush(local: readonly LocalMailbox[], listed: readonly Entry[]): PushPlan {
  const localByName = new Map(local.map((m) => [key(m.name), m]));
  const listedByName = new Map(listed.map((e) => [key(e.name), e]));
  const plan: PushPlan = { removeFromMaster: [], reactivate: [], lookUp: [], inSync: 0 };
  for (const e of listed) if (!localByName.has(key(e.name))) plan.removeFromMaster.push(e.name);
  for (const m of local) {
    const e = listedByName.get(key(m.name));
    if (!e) plan.lookUp.push(m);
    else if (e.state === 'active' && e.location.equals(m.location) && e.acl.equals(m.acl)) plan.inSync++;
    else plan.reactivate.push(m);
  }
  return plan;
}

export type LookUpVerdict = 'activate' | 'review';

/** After FIND: activate when the master has nothing (or it is ours); review when another server holds it. */
export function judgeLookUp(backend: string, found: Entry | null): LookUpVerdict {
  return found && serverPart(found.location) !== backend ? 'review' : 'activate';
}
