/** Directory entries for store-level tests, built from latin1 strings and compared as plain strings. */
import type { Entry } from '../../src/store/types.js';

export const B = (s: string) => Buffer.from(s, 'latin1');

export function active(name: string, location: string, acl = ''): Entry {
  return { name: B(name), state: 'active', location: B(location), acl: B(acl) };
}

export function reserved(name: string, location: string): Entry {
  return { name: B(name), state: 'reserved', location: B(location), acl: B('') };
}

/** An entry as plain strings, to compare with deepEqual. */
export function plain(e: Entry | null | undefined): [string, string, string, string] | null {
  return e ? [e.name.toString('latin1'), e.state, e.location.toString('latin1'), e.acl.toString('latin1')] : null;
}
