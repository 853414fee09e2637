/**
 * The listening server: accepts connections up to the limits (all
 * connections, and those of one address not logged in yet), hands each to a
 * Session, and shuts down cleanly (in-flight commits finish first).
 */
import { createServer, type Server, type Socket } from 'node:net';
import type { SecureContext } from 'node:tls';
import type { HostPort } from '../host-port.js';
import { statusLine } from './wire/encoder.js';
import { Session, type SessionContext, type SessionSettings } from './session.js';
import { Admission, hostKey, type AdmissionLimits } from './admission.js';

export type ServerContext = Omit<SessionContext, 'ended' | 'admission'> & {
  maxConnections: number;
  admission: AdmissionLimits;
};

export class MupdateServer {
  private readonly sessions = new Set<Session>();
  private readonly server: Server;
  private stopping = false;
  private readonly admission: Admission;

  constructor(private readonly ctx: ServerContext) {
    this.admission = new Admission(ctx.admission);
    // Half-open: a client that shuts its side after its commands still gets their answers.
    this.server = createServer({ noDelay: true, allowHalfOpen: true }, (socket) => this.accept(socket));
    this.server.on('error', (err) => ctx.log.error({ err: err.message }, 'listener error'));
  }

  get connectionCount(): number {
    return this.sessions.size;
  }

  /** Open connections by state (noauth, auth, streaming, waiting_for_sync), for the metrics. */
  connectionsByState(): Map<string, number> {
    const counts = new Map<string, number>();
    for (const s of this.sessions) counts.set(s.phase, (counts.get(s.phase) ?? 0) + 1);
    return counts;
  }

  listen(at: HostPort): Promise<HostPort> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen({ host: at.host, port: at.port, backlog: 1024 }, () => {
        this.server.off('error', reject);
        const addr = this.server.address();
        const bound = typeof addr === 'object' && addr ? { host: addr.address, port: addr.port } : at;
        this.ctx.log.info({ host: bound.host, port: bound.port, role: this.ctx.role.kind }, 'listening');
        resolve(bound);
      });
    });
  }

  private accept(socket: Socket): void {
    socket.on('error', () => socket.destroy());
    if (this.stopping || this.sessions.size >= this.ctx.maxConnections) {
      this.ctx.log.warn({ peer: socket.remoteAddress, limit: this.ctx.maxConnections }, 'connection refused: limit reached');
      return this.refuse(socket, this.stopping ? 'Server shutting down' : 'Too many connections');
    }
    const host = hostKey(socket.remoteAddress);
    if (!this.admission.admit(host)) {
      this.ctx.log.warn(
        { peer: socket.remoteAddress, limit: this.ctx.admission.maxPendingPerHost },
        'connection refused: this address holds the most connections not logged in',
      );
      return this.refuse(socket, 'Too many connections from your address');
    }
    const session = new Session(socket, { ...this.ctx, admission: this.admission, ended: (s) => this.sessions.delete(s) }, host);
    this.sessions.add(session);
    session.start();
  }

  private refuse(socket: Socket, text: string): void {
    socket.end(statusLine(null, 'BYE', text));
    setTimeout(() => socket.destroy(), 5000).unref();
  }

  /**
   * Settings that change without a restart (SIGHUP): connections accepted from
   * now on use the new TLS context; limits read as a connection goes (at its
   * login, at each command) apply to open connections too. Nothing is dropped.
   */
  reconfigure(next: {
    settings: SessionSettings;
    tls: SecureContext | undefined;
    maxConnections: number;
    admission: AdmissionLimits;
  }): void {
    // Sessions share these objects with the server: changed in place, every one sees them.
    Object.assign(this.ctx.settings, next.settings);
    Object.assign(this.ctx.admission, next.admission);
    this.ctx.maxConnections = next.maxConnections;
    this.ctx.tls = next.tls;
  }

  /** Stops accepting, ends dumps, lets other commands in progress finish (their commits too), then closes every connection. */
  async close(graceMs = 10_000): Promise<void> {
    this.stopping = true;
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    // A dump is only a read: it ends now rather than hold the shutdown for a reader that may have stalled.
    for (const s of [...this.sessions]) if (s.dumping) s.bye('Server shutting down');
    const inFlight = [...this.sessions].map((s) => s.inFlight).filter((p): p is Promise<void> => p !== null);
    await Promise.race([Promise.allSettled(inFlight), new Promise((r) => setTimeout(r, graceMs).unref())]);
    for (const s of [...this.sessions]) s.bye('Server shutting down');
    await closed;
  }
}
