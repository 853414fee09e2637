/**
 * The frontend's kick socket (Cyrus's `<configdirectory>/socket/mupdate.target`):
 * a frontend imapd connects after a lookup miss and after every mailbox
 * change it proxies, and blocks reading. As Cyrus's slave does, each
 * connection makes the slave flush with its master (NOOP), apply what that
 * brings (here: also to the frontend's database), then write `ok` and close.
 * While the slave is cut off from its master a kick waits for the next sync
 * (at most FLUSH_TIMEOUT_MS): its client has just changed the master and
 * must find the change here. A kick whose rows could not be written gets no `ok`.
 *
 * Many kicks at once share one flush: a kick joins the flush that has not
 * started yet, or else starts one after the flush in flight (which may have
 * asked the master before the kicking client's change committed).
 */
import { chmodSync, chownSync, existsSync, lstatSync, statSync, unlinkSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { dirname } from 'node:path';
import type { Logger } from '../log.js';

/** Longest wait for the master's answer before a kick is answered with what we have. */
const FLUSH_TIMEOUT_MS = 30_000;
/** A kicker that has been answered but does not close is dropped after this long. */
const SOCKET_IDLE_MS = 60_000;

export class KickSocketError extends Error {}

export interface KickOptions {
  path: string;
  /** NOOP the master and apply what it brings to the local copy (after the next sync, while the link is down). */
  syncWithMaster: () => Promise<void>;
  /** Write what the local copy has applied to the frontend's database; false if the file could not be written. */
  flushFrontend: () => boolean;
  log: Logger;
}

export class KickSocket {
  private current: Promise<boolean> | null = null;
  private queued: Promise<boolean> | null = null;
  /** Flushes started (for status and tests). */
  flushes = 0;
  kicks = 0;

  private constructor(
    private readonly server: Server,
    private readonly opts: KickOptions,
  ) {}

  /**
   * Listens on the socket path (a stale socket file left by a crash is
   * replaced; anything else there is refused). The socket is 0600 and, when
   * we run as root, owned by the owner of its folder (the Cyrus user).
   */
  static async listen(opts: KickOptions): Promise<KickSocket> {
    if (existsSync(opts.path)) {
      if (!lstatSync(opts.path).isSocket()) throw new KickSocketError(`${opts.path} exists and is not a socket`);
      unlinkSync(opts.path);
    }
    const server = createServer({ allowHalfOpen: false });
    const kick = new KickSocket(server, opts);
    server.on('connection', (socket) => kick.onConnection(socket));
    await new Promise<void>((resolve, reject) => {
      server.once('error', (err) => reject(new KickSocketError(`cannot listen on ${opts.path}: ${err.message}`)));
      server.listen(opts.path, () => resolve());
    });
    server.on('error', (err) => opts.log.error({ err: err.message }, 'kick socket error'));
    chmodSync(opts.path, 0o600);
    if (process.getuid?.() === 0) {
      const folder = statSync(dirname(opts.path));
      chownSync(opts.path, folder.uid, folder.gid);
    }
    opts.log.info({ path: opts.path }, 'kick socket listening');
    return kick;
  }

  private onConnection(socket: Socket): void {
    this.kicks++;
    this.opts.log.debug({ kicks: this.kicks }, 'kick received');
    // The kicker sends nothing; anything it sends is ignored (never buffered).
    socket.on('data', () => {});
    socket.on('error', () => {});
    socket.setTimeout(FLUSH_TIMEOUT_MS + SOCKET_IDLE_MS, () => socket.destroy());
    void this.kick().then((written) => {
      // Without the rows in the file an `ok` would send the frontend to look for what is not there.
      if (!socket.destroyed) socket.end(written ? 'ok' : '');
      this.opts.log.debug({ kicks: this.kicks, flushes: this.flushes, written }, 'kick answered');
    });
  }

  /** One flush with the master for this kick, shared with every kick that joins it; false if the database could not be written. */
  kick(): Promise<boolean> {
    if (this.queued) return this.queued;
    if (!this.current) return this.start();
    this.queued = this.current.then(() => {
      this.queued = null;
      return this.start();
    });
    return this.queued;
  }

  private start(): Promise<boolean> {
    const round = this.flush().finally(() => {
      if (this.current === round) this.current = null;
    });
    this.current = round;
    return round;
  }

  private async flush(): Promise<boolean> {
    this.flushes++;
    let timer: NodeJS.Timeout | undefined;
    try {
      const timedOut = await Promise.race([
        this.opts.syncWithMaster().then(() => false),
        new Promise<boolean>((resolve) => {
          timer = setTimeout(() => resolve(true), FLUSH_TIMEOUT_MS);
        }),
      ]);
      if (timedOut) this.opts.log.warn('kick: the master did not answer the NOOP in time; answering with the copy we have');
    } catch (err) {
      this.opts.log.warn({ err: (err as Error).message }, 'kick: could not flush with the master');
    } finally {
      clearTimeout(timer);
    }
    try {
      if (this.opts.flushFrontend()) return true;
      this.opts.log.error({}, 'kick: could not write the frontend database; the kicker gets no ok');
    } catch (err) {
      this.opts.log.error({ err: (err as Error).message }, 'kick: could not write the frontend database; the kicker gets no ok');
    }
    return false;
  }

  async close(): Promise<void> {
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
    await this.current;
    await this.queued;
  }
}
