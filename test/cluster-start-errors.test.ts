/**
 * A cluster node never starts silently on a broken etcd setup (issue 12):
 * - etcd unreachable and no view yet: it refuses, naming the endpoints tried;
 * - etcd unreachable with a view from an earlier run: it serves reads,
 *   refuses writes, and says so in its log;
 * - TLS material that is wrong (a missing file, a file that is no PEM
 *   certificate, an https member whose certificate the given CA did not
 *   sign, no client certificate or one the member does not trust): it
 *   refuses, naming the file or the endpoint, even with a view;
 * - a prefix written by a newer cluster format: it refuses, naming it.
 *
 * Real etcd processes on loopback (a 3-member cluster; one TLS member with
 * certificates made by openssl), real nodes as child processes.
 */
import test from 'ava';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import { join } from 'node:path';
import { etcdForFile } from './helpers/cluster-nodes.js';
import { ETCD_BINARY } from './helpers/etcd-cluster.js';
import { freePort } from './helpers/ports.js';
import { answer, exchange, runCli } from './helpers/operator-tools.js';
import { RawClient } from './helpers/raw-client.js';
import { addUser, startMupdated, tempDir } from './helpers/server.js';
import { showRun } from './helpers/run.js';

const children: ChildProcess[] = [];
// Registered first, so it runs before etcdForFile's: the children go before etcd does.
test.after.always(async () => {
  for (const c of children) {
    if (c.exitCode === null && c.signalCode === null) {
      const exited = new Promise((r) => c.once('exit', r));
      process.kill(c.pid!, 'SIGTERM');
      await exited;
    }
  }
});
const scope = etcdForFile();
const { started, folders } = scope;

function folder(prefix: string): string {
  const d = tempDir(prefix);
  folders.push(d);
  return d;
}

/** Runs `mupdated master` that must refuse to start; killed (code null) if it starts instead. */
function masterMustRefuse(dataDir: string, args: string[]) {
  return runCli(['master', '--data', dataDir, '--listen', '127.0.0.1:0', ...args], { timeoutMs: 30_000 });
}

/** A port nothing listens on (bound once, released). */
async function deadEndpoints(): Promise<string> {
  return `http://127.0.0.1:${await freePort()},http://127.0.0.1:${await freePort()}`;
}

test.serial('etcd unreachable and no view yet: the node refuses to start and names the endpoints it tried', async (t) => {
  const data = folder('mupdated-noview-');
  const dead = await deadEndpoints();
  const r = await masterMustRefuse(data, ['--etcd', dead]);
  t.is(r.code, 1, showRun(r));
  for (const e of dead.split(',')) t.true(r.stderr.includes(e), showRun(r));
  t.regex(r.stderr, /cannot reach etcd at .* holds no view of the directory yet/);
});

test.serial('etcd unreachable with a view from an earlier run: reads served, writes refused, the log says so', async (t) => {
  t.timeout(180_000);
  const prefix = '/t-view/';
  const first = await startMupdated({ args: ['--etcd', scope.etcd.etcdFlag, '--etcd-prefix', prefix] });
  started.push(first);
  const c = await RawClient.login(first.port);
  t.is(await answer(c, 'A1', 'ACTIVATE', 'user.kept', 'srv1!p1', 'u\tlrs\t'), 'A1 OK "done"');
  c.close();
  await first.stop();

  const again = await startMupdated({
    dataDir: first.dataDir,
    args: ['--etcd', await deadEndpoints(), '--etcd-prefix', prefix],
    config: { etcd_write_timeout: 1 },
  });
  started.push(again);
  await again.waitForLog(/etcd is unreachable: serving reads from the local view, refusing writes until etcd answers/);
  const r = await RawClient.login(again.port);
  try {
    t.deepEqual(await exchange(r, 'F1', 'FIND', 'user.kept'), [
      'F1 MAILBOX {9+}',
      'user.kept {7+}',
      'srv1!p1 {6+}',
      'u\tlrs\t',
      'F1 OK "Search completed"',
    ]);
    t.regex(await answer(r, 'A2', 'ACTIVATE', 'user.new', 'srv1!p1', 'u\tlrs\t'), /^A2 NO "directory unavailable: /);
    t.deepEqual(await exchange(r, 'F2', 'FIND', 'user.new'), ['F2 OK "Search completed"'], 'nothing of the refused write stays');
  } finally {
    r.close();
  }
});

test.serial('TLS material that is missing or not a PEM certificate is named, and the node does not start', async (t) => {
  const data = folder('mupdated-tlsfiles-');
  const missing = join(data, 'no-such-ca.pem');
  const r1 = await masterMustRefuse(data, ['--etcd', scope.etcd.etcdFlag, '--etcd-ca', missing]);
  t.is(r1.code, 1, showRun(r1));
  t.regex(r1.stderr, /cannot read the etcd TLS file .*no-such-ca\.pem \(--etcd-ca\)/);

  const junk = join(data, 'junk.pem');
  writeFileSync(junk, 'this is no certificate\n');
  const r2 = await masterMustRefuse(data, ['--etcd', scope.etcd.etcdFlag, '--etcd-ca', junk]);
  t.is(r2.code, 1, showRun(r2));
  t.regex(r2.stderr, /junk\.pem \(--etcd-ca\) is not a PEM certificate/);

  const certOnly = await masterMustRefuse(data, ['--etcd', scope.etcd.etcdFlag, '--etcd-ca', junk, '--etcd-cert', junk]);
  t.is(certOnly.code, 1, showRun(certOnly));
  t.regex(certOnly.stderr, /both --etcd-cert and --etcd-key/);

  // The tools say the same.
  const dump = await runCli(['dump', '--etcd', scope.etcd.etcdFlag, '--etcd-ca', junk]);
  t.is(dump.code, 1, showRun(dump));
  t.regex(dump.stderr, /is not a PEM certificate/);
});

/** A CA and a member certificate it signed (for 127.0.0.1), made with openssl. */
function makeCa(dir: string, name: string): { cert: string; key: string } {
  const cert = join(dir, `${name}.pem`);
  const key = join(dir, `${name}.key`);
  openssl(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-subj', `/CN=${name}`, '-days', '1', '-keyout', key, '-out', cert]);
  return { cert, key };
}

function openssl(args: string[]): void {
  const r = spawnSync('openssl', args, { encoding: 'utf8', timeout: 60_000 });
  if (r.status !== 0) throw new Error(`openssl ${args[0]} failed (${r.status}): ${r.stderr}`);
}

/** A certificate signed by `ca`: a member's (for 127.0.0.1) or a client's. */
function signedCert(dir: string, ca: { cert: string; key: string }, name = 'member'): { cert: string; key: string } {
  const key = join(dir, `${name}.key`);
  const csr = join(dir, `${name}.csr`);
  const cert = join(dir, `${name}.pem`);
  const ext = join(dir, `${name}.ext`);
  writeFileSync(ext, 'subjectAltName=IP:127.0.0.1\n');
  openssl(['req', '-newkey', 'rsa:2048', '-nodes', '-subj', `/CN=${name}`, '-keyout', key, '-out', csr]);
  openssl(['x509', '-req', '-in', csr, '-CA', ca.cert, '-CAkey', ca.key, '-CAcreateserial', '-days', '1', '-out', cert, '-extfile', ext]);
  return { cert, key };
}

/**
 * etcd's /health over TLS with a client certificate: 'ok' once the member has
 * a leader, otherwise what went wrong. Plain node:https (etcdctl is not in the
 * etcd-server package the tests install).
 */
function health(url: string, tls: { ca: Buffer; cert: Buffer; key: Buffer }): Promise<string> {
  return new Promise((resolve) => {
    const req = https.get(`${url}/health`, { ...tls, timeout: 5_000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve(res.statusCode === 200 && /"health":\s*"true"/.test(body) ? 'ok' : `HTTP ${res.statusCode}: ${body}`));
    });
    req.on('timeout', () => req.destroy(new Error('no answer within 5 s')));
    req.on('error', (err) => resolve(err.message));
  });
}

/** One etcd member serving clients over TLS only, requiring client certificates signed by `ca`; resolves with its https URL once it answers. */
async function tlsMember(
  dir: string,
  ca: string,
  member: { cert: string; key: string },
  client: { cert: string; key: string },
): Promise<string> {
  const url = `https://127.0.0.1:${await freePort()}`;
  const peer = `http://127.0.0.1:${await freePort()}`;
  const child = spawn(
    ETCD_BINARY,
    [
      '--name',
      't1',
      '--data-dir',
      join(dir, 'etcd'),
      '--listen-client-urls',
      url,
      '--advertise-client-urls',
      url,
      '--listen-peer-urls',
      peer,
      '--initial-advertise-peer-urls',
      peer,
      '--initial-cluster',
      `t1=${peer}`,
      '--cert-file',
      member.cert,
      '--key-file',
      member.key,
      '--client-cert-auth',
      '--trusted-ca-file',
      ca,
      '--log-level',
      'warn',
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  children.push(child);
  const logs: string[] = [];
  child.stderr?.setEncoding('utf8');
  child.stderr?.on('data', (d: string) => logs.push(d));
  // Bounded, with room for a machine busy with two other test files (it once took over 20 s there).
  const tls = { ca: readFileSync(ca), cert: readFileSync(client.cert), key: readFileSync(client.key) };
  const deadline = Date.now() + 60_000;
  let lastProbe = '';
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null) break;
    const probe = await health(url, tls);
    if (probe === 'ok') return url;
    lastProbe = probe;
    await new Promise((r) => setTimeout(r, 200));
  }
  const state = child.exitCode !== null || child.signalCode !== null ? `exited (${child.exitCode ?? child.signalCode})` : 'still running';
  throw new Error(`the TLS etcd member did not come up (${state}); last probe: ${lastProbe}; its log:\n${logs.join('').slice(-3000)}`);
}

test.serial(
  'TLS to etcd: a member certificate the CA did not sign, no client certificate, or one the member does not trust: refused and named, with or without a view; the right files work',
  async (t) => {
    t.timeout(240_000);
    const dir = folder('mupdated-etcd-tls-');
    const ca = makeCa(dir, 'right-ca');
    const other = makeCa(dir, 'other-ca');
    const client = signedCert(dir, ca, 'client');
    const stranger = signedCert(dir, other, 'stranger');
    const endpoint = await tlsMember(dir, ca.cert, signedCert(dir, ca), client);
    const clientFlags = (c: { cert: string; key: string }) => ['--etcd-cert', c.cert, '--etcd-key', c.key];

    const data = folder('mupdated-tls-node-');
    addUser(data, { name: 'mupdateadmin', admin: true });
    const wrongCa = await masterMustRefuse(data, ['--etcd', endpoint, '--etcd-ca', other.cert, ...clientFlags(client)]);
    t.is(wrongCa.code, 1, showRun(wrongCa));
    t.true(
      wrongCa.stderr.includes(`TLS with etcd failed, so this is not an outage: ${endpoint}: the member's certificate is not trusted`),
      showRun(wrongCa),
    );
    t.regex(wrongCa.stderr, /other-ca\.pem/);

    const noClientCert = await masterMustRefuse(data, ['--etcd', endpoint, '--etcd-ca', ca.cert]);
    t.is(noClientCert.code, 1, showRun(noClientCert));
    t.true(noClientCert.stderr.includes(`${endpoint}: the member refused this client's certificate`), showRun(noClientCert));

    const strangerCert = await masterMustRefuse(data, ['--etcd', endpoint, '--etcd-ca', ca.cert, ...clientFlags(stranger)]);
    t.is(strangerCert.code, 1, showRun(strangerCert));
    t.true(strangerCert.stderr.includes(`${endpoint}: the member refused this client's certificate`), showRun(strangerCert));
    t.regex(strangerCert.stderr, /stranger\.pem/);

    const node = await startMupdated({ dataDir: data, args: ['--etcd', endpoint, '--etcd-ca', ca.cert, ...clientFlags(client)] });
    started.push(node);
    const c = await RawClient.login(node.port);
    t.is(await answer(c, 'A1', 'ACTIVATE', 'user.tls', 'srv1!p1', 'u\tlrs\t'), 'A1 OK "done"');
    c.close();
    await node.stop();

    // A view from that run is no reason to start with files that do not fit.
    const withView = await masterMustRefuse(data, ['--etcd', endpoint, '--etcd-ca', ca.cert, ...clientFlags(stranger)]);
    t.is(withView.code, 1, showRun(withView));
    t.regex(withView.stderr, /TLS with etcd failed/);
  },
);

test.serial('a prefix written by a newer cluster format: the node refuses to start and says which format', async (t) => {
  const prefix = '/t-format/';
  const bootstrap = await startMupdated({ args: ['--etcd', scope.etcd.etcdFlag, '--etcd-prefix', prefix] });
  started.push(bootstrap);
  await bootstrap.stop();
  const res = await fetch(`${scope.etcd.endpoints[0]}/v3/kv/put`, {
    method: 'POST',
    body: JSON.stringify({ key: Buffer.from(`${prefix}m/format`).toString('base64'), value: Buffer.from('99').toString('base64') }),
  });
  t.true(res.ok);

  const r = await masterMustRefuse(bootstrap.dataDir, ['--etcd', scope.etcd.etcdFlag, '--etcd-prefix', prefix]);
  t.is(r.code, 1, showRun(r));
  t.regex(r.stderr, /the etcd prefix \/t-format\/ holds a directory in cluster format 99, which this version of mupdated does not know/);
  const fresh = await masterMustRefuse(folder('mupdated-format-'), ['--etcd', scope.etcd.etcdFlag, '--etcd-prefix', prefix]);
  t.is(fresh.code, 1, showRun(fresh));
  t.regex(fresh.stderr, /cluster format 99/);
});
