/**
 * The command modules (src/mupdate/commands/): the registry holds exactly the
 * commands of RFC 3656 plus XRESUME, each definition declares the gates the
 * spec's state machine needs (3.0: C15, C20, C22, C42, C50), and each module
 * names the spec items it implements in its header.
 */
import test from 'ava';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { COMMANDS } from '../src/mupdate/commands/index.js';
import { PROJECT_ROOT } from './helpers/server.js';

const WRITES = ['ACTIVATE', 'RESERVE', 'DEACTIVATE', 'DELETE'];

test('the registry maps each command word to its definition, and only those words', (t) => {
  const words = [...COMMANDS.keys()].sort();
  t.deepEqual(words, [
    'ACTIVATE',
    'AUTHENTICATE',
    'DEACTIVATE',
    'DELETE',
    'FIND',
    'LIST',
    'LOGOUT',
    'NOOP',
    'RESERVE',
    'STARTTLS',
    'UPDATE',
    'XRESUME',
  ]);
  for (const [word, definition] of COMMANDS) t.is(definition.word, word);
});

test('gates: login needed but for AUTHENTICATE, LOGOUT and STARTTLS; only NOOP and LOGOUT while streaming; writes are master-only', (t) => {
  for (const [word, d] of COMMANDS) {
    t.is(d.needsLogin, !['AUTHENTICATE', 'LOGOUT', 'STARTTLS'].includes(word), `${word} needsLogin (C15)`);
    t.is(!!d.whileStreaming, word === 'NOOP' || word === 'LOGOUT', `${word} whileStreaming (C42)`);
    t.is(!!d.masterOnly, WRITES.includes(word), `${word} masterOnly (C50)`);
    t.is(!!d.beginWrite, WRITES.includes(word), `${word} is pipelined as a write`);
    t.is(!!d.needsTls, word === 'STARTTLS', `${word} needsTls (C22)`);
    t.true(d.args.min <= d.args.max, `${word} arity`);
  }
  t.is(COMMANDS.get('AUTHENTICATE')?.refusedAfterLogin, 'already authenticated');
  t.is(COMMANDS.get('STARTTLS')?.refusedAfterLogin, "Can't Starttls after authentication");
  t.deepEqual(COMMANDS.get('UPDATE')?.args, { min: 0, max: 30, hosts: true });
  t.deepEqual(COMMANDS.get('ACTIVATE')?.args, { min: 3, max: 3 });
});

test('each command module names the spec items (C-numbers) it implements in its header comment', (t) => {
  const dir = join(PROJECT_ROOT, 'src/mupdate/commands');
  const modules = readdirSync(dir).filter((f) => f.endsWith('.ts') && f !== 'index.ts' && f !== 'types.ts');
  t.true(modules.length >= 10);
  for (const file of modules) {
    const header = /^\/\*\*([\s\S]*?)\*\//.exec(readFileSync(join(dir, file), 'utf8'));
    t.truthy(header, `${file} starts with a header comment`);
    t.regex(header?.[1] ?? '', /\bC\d+\b/, `${file} names its C-items`);
  }
});
