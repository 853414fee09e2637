/** Propagation: from a writer's OK to the change's arrival at 10 streaming listeners. */
import { MupdateConn } from './client.js';
import { expectOk, latencySummary, openMany, sleep, WrongAnswer } from './measure.js';
import { ADMIN, PASSWORD } from './servers.js';
import type { Context, Measurement } from './workload-kit.js';

/**
 * 10 listeners stream (`UPDATE "benchprop"`: only that server's entries, so
 * each initial dump is empty); a writer ACTIVATEs one entry there every
 * interval; each listener's latency is from the writer's OK to the line's
 * arrival (`ports`: a cluster's writer and listeners on two nodes). No NOOPs (Cyrus would flush).
 */
export async function propagation(ctx: Context, ports = { listeners: ctx.server.port, writer: ctx.server.port }): Promise<Measurement> {
  const { propagationSamples: samples, propagationIntervalMs: interval } = ctx.sizes;
  const listeners = await openMany(ports.listeners, 10, ADMIN, PASSWORD);
  const writer = await MupdateConn.login(ports.writer, ADMIN, PASSWORD);
  const okAt = new Map<string, number>();
  const received = listeners.map(() => new Map<string, number>());
  const wrong: string[] = [];
  let arrivedBeforeOk = 0;
  try {
    listeners.forEach((l, i) => {
      l.onStream = (d) => {
        const now = performance.now();
        const name = d.args[0] ?? '';
        if (
          d.kind !== 'MAILBOX' ||
          d.args[1] !== 'benchprop!default' ||
          d.args[2] !== `bprop\tlrswipkxtecdan\t` ||
          !/^user\.bprop\.m\d+$/.test(name)
        ) {
          wrong.push(`listener ${i}: ${d.kind} ${JSON.stringify(d.args)}`);
          return;
        }
        if (!received[i].has(name)) received[i].set(name, now);
      };
    });
    const setupStart = performance.now();
    const starts = await Promise.all(
      listeners.map((l) =>
        l.command('UPDATE "benchprop"', () => {
          wrong.push('initial dump not empty');
        }),
      ),
    );
    for (const s of starts) expectOk(s, 'streaming starts', 'UPDATE "benchprop"');
    const setupMs = performance.now() - setupStart;
    const t0 = performance.now();
    for (let i = 0; i < samples && performance.now() - t0 < samples * interval + 60_000; i++) {
      const name = `user.bprop.m${i}`;
      const next = t0 + (i + 1) * interval;
      const r = await writer.activate(name, 'benchprop!default', 'bprop\tlrswipkxtecdan\t');
      okAt.set(name, performance.now());
      expectOk(r, 'done', `ACTIVATE ${name}`);
      const wait = next - performance.now();
      if (wait > 0) await sleep(wait);
    }
    // Cyrus flushes every 5 s: wait up to 8 s after the last OK for everything.
    const deadline = performance.now() + 8_000;
    while (performance.now() < deadline && received.some((m) => m.size < okAt.size)) await sleep(20);
    const latencies: number[] = [];
    let missing = 0;
    for (const m of received) {
      for (const [name, ok] of okAt) {
        const at = m.get(name);
        if (at === undefined) {
          missing++;
          continue;
        }
        if (at < ok) arrivedBeforeOk++;
        latencies.push(Math.max(0, at - ok));
      }
    }
    if (wrong.length) throw new WrongAnswer(`unexpected stream lines: ${wrong.slice(0, 3).join('; ')}`);
    if (missing) throw new WrongAnswer(`${missing} of ${okAt.size * listeners.length} changes never reached their listener within 8 s`);
    const lat = latencySummary(latencies);
    return {
      value: lat.p99,
      correct: true,
      details: {
        listeners: listeners.length,
        writes: okAt.size,
        intervalMs: interval,
        ...lat,
        arrivedBeforeOk,
        listenerSetupMs: Math.round(setupMs),
      },
    };
  } finally {
    for (const l of listeners) l.destroy();
    writer.destroy();
  }
}
