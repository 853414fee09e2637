/**
 * The interactive `mupdated client`, driven through a real pseudo-terminal
 * (tmux): typing, Tab completion, history (also across sessions), `watch`
 * while another connection makes changes, Ctrl-C, the password prompt, colour,
 * and reconnecting after the server went away. Each test reads the screen.
 */
import test, { type ExecutionContext } from 'ava';
import { join } from 'node:path';
import { readFileSync } from 'node:fs';
import { clientArgs, runClient } from './helpers/client-run.js';
import { freePort } from './helpers/ports.js';
import { CLI, removeDir, startMupdated, tempDir, type RunningMupdated } from './helpers/server.js';
import { establishedAt, Tmux, tmuxAvailable } from './helpers/tmux.js';

let server: RunningMupdated;
let home: string;
const terminals: Tmux[] = [];

test.before(async () => {
  server = await startMupdated();
  home = tempDir('mupdated-pty-');
  const seed = await runClient(server.port, ['activate user.seed ptyseed!default "x lr"']);
  if (seed.code !== 0) throw new Error(`seeding failed: ${seed.stderr}`);
});

test.after.always(async () => {
  for (const t of terminals) t.kill();
  await server?.stop();
  if (server) removeDir(server.dataDir);
  if (home) removeDir(home);
});

/** A terminal running `mupdated client` against port (history in its own file). */
function terminal(
  t: ExecutionContext,
  port: number,
  opts: { history: string; args?: string[]; password?: string | null; env?: Record<string, string | null> },
): Tmux {
  if (!tmuxAvailable()) t.fail('tmux is required for this test (apt-get install tmux)');
  const tm = new Tmux();
  terminals.push(tm);
  const args = clientArgs(port, { password: opts.password === undefined ? 'secret' : opts.password, args: opts.args ?? [] });
  tm.start([process.execPath, ...args], { MUPDATED_HISTORY: opts.history, NO_COLOR: null, TERM: 'xterm-256color', ...(opts.env ?? {}) });
  return tm;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function waitEstablished(port: number, n: number): Promise<number> {
  const deadline = Date.now() + 10_000;
  let got = establishedAt(port);
  for (let i = 0; i < 200 && got !== n && Date.now() < deadline; i++) {
    await sleep(50);
    got = establishedAt(port);
  }
  return got;
}

function count(screen: string, re: RegExp): number {
  return screen.split('\n').filter((l) => re.test(l)).length;
}

test.serial('interactive: commands, Tab completion, history, watch with live changes, Ctrl-C back to the prompt', async (t) => {
  const history = join(home, 'history-1');
  const tm = terminal(t, server.port, { history });
  try {
    const prompt = `127.0.0.1:${server.port}> `;
    await tm.waitFor(/logged in as mupdateadmin/);
    await tm.waitForCursorLine(new RegExp(`^${prompt.replace(/\./g, '\\.')}$`));
    const before = establishedAt(server.port);

    // Tab completes a command name
    tm.type('act');
    tm.press('Tab');
    await tm.waitForCursorLine(/> activate $/);
    tm.type('user.pty1 ptysrv!default "pty lrswipkxtecdan anyone p"');
    tm.press('Enter');
    await tm.waitFor(/OK done/);
    tm.type('list ptysrv!');
    tm.press('Enter');
    await tm.waitFor(/MAILBOX  user\.pty1  ptysrv!default  pty → lrswipkxtecdan, anyone → p\nOK list complete/);

    // Tab completes a name the server has shown
    tm.type('find user.p');
    tm.press('Tab');
    await tm.waitForCursorLine(/> find user\.pty1 $/);
    tm.press('Enter');
    await tm.waitFor(/OK Search completed/);

    // history: Up twice brings back the list command
    tm.press('Up');
    await tm.waitForCursorLine(/> find user\.pty1 ?$/);
    tm.press('Up');
    await tm.waitForCursorLine(/> list ptysrv!$/);
    tm.press('Enter');
    await tm.waitFor(/OK list complete[\s\S]*OK Search completed[\s\S]*OK list complete/);

    // watch on its own connection, changes made by another client appear live
    tm.type('watch ptysrv');
    tm.press('Enter');
    await tm.waitFor(/watching ptysrv on 127\.0\.0\.1:\d+: 1 entry now; changes appear below \(Ctrl-C stops\)/);
    t.is(await waitEstablished(server.port, before + 1), before + 1, 'watch uses a second connection');
    const other = await runClient(server.port, [
      'activate user.pty2 ptysrv!default "x lr"',
      'activate user.notshown elsewhere!default ""',
      'delete user.pty1',
    ]);
    t.is(other.code, 0, other.stderr);
    const watched = await tm.waitFor(/\d\d:\d\d:\d\d\.\d{3}  DELETE   user\.pty1/);
    t.regex(watched, /\d\d:\d\d:\d\d\.\d{3}  MAILBOX  user\.pty2  ptysrv!default  x → lr/);
    t.notRegex(watched, /user\.notshown/);
    tm.press('C-c');
    await tm.waitFor(/stopped watching \(2 changes\)/);
    await tm.waitForCursorLine(/^127\.0\.0\.1:\d+> $/);
    t.is(await waitEstablished(server.port, before), before, 'the watch connection is closed after Ctrl-C');

    // back at the prompt, commands work on the first connection
    tm.type('find user.pty2');
    tm.press('Enter');
    await tm.waitFor(/find user\.pty2\nMAILBOX  user\.pty2  ptysrv!default  x → lr\nOK Search completed/);

    // Ctrl-C on a half-typed line drops it
    tm.type('delete user.pty2');
    tm.press('C-c');
    await tm.waitForCursorLine(/^127\.0\.0\.1:\d+> $/);
    tm.type('quit');
    tm.press('Enter');
    const end = await tm.waitFor(/\[exit \d+\]/);
    t.regex(end, /\[exit 0\]/);
    t.is(count(end, /^OK done$/), 1, "the Ctrl-C'd delete was not sent");
    const saved = readFileSync(history, 'utf8').split('\n').filter(Boolean);
    t.deepEqual(saved.slice(-3), ['watch ptysrv', 'find user.pty2', 'quit']);
  } finally {
    tm.kill();
  }
});

test.serial('interactive: history persists across sessions in $MUPDATED_HISTORY; Ctrl-D leaves', async (t) => {
  const history = join(home, 'history-2');
  const first = terminal(t, server.port, { history });
  try {
    await first.waitFor(/logged in as/);
    first.type('noop');
    first.press('Enter');
    await first.waitFor(/OK Noop done/);
    first.type('stats ptyseed!');
    first.press('Enter');
    await first.waitFor(/ptyseed +default +1 +0 +1/);
    first.press('C-d');
    await first.waitFor(/\[exit 0\]/);
  } finally {
    first.kill();
  }
  const second = terminal(t, server.port, { history });
  try {
    await second.waitFor(/logged in as/);
    second.press('Up');
    await second.waitForCursorLine(/> stats ptyseed!$/);
    second.press('Up');
    await second.waitForCursorLine(/> noop$/);
    second.press('Enter');
    const screen = await second.waitFor(/noop\nOK Noop done/);
    t.notRegex(screen, /stats ptyseed!\n/, 'the recalled stats line was not run in this session');
    second.press('C-d');
    t.regex(await second.waitFor(/\[exit \d+\]/), /\[exit 0\]/);
  } finally {
    second.kill();
  }
});

test.serial('interactive: the password is asked without echo; a wrong one is one clear line', async (t) => {
  const tm = terminal(t, server.port, { history: join(home, 'history-3'), password: null });
  try {
    await tm.waitFor(/password for mupdateadmin at 127\.0\.0\.1:\d+:\s*$/m);
    tm.type('secret');
    tm.press('Enter');
    const screen = await tm.waitFor(/logged in as mupdateadmin/);
    t.false(screen.includes('secret'), screen);
    tm.type('quit');
    tm.press('Enter');
    await tm.waitFor(/\[exit 0\]/);
  } finally {
    tm.kill();
  }
  const bad = terminal(t, server.port, { history: join(home, 'history-3'), password: null });
  try {
    await bad.waitFor(/password for mupdateadmin/);
    bad.type('nope');
    bad.press('Enter');
    const screen = await bad.waitFor(/\[exit \d+\]/);
    t.regex(screen, /mupdated client: login as mupdateadmin refused by 127\.0\.0\.1:\d+: authentication failure\n\[exit 2\]/);
    t.false(screen.includes('nope'));
  } finally {
    bad.kill();
  }
});

test.serial('interactive: colour on a terminal, none with NO_COLOR; --raw shows the wire lines', async (t) => {
  const coloured = terminal(t, server.port, { history: join(home, 'history-4'), args: ['--raw'] });
  try {
    await coloured.waitFor(/logged in as/);
    coloured.type('find user.seed');
    coloured.press('Enter');
    const screen = await coloured.waitFor(/OK Search completed/);
    t.regex(
      screen,
      /C: C01 FIND "user\.seed"\nS: C01 MAILBOX \{9\+\}\nS: user\.seed \{15\+\}\nS: ptyseed!default \{5\+\}\nS: x\\tlr\\t\nS: C01 OK "Search completed"\nMAILBOX  user\.seed  ptyseed!default  x → lr/,
    );
    t.regex(screen, /C: <SCRAM-SHA-256 credentials hidden>/);
    t.regex(coloured.screen(true), /\x1b\[32mOK/);
    coloured.press('C-d');
    await coloured.waitFor(/\[exit 0\]/);
  } finally {
    coloured.kill();
  }
  const plain = terminal(t, server.port, { history: join(home, 'history-4'), env: { NO_COLOR: '1' } });
  try {
    await plain.waitFor(/logged in as/);
    plain.type('find user.seed');
    plain.press('Enter');
    await plain.waitFor(/OK Search completed/);
    t.notRegex(plain.screen(true).replace(/\x1b\[\d*[ABCDGHJK]/g, ''), /\x1b\[[0-9;]*m/);
    plain.press('C-d');
    await plain.waitFor(/\[exit 0\]/);
  } finally {
    plain.kill();
  }
});

test.serial('interactive: a server that went away is one clear line, and the next command reconnects', async (t) => {
  // A port of our own (helpers/ports.ts): the client redials it after the restart.
  const own = await startMupdated({ args: ['--listen', `127.0.0.1:${await freePort()}`] });
  let again: RunningMupdated | undefined;
  const tm = terminal(t, own.port, { history: join(home, 'history-5') });
  try {
    await tm.waitFor(/logged in as/);
    await own.stop();
    tm.type('noop');
    tm.press('Enter');
    const screen = await tm.waitFor(/error: /);
    t.regex(screen, new RegExp(`127\\.0\\.0\\.1:${own.port} (had )?closed the connection`));
    t.regex(screen, new RegExp(`error: cannot connect to 127\\.0\\.0\\.1:${own.port}: connection refused`));
    t.false(/\n\s+at /.test(screen), screen);
    again = await startMupdated({ dataDir: own.dataDir, args: ['--listen', `127.0.0.1:${own.port}`] });
    t.is(again.port, own.port);
    tm.type('noop');
    tm.press('Enter');
    await tm.waitFor(/reconnected to 127\.0\.0\.1:\d+[\s\S]*OK Noop done/);
    tm.press('C-d');
    await tm.waitFor(/\[exit 0\]/);
  } finally {
    tm.kill();
    await again?.stop();
    await own.stop();
    removeDir(own.dataDir);
  }
});

test.serial('user add on a terminal asks for the password without echoing it', async (t) => {
  if (!tmuxAvailable()) t.fail('tmux is required for this test (apt-get install tmux)');
  const data = tempDir('mupdated-pty-user-');
  const tm = new Tmux();
  terminals.push(tm);
  try {
    tm.start([process.execPath, CLI, 'user', 'add', 'carol', '--data', data], { NO_COLOR: null, TERM: 'xterm-256color' });
    await tm.waitFor(/Password:/);
    tm.type('Hidden-Pw-42');
    tm.press('Enter');
    await tm.waitFor(/user carol saved/);
    t.false(tm.screen().includes('Hidden-Pw-42'), tm.screen());
  } finally {
    tm.kill();
    removeDir(data);
  }
});
