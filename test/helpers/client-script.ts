/**
 * One `mupdated client` script and the output it must render, shared by the
 * test against `mupdated master` and the one against a real Cyrus master (the
 * same commands must render the same results on both). Names and ACLs carry
 * spaces, quotes, backslashes, 8-bit bytes and TABs; every entry lives at the
 * location server `scriptsrv`, so `list scriptsrv!` sees only these.
 *
 * It avoids what crashes Cyrus 3.6 (DELETE or DEACTIVATE of a missing name).
 */

export const SCRIPT: string[] = [
  '# entries with tricky bytes',
  'activate user.alice scriptsrv!default "alice lrswipkxtecdan anyone p"',
  'activate "user.alice.Sent Items" scriptsrv!default alice lrswipkxtecdan',
  'activate user.\\xc3\\xa4\\xff scriptsrv!ssd "group:staff lrs -bob w"',
  'activate "user.q\\"uote\\\\back" scriptsrv!default "we\\"ird\\\\id\\tlr\\tbob smith\\tlrs\\t"',
  'activate user.t\\tab scriptsrv!default ""',
  'reserve user.bob scriptsrv!default',
  'reserve user.bob scriptsrv!other',
  'find user.alice',
  'find "user.alice.Sent Items"',
  'find user.alice.Sent\\ Items',
  'find USER.ALICE',
  'find user.\\xc3\\xa4\\xff',
  'find "user.q\\"uote\\\\back"',
  'find user.t\\tab',
  'list scriptsrv!',
  'stats scriptsrv!',
  'deactivate user.alice scriptsrv!default',
  'find user.alice',
  'delete user.bob',
  'list scriptsrv!d',
  'noop',
  'raw X1 NOOP',
  'raw X2 FIND "user.alice.Sent Items"',
];

/** What the script prints (NO_COLOR, not a terminal). */
export const EXPECTED: string[] = [
  'OK done',
  'OK done',
  'OK done',
  'OK done',
  'OK done',
  'OK done',
  'NO mailbox already exists',
  'MAILBOX  user.alice  scriptsrv!default  alice → lrswipkxtecdan, anyone → p',
  'OK Search completed',
  'MAILBOX  "user.alice.Sent Items"  scriptsrv!default  alice → lrswipkxtecdan',
  'OK Search completed',
  'MAILBOX  "user.alice.Sent Items"  scriptsrv!default  alice → lrswipkxtecdan',
  'OK Search completed',
  'OK Search completed',
  'MAILBOX  user.\\xc3\\xa4\\xff  scriptsrv!ssd  group:staff → lrs, -bob → w',
  'OK Search completed',
  'MAILBOX  "user.q\\"uote\\\\back"  scriptsrv!default  "we\\"ird\\\\id\\tlr\\tbob smith\\tlrs\\t"',
  'OK Search completed',
  'MAILBOX  user.t\\tab  scriptsrv!default  (no ACL)',
  'OK Search completed',
  'MAILBOX  user.alice               scriptsrv!default  alice → lrswipkxtecdan, anyone → p',
  'MAILBOX  "user.alice.Sent Items"  scriptsrv!default  alice → lrswipkxtecdan',
  'RESERVE  user.bob                 scriptsrv!default',
  'MAILBOX  "user.q\\"uote\\\\back"     scriptsrv!default  "we\\"ird\\\\id\\tlr\\tbob smith\\tlrs\\t"',
  'MAILBOX  user.t\\tab               scriptsrv!default  (no ACL)',
  'MAILBOX  user.\\xc3\\xa4\\xff        scriptsrv!ssd      group:staff → lrs, -bob → w',
  'OK list complete',
  'SERVER     PARTITION  ACTIVE  RESERVED  TOTAL',
  'scriptsrv  default         4         1      5',
  'scriptsrv  ssd             1         0      1',
  'total                      5         1      6',
  'OK list complete',
  'OK done',
  'RESERVE  user.alice  scriptsrv!default',
  'OK Search completed',
  'OK done',
  'RESERVE  user.alice               scriptsrv!default',
  'MAILBOX  "user.alice.Sent Items"  scriptsrv!default  alice → lrswipkxtecdan',
  'MAILBOX  "user.q\\"uote\\\\back"     scriptsrv!default  "we\\"ird\\\\id\\tlr\\tbob smith\\tlrs\\t"',
  'MAILBOX  user.t\\tab               scriptsrv!default  (no ACL)',
  'OK list complete',
  'OK Noop done',
  'OK Noop done',
  'MAILBOX  "user.alice.Sent Items"  scriptsrv!default  alice → lrswipkxtecdan',
  'OK Search completed',
];

/** The exact bytes the script stores: name -> [location, ACL] (after the script's changes). */
export const STORED: Array<[Buffer, Buffer, Buffer | null]> = [
  [Buffer.from('user.alice'), Buffer.from('scriptsrv!default'), null],
  [Buffer.from('user.alice.Sent Items'), Buffer.from('scriptsrv!default'), Buffer.from('alice\tlrswipkxtecdan\t')],
  [Buffer.from([...Buffer.from('user.'), 0xc3, 0xa4, 0xff]), Buffer.from('scriptsrv!ssd'), Buffer.from('group:staff\tlrs\t-bob\tw\t')],
  [Buffer.from('user.q"uote\\back'), Buffer.from('scriptsrv!default'), Buffer.from('we"ird\\id\tlr\tbob smith\tlrs\t')],
  [Buffer.from('user.t\tab'), Buffer.from('scriptsrv!default'), Buffer.alloc(0)],
];
