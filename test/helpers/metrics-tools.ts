/**
 * Helpers for the metrics tests: read a server's metrics address from its
 * log, fetch its endpoints, run `promtool check metrics`, and run a real
 * Prometheus (Debian's `prometheus`) on loopback with a temp config.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir, type RunningMupdated } from './server.js';
import { sleep } from './slave-tools.js';

export interface HttpAnswer {
  status: number;
  body: string;
}

/** The metrics listener of a server started with `--metrics-listen 127.0.0.1:0`. */
export async function metricsPort(s: RunningMupdated): Promise<number> {
  const line = await s.waitForLog(/"msg":"metrics listening/);
  return (JSON.parse(line) as { port: number }).port;
}

export async function httpGet(port: number, path: string): Promise<HttpAnswer> {
  const res = await fetch(`http://127.0.0.1:${port}${path}`, { signal: AbortSignal.timeout(10_000) });
  return { status: res.status, body: await res.text() };
}

/** The value of one sample in Prometheus text (`name{labels}` exactly as printed), or undefined. */
export function sample(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

/** `promtool check metrics` on a /metrics body: its exit status and what it said. */
export function promtoolCheck(body: string): { status: number | null; output: string } {
  const r = spawnSync('promtool', ['check', 'metrics'], { input: body, encoding: 'utf8', timeout: 30_000 });
  return { status: r.status, output: `${r.stdout}${r.stderr}` };
}

export function prometheusInstalled(): boolean {
  return (
    spawnSync('prometheus', ['--version'], { encoding: 'utf8' }).status === 0 &&
    spawnSync('promtool', ['--version'], { encoding: 'utf8' }).status === 0
  );
}

async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as { port: number }).port;
  await new Promise((r) => srv.close(r));
  return port;
}

export interface RunningPrometheus {
  port: number;
  child: ChildProcess;
  output: string[];
  /** An instant query's result vector. */
  query(expr: string): Promise<Array<{ metric: Record<string, string>; value: [number, string] }>>;
  stop(): Promise<void>;
}

/** Starts Prometheus scraping each job's target every second; resolves once it answers /-/ready. */
export async function startPrometheus(targets: Record<string, number>, deadlineMs = 60_000): Promise<RunningPrometheus> {
  const dir = tempDir('mupdated-prom-');
  const jobs = Object.entries(targets)
    .map(([job, port]) => `  - job_name: ${job}\n    static_configs:\n      - targets: ['127.0.0.1:${port}']\n`)
    .join('');
  writeFileSync(
    join(dir, 'prometheus.yml'),
    `global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\nscrape_configs:\n${jobs}`,
  );
  const port = await freePort();
  const child = spawn(
    'prometheus',
    [`--config.file=${join(dir, 'prometheus.yml')}`, `--storage.tsdb.path=${join(dir, 'data')}`, `--web.listen-address=127.0.0.1:${port}`],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  const output: string[] = [];
  child.stdout.setEncoding('utf8').on('data', (d: string) => output.push(d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => output.push(d));
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(timer);
  };
  const deadline = Date.now() + deadlineMs;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`prometheus exited: ${output.join('')}`);
    try {
      if ((await httpGet(port, '/-/ready')).status === 200) break;
    } catch {
      /* not listening yet */
    }
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`prometheus not ready in ${deadlineMs} ms: ${output.join('')}`);
    }
    await sleep(200);
  }
  return {
    port,
    child,
    output,
    stop,
    async query(expr) {
      const r = await httpGet(port, `/api/v1/query?query=${encodeURIComponent(expr)}`);
      const parsed = JSON.parse(r.body) as {
        status: string;
        data?: { result: Array<{ metric: Record<string, string>; value: [number, string] }> };
      };
      if (parsed.status !== 'success' || !parsed.data) throw new Error(`query ${expr} failed: ${r.body}`);
      return parsed.data.result;
    },
  };
}
