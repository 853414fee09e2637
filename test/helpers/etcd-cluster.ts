/**
 * A real etcd cluster for tests: each member is its own `etcd` process
 * (Debian etcd-server) with its own temp folder and loopback ports, stopped
 * or killed by its own PID.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { basename, join } from 'node:path';
import { freePort } from './ports.js';
import { removeDir, tempDir } from './server.js';

export const ETCD_BINARY = process.env.ETCD_BINARY ?? 'etcd';

export interface EtcdMember {
  name: string;
  clientUrl: string;
  peerUrl: string;
  dataDir: string;
  child: ChildProcess | null;
  logs: string[];
}

export class EtcdCluster {
  private constructor(
    readonly members: EtcdMember[],
    private readonly root: string,
    private readonly initialCluster: string,
  ) {}

  /** Starts `size` members and waits until the cluster has a leader and takes writes. */
  static async start(size = 3): Promise<EtcdCluster> {
    const root = tempDir('mupdated-etcd-');
    const members: EtcdMember[] = [];
    for (let i = 0; i < size; i++) {
      const clientPort = await freePort();
      const peerPort = await freePort();
      members.push({
        name: `m${i + 1}`,
        clientUrl: `http://127.0.0.1:${clientPort}`,
        peerUrl: `http://127.0.0.1:${peerPort}`,
        dataDir: join(root, `m${i + 1}`),
        child: null,
        logs: [],
      });
    }
    const initialCluster = members.map((m) => `${m.name}=${m.peerUrl}`).join(',');
    const cluster = new EtcdCluster(members, root, initialCluster);
    for (const m of members) cluster.spawnMember(m, 'new');
    await cluster.waitHealthy();
    return cluster;
  }

  get endpoints(): string[] {
    return this.members.map((m) => m.clientUrl);
  }

  /** The `--etcd` value for mupdated. */
  get etcdFlag(): string {
    return this.endpoints.join(',');
  }

  private spawnMember(m: EtcdMember, state: 'new' | 'existing'): void {
    const args = [
      '--name',
      m.name,
      '--data-dir',
      m.dataDir,
      '--listen-client-urls',
      m.clientUrl,
      '--advertise-client-urls',
      m.clientUrl,
      '--listen-peer-urls',
      m.peerUrl,
      '--initial-advertise-peer-urls',
      m.peerUrl,
      '--initial-cluster',
      this.initialCluster,
      '--initial-cluster-state',
      state,
      // Unique per cluster, so members of two clusters running at once never join each other.
      '--initial-cluster-token',
      basename(this.root),
      // Short Raft timers: failover in tests within a second.
      '--heartbeat-interval',
      '50',
      '--election-timeout',
      '500',
      '--logger',
      'zap',
      '--log-level',
      'warn',
    ];
    const child = spawn(ETCD_BINARY, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (d: string) => {
      m.logs.push(d);
      if (m.logs.length > 200) m.logs.shift();
    });
    child.on('error', (err) => m.logs.push(`spawn failed: ${err.message}`));
    m.child = child;
  }

  pid(i: number): number {
    const pid = this.members[i].child?.pid;
    if (pid === undefined) throw new Error(`member ${i} is not running`);
    return pid;
  }

  /** Kills member i with a signal sent to its own PID, and waits for it to exit. */
  async kill(i: number, signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const m = this.members[i];
    const child = m.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((r) => child.once('exit', () => r()));
    process.kill(child.pid!, signal);
    await exited;
    m.child = null;
  }

  /** Starts member i again on its old folder and ports. */
  restart(i: number): void {
    const m = this.members[i];
    if (m.child) throw new Error(`member ${m.name} is running`);
    this.spawnMember(m, 'existing');
  }

  /** Asks each running member for its status (etcd's HTTP /v3 gateway): the leader's index, or -1. */
  async leader(): Promise<number> {
    for (let i = 0; i < this.members.length; i++) {
      const m = this.members[i];
      if (!m.child) continue;
      try {
        const res = await fetch(`${m.clientUrl}/v3/maintenance/status`, { method: 'POST', body: '{}', signal: AbortSignal.timeout(1_000) });
        const body = (await res.json()) as { header?: { member_id?: string }; leader?: string };
        if (body.leader && body.header?.member_id === body.leader) return i;
      } catch {
        // not answering: try the next
      }
    }
    return -1;
  }

  /** Waits until a write through the HTTP gateway succeeds (the cluster has a leader and a quorum). */
  async waitHealthy(timeoutMs = 20_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    let last = '';
    while (Date.now() < deadline) {
      for (const m of this.members) {
        if (!m.child) continue;
        try {
          const res = await fetch(`${m.clientUrl}/v3/kv/put`, {
            method: 'POST',
            body: JSON.stringify({ key: Buffer.from('/health-probe').toString('base64'), value: '' }),
            signal: AbortSignal.timeout(1_000),
          });
          if (res.ok) return;
          last = `${res.status} ${await res.text()}`;
        } catch (err) {
          last = (err as Error).message;
        }
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(
      `etcd cluster not healthy within ${timeoutMs} ms (${last}); logs:\n${this.members.map((m) => m.logs.join('')).join('\n')}`,
    );
  }

  async stop(): Promise<void> {
    for (let i = 0; i < this.members.length; i++) await this.kill(i, 'SIGTERM');
    removeDir(this.root);
  }
}
