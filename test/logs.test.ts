/**
 * Logs a person can read (issue 13, point 4): readable lines on a terminal,
 * JSON lines when stderr is not one or with --log-format json, log_level in
 * the config, and every warning and error saying what to do about it.
 */
import test from 'ava';
import { spawn, spawnSync } from 'node:child_process';
import { readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { adviceFor } from '../src/log-advice.js';
import { CLI, PROJECT_ROOT, removeDir, tempDir } from './helpers/server.js';

function sourceFiles(dir: string, out: string[] = []): string[] {
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) sourceFiles(p, out);
    else if (p.endsWith('.ts')) out.push(p);
  }
  return out;
}

/** The text of a call's arguments, from just after its `(` to the matching `)` (strings and templates skipped over). */
function callArguments(text: string, open: number): string {
  let depth = 1;
  for (let i = open; i < text.length; i++) {
    const ch = text[i];
    if (ch === "'" || ch === '"' || ch === '`') {
      for (i++; i < text.length && text[i] !== ch; i++) if (text[i] === '\\') i++;
    } else if (ch === '(' || ch === '{' || ch === '[') depth++;
    else if (ch === ')' || ch === '}' || ch === ']') {
      if (--depth === 0) return text.slice(open, i);
    }
  }
  throw new Error('unbalanced call');
}

/** The message of a log call: its last argument when that is a string (a template's text up to its first `${`). */
function messageOf(args: string): string | null {
  let depth = 0;
  let lastStart = 0;
  for (let i = 0; i < args.length; i++) {
    const ch = args[i];
    if (ch === "'" || ch === '"' || ch === '`') {
      for (i++; i < args.length && args[i] !== ch; i++) if (args[i] === '\\') i++;
    } else if (ch === '(' || ch === '{' || ch === '[') depth++;
    else if (ch === ')' || ch === '}' || ch === ']') depth--;
    else if (ch === ',' && depth === 0) lastStart = i + 1;
  }
  const last = args.slice(lastStart).trim();
  const quote = last[0];
  if (quote !== "'" && quote !== '"' && quote !== '`') return null;
  let text = '';
  for (let i = 1; i < last.length && last[i] !== quote; i++) {
    if (quote === '`' && last.startsWith('${', i)) break;
    if (last[i] === '\\') i++;
    text += last[i];
  }
  return text;
}

test('every log.warn and log.error in src/ has advice: what to do, in words (src/log-advice.ts)', (t) => {
  const src = join(PROJECT_ROOT, 'src');
  const missing: string[] = [];
  let calls = 0;
  for (const file of sourceFiles(src)) {
    const text = readFileSync(file, 'utf8');
    for (const m of text.matchAll(/\blog\??\.(warn|error|fatal)\(/g)) {
      calls++;
      const msg = messageOf(callArguments(text, m.index + m[0].length));
      const where = `${relative(src, file)}:${text.slice(0, m.index).split('\n').length}`;
      // A message made entirely at run time (describeNarrowed) is checked through an example below.
      if (msg === null || msg === '') continue;
      if (adviceFor(msg) === undefined) missing.push(`${where}: '${msg}'`);
    }
  }
  t.true(calls >= 40, `found only ${calls} warn/error calls: the scan is broken`);
  t.deepEqual(missing, [], 'add an entry to src/log-advice.ts for each: what the operator should do');
  t.truthy(adviceFor('/srv/mupdated/users.mdb: mode 0644 narrowed to 0600'));
  t.is(adviceFor('listening'), undefined);
});

interface Run {
  stderr: string;
  code: number | null;
}

/** Starts a master, waits for it to listen (or `until`), stops it with SIGTERM; `tty` runs it on a pseudo-terminal (script(1)). */
function runMaster(args: string[], options: { tty?: boolean; env?: Record<string, string>; until?: RegExp } = {}): Promise<Run> {
  const until = options.until ?? /listening/;
  const argv = [process.execPath, CLI, 'master', '--listen', '127.0.0.1:0', ...args];
  const child = options.tty
    ? spawn('script', ['-qefc', argv.map((a) => `'${a.replace(/'/g, "'\\''")}'`).join(' '), '/dev/null'], {
        stdio: ['pipe', 'pipe', 'pipe'],
      })
    : spawn(argv[0], argv.slice(1), {
        stdio: ['ignore', 'pipe', 'pipe'],
        env: { ...process.env, MUPDATED_LOG_LEVEL: '', ...options.env },
      });
  let out = '';
  const onData = (d: Buffer) => {
    out += d.toString('utf8');
    if (until.test(out)) child.kill('SIGTERM');
  };
  child.stdout.on('data', onData);
  child.stderr.on('data', onData);
  const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
  return new Promise((resolve) =>
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ stderr: out, code });
    }),
  );
}

test('on a terminal the lines are readable (level word, message, advice after it); not on a terminal, or with --log-format json, JSON lines', async (t) => {
  const dir = tempDir('mupdated-logs-');
  try {
    // A fresh folder has no users: the start warns, with advice.
    const tty = await runMaster(['--data', join(dir, 'a')], { tty: true });
    t.regex(tty.stderr, /INFO.*listening/);
    t.regex(tty.stderr, /WARN.*no users yet: create the first admin .* -- what to do: nobody can log in until then/);
    t.notRegex(tty.stderr, /"level":/);
    const forced = await runMaster(['--data', join(dir, 'b'), '--log-format', 'json'], { tty: true });
    t.regex(forced.stderr, /^\{"level":30,.*"msg":"listening"\}\r?$/m);
    const piped = await runMaster(['--data', join(dir, 'c')]);
    const lines = piped.stderr
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { level: number; msg: string; advice?: string });
    const warning = lines.find((l) => l.msg.startsWith('no users yet'));
    t.is(warning?.level, 40);
    t.regex(warning?.advice ?? '', /nobody can log in/);
    t.true(
      lines.every((l) => l.level < 40 || typeof l.advice === 'string'),
      'every warning and error has advice',
    );
    const bad = spawnSync(process.execPath, [CLI, 'master', '--data', dir, '--log-format', 'yaml'], { encoding: 'utf8', timeout: 30_000 });
    t.is(bad.status, 1);
    t.regex(bad.stderr, /--log-format: expected pretty or json, got 'yaml'/);
  } finally {
    removeDir(dir);
  }
});

test('log_level in the config sets what is logged; MUPDATED_LOG_LEVEL wins for a one-off run; a wrong level is refused', async (t) => {
  const dir = tempDir('mupdated-logs-');
  try {
    const conf = join(dir, 'warn.conf');
    writeFileSync(conf, 'log_level: warn\n');
    // Stopped at its first warning: no info line ("listening") may come before it.
    const quiet = await runMaster(['--data', join(dir, 'a'), '--config', conf], { until: /no users yet/ });
    t.regex(quiet.stderr, /"level":40,.*no users yet/);
    t.notRegex(quiet.stderr, /"level":30/);
    const loud = await runMaster(['--data', join(dir, 'b'), '--config', conf], { env: { MUPDATED_LOG_LEVEL: 'info' } });
    t.regex(loud.stderr, /"level":30,.*"msg":"listening"/);
    writeFileSync(conf, 'log_level: chatty\n');
    const bad = spawnSync(process.execPath, [CLI, 'master', '--data', dir, '--config', conf], { encoding: 'utf8', timeout: 30_000 });
    t.is(bad.status, 1);
    t.regex(bad.stderr, /log_level: expected one of fatal error warn info debug trace silent, got 'chatty'/);
  } finally {
    removeDir(dir);
  }
});
