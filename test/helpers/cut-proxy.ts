/**
 * A TCP pass-through that can cut a connection in the middle of what the
 * server sends: armed with a byte count, the next connection is dropped (both
 * sides) once that many bytes came from the server; later connections pass.
 * For clients that reconnect on their own (etcd's gRPC client).
 */
import { connect, createServer, type Server, type Socket } from 'node:net';

export class CutProxy {
  private cutAfter: number | null = null;
  private readonly sockets = new Set<Socket>();
  /** Connections cut so far. */
  cuts = 0;

  private constructor(
    private readonly server: Server,
    readonly port: number,
  ) {}

  static start(targetPort: number): Promise<CutProxy> {
    return new Promise((resolve, reject) => {
      let proxy: CutProxy | null = null;
      const server = createServer((client) => (proxy ? proxy.relay(client, targetPort) : client.destroy()));
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => {
        const address = server.address();
        if (address === null || typeof address === 'string') return reject(new Error('no proxy port'));
        resolve((proxy = new CutProxy(server, address.port)));
      });
    });
  }

  /** The next connection made is cut once the server has sent it `bytes` bytes. */
  cutNextAfter(bytes: number): void {
    this.cutAfter = bytes;
  }

  private relay(client: Socket, targetPort: number): void {
    const upstream = connect({ host: '127.0.0.1', port: targetPort });
    this.sockets.add(client);
    this.sockets.add(upstream);
    const limit = this.cutAfter;
    this.cutAfter = null;
    let fromServer = 0;
    const end = () => {
      client.destroy();
      upstream.destroy();
      this.sockets.delete(client);
      this.sockets.delete(upstream);
    };
    client.on('data', (d: Buffer) => upstream.write(d));
    upstream.on('data', (d: Buffer) => {
      if (limit !== null && fromServer + d.length >= limit) {
        client.write(d.subarray(0, Math.max(0, limit - fromServer)));
        this.cuts++;
        end();
        return;
      }
      fromServer += d.length;
      client.write(d);
    });
    for (const s of [client, upstream]) {
      s.on('close', end);
      s.on('error', end);
    }
  }

  async stop(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((r) => this.server.close(() => r()));
  }
}
