/**
 * Issue 13 point 2: `metrics_listen` serves /metrics (Prometheus text),
 * /healthz and /readyz. A real Prometheus scrapes a running master and
 * slave; promtool checks the output; /readyz follows a slave's first sync.
 */
import test, { type ExecutionContext } from 'ava';
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { command, login, q, readResponse } from './helpers/directory.js';
import { httpGet, metricsPort, prometheusInstalled, promtoolCheck, sample, startPrometheus } from './helpers/metrics-tools.js';
import { PROJECT_ROOT, startMupdated, tempDir, type RunningMupdated } from './helpers/server.js';
import { sleep, startSlave, waitUntil } from './helpers/slave-tools.js';
import { SlaveLag } from '../src/metrics/slave-lag.js';
import { createServerMetrics } from '../src/metrics/registry.js';

const running: Array<{ stop(): Promise<unknown> }> = [];
test.after.always(async () => {
  for (const r of running.reverse()) await r.stop();
});

type Impl = (t: ExecutionContext) => Promise<void>;
/** Needs Debian's prometheus (and promtool): a failure when CI is set, else skipped with the reason. */
function withPrometheus(title: string, impl: Impl): void {
  if (prometheusInstalled()) return test.serial(title, impl);
  const reason = 'prometheus/promtool not installed (apt-get install prometheus)';
  if (process.env.CI)
    return test.serial(title, (t) => {
      t.fail(`${reason}; required when CI is set`);
    });
  test.serial.skip(`${title} [skipped: ${reason}]`, impl);
}

async function startMaster(args: string[] = ['--metrics-listen', '127.0.0.1:0']): Promise<RunningMupdated> {
  const m = await startMupdated({ args });
  running.push(m);
  return m;
}

async function readyzOf(port: number): Promise<number> {
  return (await httpGet(port, '/readyz')).status;
}

withPrometheus(
  'metrics: a real Prometheus scrapes a master and a slave (up == 1, a non-zero commands counter after traffic); promtool check metrics passes on both',
  async (t) => {
    const master = await startMaster();
    const masterMetrics = await metricsPort(master);
    const slave = await startSlave({ master: master.port, args: ['--metrics-listen', '127.0.0.1:0'] });
    running.push(slave);
    const slaveMetrics = await metricsPort(slave);
    await waitUntil(async () => (await readyzOf(slaveMetrics)) === 200, 30_000, 'the slave to be ready');

    // Traffic: writes, a FIND, a refused write, a failed login.
    const c = await login(master.port);
    for (let i = 0; i < 5; i++) {
      t.regex((await command(c, `W${i}`, `ACTIVATE ${q(`user.m${i}`)} "b1!p" "m${i} lrs"`)).status, /OK/);
    }
    // Pipelined: the FIND is answered ahead of the DELETE's commit, yet each answer is counted on its own command.
    c.send('D1 DELETE "user.nobody"\r\nF1 FIND "user.m1"\r\n');
    t.regex((await readResponse(c, 'D1')).status, /NO/);
    t.regex((await readResponse(c, 'F1')).status, /OK/);
    c.close();
    await t.throwsAsync(login(master.port, 'mupdateadmin', 'wrong'));

    const body = (await httpGet(masterMetrics, '/metrics')).body;
    t.is(sample(body, 'mupdated_commands_total{command="ACTIVATE",result="OK"}'), 5);
    t.is(sample(body, 'mupdated_commands_total{command="FIND",result="OK"}'), 1);
    t.is(sample(body, 'mupdated_commands_total{command="DELETE",result="NO"}'), 1);
    t.is(sample(body, 'mupdated_failed_logins_total'), 1);
    t.true((sample(body, 'mupdated_commit_duration_seconds_count') ?? 0) >= 5);
    t.true((sample(body, 'mupdated_commit_batch_size_count') ?? 0) >= 1);
    t.is(sample(body, 'mupdated_stream_listeners'), 1, "the slave's UPDATE stream");
    t.is(sample(body, 'mupdated_connections{state="streaming"}'), 1);
    t.is(sample(body, 'mupdated_dump_duration_seconds_count{command="UPDATE"}'), 1, "the slave's initial dump");
    t.is(sample(body, 'mupdated_dumps_in_progress'), 0);
    t.is(sample(body, 'mupdated_open_conflicts'), 0);
    t.is(sample(body, 'mupdated_info{role="master"}'), 1);
    const masterCheck = promtoolCheck(body);
    t.is(masterCheck.status, 0, masterCheck.output);

    const slaveBody = (await httpGet(slaveMetrics, '/metrics')).body;
    t.is(sample(slaveBody, 'mupdated_slave_streaming'), 1);
    t.is(sample(slaveBody, 'mupdated_slave_synced'), 1);
    t.not(sample(slaveBody, 'mupdated_slave_lag_seconds'), undefined);
    t.not(sample(slaveBody, 'mupdated_slave_lag_changes'), undefined);
    const slaveCheck = promtoolCheck(slaveBody);
    t.is(slaveCheck.status, 0, slaveCheck.output);
    t.is((await httpGet(masterMetrics, '/healthz')).status, 200);
    t.is((await httpGet(masterMetrics, '/nothing')).status, 404);

    const prom = await startPrometheus({ master: masterMetrics, slave: slaveMetrics });
    running.push(prom);
    let up: Array<{ metric: Record<string, string>; value: [number, string] }> = [];
    let commands: typeof up = [];
    await waitUntil(
      async () => {
        up = await prom.query('up == 1');
        commands = await prom.query('sum(mupdated_commands_total{job="master"}) > 0');
        return up.length === 2 && commands.length === 1;
      },
      60_000,
      'Prometheus to scrape both servers',
      500,
    );
    t.deepEqual(up.map((r) => r.metric['job']).sort(), ['master', 'slave']);
    t.true(Number(commands[0].value[1]) >= 8);
    const streaming = await prom.query('mupdated_slave_streaming{job="slave"}');
    t.is(streaming[0]?.value[1], '1');
  },
);

test.serial(
  "metrics: a slave's /readyz is 503 until its first sync is done and while it does not stream; /healthz is 200 throughout",
  async (t) => {
    // A master whose port is then free: the slave cannot reach it until it starts again there.
    const first = await startMaster([]);
    const masterPort = first.port;
    await first.stop();
    const slave = await startSlave({ master: masterPort, args: ['--metrics-listen', '127.0.0.1:0'] });
    running.push(slave);
    const port = await metricsPort(slave);
    await sleep(1500);
    const notReady = await httpGet(port, '/readyz');
    t.is(notReady.status, 503);
    t.regex(notReady.body, /first sync/);
    t.is((await httpGet(port, '/healthz')).status, 200);
    t.is(sample((await httpGet(port, '/metrics')).body, 'mupdated_slave_synced'), 0);

    const master = await startMupdated({ dataDir: first.dataDir, args: ['--listen', `127.0.0.1:${masterPort}`] });
    running.push(master);
    await waitUntil(async () => (await readyzOf(port)) === 200, 30_000, 'the slave to be ready after its first sync');
    await master.stop();
    await waitUntil(async () => (await readyzOf(port)) === 503, 30_000, 'the slave to be not ready once its master is gone');
    t.regex((await httpGet(port, '/readyz')).body, /not streaming/);
    t.is((await httpGet(port, '/healthz')).status, 200);
  },
);

test.serial(
  'metrics: nothing is served unless metrics_listen is set; the config key works like the flag; a master is ready (/readyz, the log) once its dump worker is up',
  async (t) => {
    const plain = await startMaster([]);
    t.false(plain.logs.some((l) => l.includes('metrics listening')));
    await plain.stop();
    const configured = await startMupdated({ config: { metrics_listen: '127.0.0.1:0' } });
    running.push(configured);
    const port = await metricsPort(configured);
    await configured.waitForLog(/"msg":"ready to serve"/);
    t.is((await httpGet(port, '/readyz')).status, 200, 'a master is ready once it listens and its dump worker is up');
    const at = (msg: string) => configured.logs.findIndex((l) => l.includes(`"msg":"${msg}"`));
    t.true(at('listening') >= 0 && at('listening') < at('ready to serve'), 'it listens first');
    t.true(
      at('dump worker started') >= 0 && at('dump worker started') < at('ready to serve'),
      'and says it is ready once the dump worker is up',
    );
  },
);

test('slave lag: behind from start until streaming, then by what was received and not yet applied', async (t) => {
  let now = 1_000_000;
  const lag = new SlaveLag(() => now);
  now += 5_000;
  t.deepEqual(lag.snapshot(), { changes: 0, seconds: 5 });
  lag.state(true);
  t.deepEqual(lag.snapshot(), { changes: 0, seconds: 0 });
  let finish!: () => void;
  const applying = lag.track(
    3,
    () =>
      new Promise<void>((r) => {
        finish = r;
      }),
    () => false,
  );
  now += 2_000;
  t.deepEqual(lag.snapshot(), { changes: 3, seconds: 2 });
  finish();
  await applying;
  t.deepEqual(lag.snapshot(), { changes: 0, seconds: 0 });
  lag.state(false);
  now += 7_000;
  t.deepEqual(lag.snapshot(), { changes: 0, seconds: 7 });
});

withPrometheus("metrics: the README's alert rules pass promtool check rules and use only metrics the server exports", async (t) => {
  const readme = readFileSync(join(PROJECT_ROOT, 'README.md'), 'utf8');
  const rules = /### Alerts worth having\n\n```yaml\n([\s\S]*?)```/.exec(readme)?.[1];
  if (rules === undefined) return t.fail('no alert rules in the README');
  const file = join(tempDir('mupdated-rules-'), 'rules.yml');
  writeFileSync(file, rules);
  const r = spawnSync('promtool', ['check', 'rules', file], { encoding: 'utf8', timeout: 30_000 });
  t.is(r.status, 0, `${r.stdout}${r.stderr}`);
  // Every series the rules name, from a registry with the slave and cluster gauges too.
  const { registry } = createServerMetrics({
    role: 'slave',
    connectionsByState: () => new Map(),
    openConflicts: () => 0,
    slave: () => ({ streaming: true, synced: true, lagChanges: 0, lagSeconds: 0 }),
    etcd: () => Promise.resolve({ reachable: true, viewLagRevisions: 0 }),
  });
  const exported = await registry.metrics();
  const names = new Set(rules.match(/mupdated_[a-z_]+/g));
  t.true(names.size >= 8);
  for (const name of names) {
    t.true(exported.includes(`# TYPE ${name.replace(/_bucket$/, '')} `), `${name} is exported`);
  }
});

test('while a master shuts down (a client still connected, ignoring its BYE) /readyz answers 503 "shutting down"', async (t) => {
  const s = await startMupdated({ args: ['--metrics-listen', '127.0.0.1:0'] });
  running.push(s);
  const port = await metricsPort(s);
  await waitUntil(async () => (await readyzOf(port)) === 200, 10_000, 'ready');
  // Half-open allowed and never ended from this side: the server waits for it (up to its 10 s grace).
  const lingering = connect({ host: '127.0.0.1', port: s.port, allowHalfOpen: true });
  await new Promise<void>((resolve) => lingering.once('data', () => resolve()));
  lingering.on('error', () => {});
  s.child.kill('SIGTERM');
  let answer = { status: 0, body: '' };
  await waitUntil(
    async () => {
      answer = await httpGet(port, '/readyz').catch(() => ({ status: -1, body: 'no answer' }));
      return answer.status !== 200;
    },
    8_000,
    '/readyz to stop saying ready',
  );
  t.is(answer.status, 503);
  t.regex(answer.body, /shutting down/);
  lingering.destroy();
  // Its own end (another SIGTERM would stop it at once).
  const code = await new Promise<number | null>((resolve) =>
    s.child.exitCode !== null ? resolve(s.child.exitCode) : s.child.once('exit', (c) => resolve(c)),
  );
  t.is(code, 0);
});
