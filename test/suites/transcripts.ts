/**
 * Replays the master-session transcripts of the real Cyrus 3.6 master
 * (test/fixtures/transcripts/, copied from the spec) against a fresh mupdated
 * master each, and compares every server line byte for byte.
 *
 * The only differences applied are the deliberate ones of spec 9.1 (written
 * below as patches of the transcript text, each with its reason), plus the
 * banner rules of spec 2.1/3.13: free implementation and version strings on
 * the `* OK MUPDATE` line, and no `* COMPRESS "DEFLATE"` line because
 * mupdated does not implement COMPRESS.
 */
import test from 'ava';
import { cpSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { addUser, PROJECT_ROOT, removeDir, tempDir, type RunningMupdated } from '../helpers/server.js';
import {
  adaptBannersForMupdated,
  applyPatches,
  parseTranscript,
  QUOTED,
  replayTranscript,
  seedDirectory,
  splitLines,
  TranscriptMismatch,
  type ParseOptions,
  type Patch,
  type StateBlock,
  type Transcript,
} from '../helpers/transcript.js';
import type { ServerFactory } from '../helpers/server-factory.js';

const FIXTURES = join(PROJECT_ROOT, 'test/fixtures/transcripts');

// ---------------------------------------------------------------------------
// Transcript snippets used by the patches

/** A banner as Cyrus sends it; adaptBannersForMupdated turns it into mupdated's. */
const BANNER = [
  'S: * AUTH "PLAIN"',
  'S: * COMPRESS "DEFLATE"',
  'S: * PARTIAL-UPDATE',
  'S: * OK MUPDATE "mupdate-master" "Cyrus IMAP" "3.6.1-Debian-3.6.1-4+deb12u5" "(master)"',
];
const LOGIN = ['C: A01 AUTHENTICATE "PLAIN" {28+}', 'C: AG11cGRhdGVhZG1pbgBzZWNyZXQ=', 'S: A01 OK "Authenticated"'];
const CLOSED = ['# server closed the connection', '# client closes the connection'];
/** `* BYE` with one quoted string of free wording (spec 1.7, 8.4). */
const BYE = `S~ ^\\* BYE ${QUOTED}$`;

function logout(conn: string, tag: string): string[] {
  return [`# ---- connection ${conn} ----`, `C: ${tag} LOGOUT`, `S: ${tag} OK "bye-bye"`, ...CLOSED];
}

function noopAndLogout(conn: string, tag: string): string[] {
  return [
    `# ---- connection ${conn} ----`,
    `C: ${tag} NOOP`,
    `S: ${tag} OK "Noop done"`,
    `C: Q${tag} LOGOUT`,
    `S: Q${tag} OK "bye-bye"`,
    ...CLOSED,
  ];
}

/**
 * Proves that the streaming connection `conn` (UPDATE tag `tag`) is still
 * streaming: a new connection W activates `name`, and a NOOP on `conn` brings
 * that change and then its OK; a FIND there is still "not legal when streaming".
 */
function streamWitness(conn: string, tag: string, name: string): string[] {
  return [
    '# ---- connection W ----',
    ...BANNER,
    ...LOGIN,
    `C: W01 ACTIVATE "${name}" "backend1!default" ""`,
    'S: W01 OK "done"',
    ...logout('W', 'W02').slice(1),
    `# ---- connection ${conn} ----`,
    'C: V01 NOOP',
    `S: ${tag} MAILBOX {${name.length}+}`,
    `S: ${name} {16+}`,
    'S: backend1!default {0+}',
    'S: ',
    'S: V01 OK "Noop done"',
    'C: V02 FIND "user.alice"',
    'S: V02 BAD "not legal when streaming"',
    'C: V03 LOGOUT',
    'S: V03 OK "bye-bye"',
    ...CLOSED,
  ];
}

// ---------------------------------------------------------------------------
// One entry per transcript: checklist IDs, the 9.1 patches, replay options

interface Case {
  file: string;
  ids: string;
  title: string;
  patches?: Patch[];
  parse?: ParseOptions;
  stateBlocks?: StateBlock[];
  /** Extra config-file settings for this transcript's server. */
  config?: Record<string, string | number | boolean>;
}

/** Cyrus answers a wrong password with NO "undefined error!"; mupdated says "authentication failure" (9.1, 3.2). */
const credentialFailure = (tag: string): Patch => ({
  why: '9.1: credential failures get NO "authentication failure" (3.2)',
  find: [`S: ${tag} NO "undefined error!"`],
  replace: [`S: ${tag} NO "authentication failure"`],
});

/** Other SASL failures: NO with one quoted string, in mupdated's own wording (9.1). */
const otherSaslFailure = (tag: string): Patch => ({
  why: '9.1: non-credential SASL failures: NO with one quoted string of our wording',
  find: [`S: ${tag} NO "undefined error!"`],
  replace: [`S~ ^${tag} NO ${QUOTED}$`],
});

const CASES: Case[] = [
  { file: '01-greeting-and-capabilities', ids: 'C1 C15', title: 'banner and LOGOUT before login' },
  { file: '02-auth-plain-literal-ir', ids: 'C16 C59', title: 'PLAIN with a {n+} initial response, authzid = authcid' },
  { file: '03-auth-plain-quoted-ir', ids: 'C16 C20 C59', title: 'PLAIN with a quoted initial response, second AUTHENTICATE' },
  { file: '04-auth-plain-no-initial-response', ids: 'C17', title: 'PLAIN without initial response: empty challenge line' },
  { file: '05-auth-plain-sync-literal', ids: 'C6 C16', title: 'PLAIN with a {n} literal and + go ahead' },
  {
    file: '06-auth-plain-failures',
    ids: 'C18',
    title: 'wrong password and unknown user, then success',
    patches: [credentialFailure('A01'), credentialFailure('A02')],
  },
  {
    file: '07-auth-non-admin',
    ids: 'C58',
    title: 'a non-admin cannot log in, later commands need a login',
    patches: [credentialFailure('A01')],
  },
  {
    file: '08-auth-cancel-and-errors',
    ids: 'C19 C21 C8',
    title: 'cancel, unknown mechanism, bad base64, atom mechanism',
    patches: [
      {
        why: '9.1: the cancel text is quoted',
        find: ['S: A01 NO Client canceled authentication'],
        replace: ['S: A01 NO "Client canceled authentication"'],
      },
      otherSaslFailure('A02'),
      otherSaslFailure('A03'),
      otherSaslFailure('A06'),
    ],
  },
  {
    file: '09-auth-authzid',
    ids: 'C59 C18',
    title: 'an admin may take another authzid, a non-admin may not',
    patches: [credentialFailure('A01')],
  },
  { file: '10-activate-reserve-delete-find', ids: 'C14 C24 C25 C26 C29 C32 C36', title: 'ACTIVATE, RESERVE, FIND, DELETE' },
  { file: '11-deactivate', ids: 'C31', title: 'DEACTIVATE of an active entry, at its own and at another location' },
  { file: '12-list', ids: 'C33 C34 C35', title: 'LIST and location prefixes' },
  {
    file: '13-update-full-then-stream',
    ids: 'C38 C39 C41 C42 C20',
    title: 'UPDATE dump, streamed changes, commands while streaming',
    // 9.1: mupdated may push earlier than Cyrus' 5 s batch; compare the state the stream leads to (5.3).
    stateBlocks: [{ conn: 'A', tag: 'U01', afterNote: '(client waits 6.5s, reading)', timeoutMs: 10_000 }],
  },
  { file: '14-update-noop-flush', ids: 'C40', title: 'NOOP on a stream delivers pending changes before its OK' },
  {
    file: '15-partial-update',
    ids: 'C43',
    title: 'UPDATE with host names (conflict_policy cyrus)',
    // B03/B04 move active mailboxes between servers with a bare ACTIVATE, which
    // the default `queue` policy refuses (5.2, C25); the transcript shows
    // Cyrus's last writer wins, mupdated's `cyrus` policy.
    config: { conflict_policy: 'cyrus' },
  },
  { file: '17-noop-logout', ids: 'C15', title: 'NOOP needs a login, LOGOUT closes' },
  {
    file: '20-errors-before-login',
    ids: 'C15 C3 C60',
    title: 'every command before login',
    patches: [
      {
        why: '9.1: unknown words get "Unrecognized command" before login too (3.0)',
        find: ['S: E10 BAD "Please login first"'],
        replace: ['S: E10 BAD "Unrecognized command"'],
      },
    ],
  },
  { file: '21-errors-syntax', ids: 'C3 C4 C5 C7 C8', title: 'syntax errors after login' },
  { file: '22-errors-unknown-command', ids: 'C60 C22', title: 'unknown commands and STARTTLS without TLS' },
  { file: '23-errors-arg-counts', ids: 'C8', title: 'too few and too many arguments' },
  {
    file: '24-errors-delete-missing-crash',
    ids: 'C30',
    title: 'DELETE of a missing name: NO, no crash, stream unaffected',
    patches: [
      {
        why: '9.1: NO "mailbox doesn\'t exist"; connection S keeps streaming (no crash)',
        find: ['C: X01 DELETE "user.does-not-exist"', ...CLOSED, '# ---- connection S ----', ...CLOSED],
        replace: ['$0', 'S: X01 NO "mailbox doesn\'t exist"'],
      },
      {
        why: '9.1: S keeps streaming and connection 1 stays usable',
        replace: [...streamWitness('S', 'U01', 'user.after24'), ...noopAndLogout('1', 'X02')],
      },
    ],
  },
  {
    file: '25-errors-deactivate-crashes',
    ids: 'C31',
    title: 'DEACTIVATE of a missing and of a reserved name: NO, no crash',
    patches: [
      {
        why: '9.1: NO "mailbox doesn\'t exist"; the connection stays open',
        find: ['C: X01 DEACTIVATE "user.does-not-exist" "backend1!default"', ...CLOSED],
        replace: ['$0', 'S: X01 NO "mailbox doesn\'t exist"'],
      },
      {
        why: '9.1: NO "mailbox not currently active"; the connection stays open',
        find: ['C: X03 DEACTIVATE "user.r" "backend1!default"', ...CLOSED],
        replace: ['$0', 'S: X03 NO "mailbox not currently active"'],
      },
      { why: '9.1: the connections stay open', replace: [...noopAndLogout('1', 'X04'), ...noopAndLogout('2', 'X05')] },
    ],
  },
  {
    file: '26-errors-huge-literal',
    ids: 'C13',
    title: '{131072+} accepted, {131073+} gets BYE on that connection only',
    patches: [
      {
        why: '9.1: * BYE and close on connection 1 only; S keeps streaming',
        find: ['C: X02 FIND {131073+}', ...CLOSED, '# ---- connection S ----', ...CLOSED],
        replace: ['$0', BYE, ...CLOSED],
      },
      { why: '9.1: S keeps streaming', replace: streamWitness('S', 'U01', 'user.after26') },
    ],
  },
  {
    file: '27-errors-long-word-and-quoted',
    ids: 'C13',
    title: 'over-long tag and quoted string get BYE on that connection only',
    // The capture shows only the first 300 bytes of each long line; the line
    // lengths (131078 = 131073 + 5, 131084 = 10 + 131073 + 1) say a 131073-byte
    // tag followed by " NOOP", and a 131073-byte quoted string with its closing quote.
    parse: { elidedTails: [' NOOP', '"'] },
    patches: [
      { why: '9.1: * BYE and close on that connection only', find: [/^C: T{300}\.\.\.\[/, CLOSED[0]], replace: ['$0', BYE, CLOSED[0]] },
      { why: '9.1: * BYE and close on that connection only', find: [/^C: X01 FIND "q{290}/, CLOSED[0]], replace: ['$0', BYE, CLOSED[0]] },
    ],
  },
  {
    file: '28-literals-sync-nonsync',
    ids: 'C6 C9 C13',
    title: '{n} and {n+} literals, NUL in a literal, {2147483648+}',
    patches: [
      { why: '9.1: * BYE and close on connection 1 only', find: ['C: X06 FIND {2147483648+}', CLOSED[0]], replace: ['$0', BYE, CLOSED[0]] },
    ],
  },
  { file: '29-errors-no-crlf', ids: 'C10', title: 'no line end, bare LF, lone CR' },
  {
    file: '30-errors-binary-junk',
    ids: 'C4 C7 C36 C61',
    title: 'binary tags and commands, NUL and 8-bit bytes',
    patches: [
      {
        why: '9.1: the tag is echoed in full, NUL included',
        find: ['S:  BAD "Unrecognized command"'],
        replace: ['S: \\x00\\x01\\x02\\xff\\xfe BAD "Unrecognized command"'],
      },
      {
        why: '9.1: a NUL in a quoted string is a syntax error',
        find: ['S: X01 OK "Search completed"'],
        replace: ['S: X01 BAD "Extra arguments"'],
      },
    ],
  },
  { file: '31-reserve-existing', ids: 'C27 C28', title: 'RESERVE of a taken name' },
  {
    file: '32-activate-reserved-by-other',
    ids: 'C25',
    title: "ACTIVATE over another server's entry (conflict_policy cyrus)",
    // C25 / 5.2: a configured conflict policy may refuse X03 (taking an active
    // mailbox from another server); the transcript shows Cyrus's last writer
    // wins, which is mupdated's `cyrus` policy.
    config: { conflict_policy: 'cyrus' },
  },
  {
    file: '33-compress-deflate',
    ids: 'C1 C14',
    title: 'COMPRESS is not implemented: BAD "Unrecognized command", no compression',
    patches: [
      {
        why: '9.1/3.13: mupdated omits COMPRESS',
        find: ['S: Z01 NO Unknown COMPRESS algorithm: LZ4'],
        replace: ['S: Z01 BAD "Unrecognized command"'],
      },
      {
        // Without COMPRESS nothing is compressed: the client sends what the
        // "# inflated:" notes show, in clear, and gets mupdated's answers.
        why: '9.1/3.13: mupdated omits COMPRESS; the rest of the session runs uncompressed',
        find: [
          'S: Z02 OK DEFLATE active',
          '# inflated: C: Z03 FIND "user.none"',
          /<binary chunk, 28 bytes>$/,
          /<binary chunk, 33 bytes>$/,
          '# inflated: S: Z03 OK "Search completed"',
          '# inflated: C: Z04 COMPRESS "DEFLATE"',
          /<binary chunk, 29 bytes>$/,
          /<binary chunk, 43 bytes>$/,
          '# inflated: S: Z04 BAD DEFLATE active via COMPRESS',
          '# inflated: C: Q01 LOGOUT',
          /<binary chunk, 18 bytes>$/,
          /<binary chunk, 19 bytes>$/,
          '# server closed the connection',
          '# inflated: S: Q01 OK "bye-bye"',
        ],
        replace: [
          'S: Z02 BAD "Unrecognized command"',
          'C: Z03 FIND "user.none"',
          'S: Z03 OK "Search completed"',
          'C: Z04 COMPRESS "DEFLATE"',
          'S: Z04 BAD "Unrecognized command"',
          'C: Q01 LOGOUT',
          'S: Q01 OK "bye-bye"',
          '# server closed the connection',
        ],
      },
    ],
  },
];

function load(c: Pick<Case, 'file' | 'patches' | 'parse'>, extra: Patch[] = []): Transcript {
  const text = readFileSync(join(FIXTURES, `${c.file}.txt`), 'latin1');
  const lines = applyPatches(splitLines(text), [...(c.patches ?? []), ...extra]);
  return adaptBannersForMupdated(parseTranscript(c.file, lines, c.parse));
}

// ---------------------------------------------------------------------------
// Servers: one fresh master per transcript (they reuse mailbox names), users
// created once in a template data folder and copied.

/** Registers the tests on servers made by `start` (a single master, or a cluster node). */
export function transcriptTests(start: ServerFactory): void {
  let template = '';
  const USERS = [
    { name: 'mupdateadmin', admin: true },
    { name: 'backend1', admin: true },
    { name: 'backend2', admin: true },
    { name: 'alice' },
  ];

  test.before(() => {
    template = tempDir('mupdated-transcripts-users-');
    for (const u of USERS) addUser(template, u);
  });
  test.after.always(() => {
    if (template) removeDir(template);
  });

  /** At most this many servers at once (the file's tests run concurrently). */
  let slots = 3;
  const queue: Array<() => void> = [];
  async function withSlot<T>(fn: () => Promise<T>): Promise<T> {
    if (slots === 0) await new Promise<void>((resolve) => queue.push(resolve));
    else slots--;
    try {
      return await fn();
    } finally {
      const next = queue.shift();
      if (next) next();
      else slots++;
    }
  }

  test('the fixtures are exactly the master-session transcripts 01-33', (t) => {
    const files = readdirSync(FIXTURES)
      .filter((f) => f.endsWith('.txt'))
      .map((f) => f.replace(/\.txt$/, ''))
      .sort();
    t.deepEqual(files, CASES.map((c) => c.file).sort());
  });

  /** Runs `fn` against a fresh master (users copied from the template). */
  async function withServer<T>(config: Record<string, string | number | boolean>, fn: (s: RunningMupdated) => Promise<T>): Promise<T> {
    return withSlot(async () => {
      const dataDir = tempDir();
      cpSync(template, dataDir, { recursive: true });
      const server = await start({ dataDir, config: { servername: 'mupdate-master', sasl_mech_list: 'PLAIN', ...config } });
      try {
        return await fn(server);
      } finally {
        await server.stop();
        removeDir(dataDir);
      }
    });
  }

  for (const c of CASES) {
    test(`${c.file}: ${c.ids} ${c.title}`, async (t) => {
      const transcript = load(c);
      await withServer(c.config ?? {}, async (server) => {
        await seedDirectory(server.port, transcript.seed);
        const r = await replayTranscript(transcript, { port: server.port, stateBlocks: c.stateBlocks ?? [] });
        t.true(r.serverLinesCompared > 0);
        t.is(server.child.exitCode, null, 'the server is still running');
        t.is(server.child.signalCode, null, 'the server is still running');
      });
    });
  }

  // Negative controls: the replayer must notice every kind of difference.
  test('the replayer rejects a changed byte, a missing or extra line, a wrong close, a wrong stream state', async (t) => {
    const seventeen = { file: '17-noop-logout' };
    const broken: Array<[string, Patch]> = [
      ['changed byte', { why: 'control', find: ['S: N01 OK "Noop done"'], replace: ['S: N01 OK "Noop Done"'] }],
      ['missing line', { why: 'control', find: ['S: N00 BAD "Please login first"'], replace: [] }],
      ['extra line', { why: 'control', find: ['S: N01 OK "Noop done"'], replace: ['$0', 'S: N01 OK "Noop done"'] }],
      [
        'close that does not happen',
        { why: 'control', find: ['S: N01 OK "Noop done"'], replace: ['$0', '# server closed the connection'] },
      ],
      [
        'close that is missing',
        {
          why: 'control',
          find: ['S: Q01 OK "bye-bye"', '# server closed the connection'],
          replace: ['$0', 'C: N02 NOOP', 'S: N02 OK "Noop done"'],
        },
      ],
      ['line end', { why: 'control', find: ['C: N01 NOOP'], replace: ['C: N01 NOOP <no-EOL>'] }],
    ];
    await withServer({}, async (server) => {
      for (const [what, patch] of broken) {
        await t.throwsAsync(
          replayTranscript(load(seventeen, [patch]), { port: server.port, timeoutMs: 1000 }),
          { instanceOf: TranscriptMismatch },
          what,
        );
      }
      // The unbroken transcript passes on the same server.
      await t.notThrowsAsync(replayTranscript(load(seventeen), { port: server.port }));
    });
    const thirteen = CASES.find((c) => c.file.startsWith('13-'))!;
    const wrongState: Patch = {
      why: 'control',
      find: ['S: backend1!default {28+}', 'S: alice\\tlrswipkxtecdan\\tbob\\tlr\\t'],
      replace: ['S: backend1!default {29+}', 'S: alice\\tlrswipkxtecdan\\tbob\\tlrs\\t'],
    };
    await withServer({}, async (server) => {
      const tr = load(thirteen, [wrongState]);
      await seedDirectory(server.port, tr.seed);
      await t.throwsAsync(
        replayTranscript(tr, { port: server.port, stateBlocks: thirteen.stateBlocks!.map((b) => ({ ...b, timeoutMs: 2000 })) }),
        { instanceOf: TranscriptMismatch, message: /stream did not reach the expected state/ },
      );
    });
  });
}
