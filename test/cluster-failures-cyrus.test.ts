/**
 * Cluster failure scenario 5 (spec cluster.md section 5): a real Cyrus client
 * fails over between cluster nodes through one host name with two addresses.
 * Cyrus's clients connect to each address getaddrinfo returns for the name,
 * in turn, until one accepts; so a name with one address per node needs no
 * change to Cyrus.
 *
 * How the name is given two loopback addresses without touching the machine:
 * the Cyrus program runs in a private mount namespace (`unshare -m`, root),
 * where a temp file with the extra lines is bind-mounted over /etc/hosts.
 * Only that process sees the name; the machine's /etc/hosts is unchanged and
 * nothing leaves loopback. (A resolver override by LD_PRELOAD or a local DNS
 * server would also do, but would be more moving parts than the kernel's own
 * namespaces.) Node A listens on 127.0.0.2, node B on 127.0.0.3, same port.
 */
import { spawn, spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { EtcdCluster } from './helpers/etcd-cluster.js';
import { killNode, startNode } from './helpers/cluster-storm.js';
import { CYRUS_BIN, cyrusMissingReason, interopTest } from './helpers/cyrus.js';
import { freePort } from './helpers/ports.js';
import { RawClient } from './helpers/raw-client.js';
import { removeDir, tempDir, type RunningMupdated } from './helpers/server.js';

const NAME = 'mupdate-cluster.test';

/** Why this test cannot run here (no Cyrus, or no private mount namespaces), or null. */
function missingReason(): string | null {
  const cyrus = cyrusMissingReason();
  if (cyrus) return cyrus;
  const r = spawnSync('unshare', ['-m', 'true'], { encoding: 'utf8' });
  if (r.status !== 0) return `unshare -m does not work here (it needs root): ${(r.stderr || r.error?.message || '').trim()}`;
  return null;
}

const reason = missingReason();
const register = interopTest('serial', reason);

/**
 * Runs the real `mupdatetest` against NAME in a private mount namespace with
 * `hostsFile` over /etc/hosts; types `lines` after login and waits until
 * `until` shows in its output. Returns everything it printed.
 */
async function mupdatetestVia(hostsFile: string, port: number, lines: string[], until: RegExp): Promise<string> {
  const args = [
    '-m',
    'sh',
    '-c',
    'mount --bind "$0" /etc/hosts && exec "$@"',
    hostsFile,
    join(CYRUS_BIN, 'mupdatetest'),
    '-m',
    'PLAIN',
    '-a',
    'mupdateadmin',
    '-u',
    'mupdateadmin',
    '-w',
    'secret',
    '-p',
    String(port),
    NAME,
  ];
  const child = spawn('unshare', args, { stdio: ['pipe', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout.on('data', (d: Buffer) => {
    out += d.toString('latin1');
  });
  child.stderr.on('data', (d: Buffer) => {
    err += d.toString('latin1');
  });
  child.stdin.on('error', () => {});
  const closed = new Promise<void>((r) => child.once('close', () => r()));
  const killer = setTimeout(() => child.kill('SIGKILL'), 30_000);
  const waitFor = async (re: RegExp) => {
    for (let i = 0; i < 300 && !re.test(out); i++) {
      if (child.exitCode !== null || child.signalCode !== null) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    if (!re.test(out)) throw new Error(`mupdatetest never printed ${re}; output:\n${out}\nstderr:\n${err}`);
  };
  try {
    await waitFor(/^Authenticated\./m);
    child.stdin.write(lines.map((l) => `${l}\n`).join(''));
    await waitFor(until);
    child.stdin.end();
    await closed;
    return out;
  } finally {
    clearTimeout(killer);
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  }
}

async function loginAt(host: string, port: number): Promise<RawClient> {
  const c = await RawClient.connect(port, host);
  await c.readBanner();
  const ir = Buffer.from('mupdateadmin\0mupdateadmin\0secret').toString('base64');
  c.send(`A01 AUTHENTICATE "PLAIN" {${ir.length}+}\r\n${ir}\r\n`);
  const line = await c.readLine(10_000);
  if (line !== 'A01 OK "Authenticated"') throw new Error(`login at ${host}:${port}: ${line}`);
  return c;
}

const logins = (node: RunningMupdated) => node.logs.filter((l) => /"msg":"login"/.test(l)).length;

register(
  'a real Cyrus mupdatetest fails over through one host name with two addresses (127.0.0.2, 127.0.0.3) when node A is down',
  async (t) => {
    const cluster = await EtcdCluster.start(3);
    const port = await freePort(['127.0.0.2', '127.0.0.3']);
    const dir = tempDir('mupdated-hosts-');
    const nodes: RunningMupdated[] = [];
    t.teardown(async () => {
      for (const n of nodes) {
        await n.stop();
        removeDir(n.dataDir);
      }
      removeDir(dir);
      await cluster.stop();
    });
    nodes.push(...(await Promise.all(['127.0.0.2', '127.0.0.3'].map((h) => startNode(cluster, { args: ['--listen', `${h}:${port}`] })))));
    const [a, b] = nodes as [RunningMupdated, RunningMupdated];
    const hostsFile = join(dir, 'hosts');
    writeFileSync(hostsFile, `${readFileSync('/etc/hosts', 'latin1').replace(/\n?$/, '\n')}127.0.0.2 ${NAME}\n127.0.0.3 ${NAME}\n`);

    const seed = await loginAt('127.0.0.2', port);
    seed.send('S1 ACTIVATE "user.fo.before" "backend1!default" "fo\tlrs\t"\r\n');
    t.is(await seed.readLine(10_000), 'S1 OK "done"');
    seed.close();

    // Both nodes up: the name's first address, node A, is used.
    const [aBefore, bBefore] = [logins(a), logins(b)];
    const first = await mupdatetestVia(hostsFile, port, ['F1 FIND "user.fo.before"'], /^F1 OK /m);
    t.regex(first, /^F1 MAILBOX \{14\+\}\r?\nuser\.fo\.before /m);
    t.is(logins(a), aBefore + 1, 'with A up, mupdatetest logged in on A (the first address)');
    t.is(logins(b), bBefore);

    // A stopped (SIGKILL by its PID): the same command line reaches B and writes through it.
    await killNode(a);
    const second = await mupdatetestVia(
      hostsFile,
      port,
      ['F2 FIND "user.fo.before"', 'X1 ACTIVATE "user.fo.after" "backend1!default" "fo\tlrs\t"', 'F3 FIND "user.fo.after"'],
      /^F3 OK /m,
    );
    t.regex(second, /^F2 MAILBOX \{14\+\}\r?\nuser\.fo\.before /m);
    t.regex(second, /^X1 OK "done"/m);
    t.regex(second, /^F3 MAILBOX \{13\+\}\r?\nuser\.fo\.after /m);
    t.is(logins(b), bBefore + 1, 'with A down, mupdatetest logged in on B (the second address)');

    const check = await loginAt('127.0.0.3', port);
    check.send('C1 FIND "user.fo.after"\r\n');
    const answer = await check.readUntilTagged('C1');
    check.close();
    t.is(answer[answer.length - 1], 'C1 OK "Search completed"');
    t.true(answer.some((l) => l.includes('user.fo.after')));
  },
);
