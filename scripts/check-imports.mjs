#!/usr/bin/env node
// Fails (exit 1) when a module under src/ imports from a layer above its own,
// or when imports form a cycle. The layers, lowest first:
//   0 base:     store, sasl, the wire codec, logging, version, pure helpers
//   1 protocol: session, commands (mupdate/commands/), streams, dumps, the MUPDATE client, dump formats
//   2 services: the server, the slave's follower, the admin socket, the client's REPL
//   3 entry:    cli and config
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';

const ROOT = resolve(dirname(new URL(import.meta.url).pathname), '..');
// The tree to check: src/ of this checkout, or a folder named on the command line (tests).
const SRC = resolve(process.argv[2] ?? join(ROOT, 'src'));

/** First matching rule wins: [path prefix under src/, layer]. */
const LAYERS = [
  ['cli/', 3],
  ['config.ts', 3],
  ['config-values.ts', 3],
  ['cyrus-conf/settings.ts', 3],
  ['mupdate/server.ts', 2],
  ['resync/follower.ts', 2],
  ['admin/socket-server.ts', 2],
  ['client/', 2],
  ['frontend/', 2],
  ['mupdate/wire/', 0],
  ['mupdate/location.ts', 0],
  ['mupdate/dump-protocol.ts', 0],
  // The MUPDATE client (connection, login, responses) is protocol: the slave, push and the client's REPL sit on it.
  ['mupdate/client/', 1],
  // One module per command; session.ts imports their registry (a command importing the session would be a cycle).
  ['mupdate/commands/', 1],
  ['mupdate/', 1],
  ['backup/', 1],
  ['resync/', 1],
  ['admin/', 1],
  ['dump/', 1],
  ['push/', 1],
  ['metrics/http-server.ts', 2],
  ['metrics/', 0],
  ['store/', 0],
  ['sasl/', 0],
  ['log.ts', 0],
  ['log-formats.ts', 0],
  ['log-advice.ts', 0],
  ['cyrus-conf/read.ts', 0],
  ['version.ts', 0],
  ['host-port.ts', 0],
];

function layerOf(file) {
  const rel = relative(SRC, file);
  for (const [prefix, layer] of LAYERS) if (rel === prefix || rel.startsWith(prefix)) return layer;
  return null;
}

function walk(dir, out = []) {
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) walk(p, out);
    else if (p.endsWith('.ts')) out.push(p);
  }
  return out;
}

const files = walk(SRC);
const graph = new Map();
const problems = [];
for (const file of files) {
  const text = readFileSync(file, 'utf8');
  const deps = [];
  for (const m of text.matchAll(/(?:^|\n)\s*(?:import|export)\b[^;]*?\bfrom\s+'(\.{1,2}\/[^']+)'/g)) {
    deps.push(resolve(dirname(file), m[1].replace(/\.js$/, '.ts')));
  }
  for (const m of text.matchAll(/\bimport\(\s*'(\.{1,2}\/[^']+)'\s*\)/g)) {
    deps.push(resolve(dirname(file), m[1].replace(/\.js$/, '.ts')));
  }
  graph.set(file, deps);
  const own = layerOf(file);
  if (own === null) {
    problems.push(`${relative(SRC, file)}: no layer (add it to scripts/check-imports.mjs)`);
    continue;
  }
  for (const dep of deps) {
    const theirs = layerOf(dep);
    if (theirs !== null && theirs > own) {
      problems.push(`${relative(SRC, file)} (layer ${own}) imports ${relative(SRC, dep)} (layer ${theirs}): imports must point down`);
    }
  }
}

// Cycles: depth-first search with colours.
const colour = new Map();
const stack = [];
function visit(file) {
  colour.set(file, 'grey');
  stack.push(file);
  for (const dep of graph.get(file) ?? []) {
    if (!graph.has(dep)) continue;
    if (colour.get(dep) === 'grey') {
      const cycle = stack
        .slice(stack.indexOf(dep))
        .concat(dep)
        .map((f) => relative(SRC, f));
      problems.push(`import cycle: ${cycle.join(' -> ')}`);
    } else if (!colour.has(dep)) {
      visit(dep);
    }
  }
  stack.pop();
  colour.set(file, 'black');
}
for (const file of files) if (!colour.has(file)) visit(file);

if (problems.length) {
  for (const p of problems) console.error(p);
  console.error(`${problems.length} import problem(s)`);
  process.exit(1);
}
console.log(`imports: ${files.length} modules, no cycle, every import points down`);
