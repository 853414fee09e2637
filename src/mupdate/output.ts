/**
 * A connection's outgoing bytes: answers written in one turn leave in one
 * socket write, and the unsent backlog is known, so the session can stop
 * reading commands while a client does not read its answers.
 */
import type { Socket } from 'node:net';

/**
 * Unsent answer bytes above which a connection's commands are not parsed
 * until the socket has drained. A client that pipelines FINDs and never
 * reads holds at most about this much (plus one command's answer) in the
 * server; its further input waits in the kernel.
 */
export const ANSWER_BACKLOG_BYTES = 256 * 1024;

export class ConnectionOutput {
  /** Bytes written this turn, not yet handed to the socket. */
  private out: Buffer[] = [];
  private outBytes = 0;
  private flushQueued = false;
  private isClosed = false;
  private readonly drainWaiters: Array<() => void> = [];
  /** The socket whose 'drain' events this listens to. */
  private drainSource: Socket | null = null;

  /** Called whenever bytes leave for the client or the socket drains (a dump's stall watch). */
  onProgress: () => void = () => {};

  constructor(private socket: Socket) {}

  /** Sends through this socket from now on (the TCP socket, then the TLS socket after STARTTLS). */
  useSocket(socket: Socket): void {
    this.socket = socket;
    if (this.drainSource === socket) return;
    this.drainSource = socket;
    socket.on('drain', () => {
      this.onProgress();
      this.wakeDrainWaiters();
    });
  }

  get closed(): boolean {
    return this.isClosed;
  }

  /** Bytes written but not yet sent. */
  get backlog(): number {
    return this.socket.writableLength + this.outBytes;
  }

  /**
   * Queues bytes for the client. Everything written in one turn (the answers
   * to a chunk of pipelined commands, a group commit's OKs) leaves in one
   * socket write: a syscall per answer line was a third of the server's time.
   */
  write(bytes: Buffer): void {
    if (this.isClosed) return;
    this.out.push(bytes);
    this.outBytes += bytes.length;
    if (!this.flushQueued) {
      this.flushQueued = true;
      process.nextTick(this.flushBound);
    }
  }

  /** Writes bytes the caller wants back: `release` runs once they have left (not at all if the write failed). */
  writeOwned(bytes: Buffer, release: () => void): void {
    if (this.isClosed) return;
    this.onProgress();
    this.flush();
    this.socket.write(bytes, (err) => {
      if (!err) release();
    });
  }

  private readonly flushBound = (): void => this.flush();

  /** Hands the queued bytes to the socket now. */
  flush(): void {
    this.flushQueued = false;
    if (this.out.length === 0) return;
    const data = this.out.length === 1 ? this.out[0] : Buffer.concat(this.out, this.outBytes);
    this.out = [];
    this.outBytes = 0;
    this.onProgress();
    if (!this.isClosed) this.socket.write(data);
  }

  /** Resolves when the socket has sent everything (or the connection is gone). */
  drained(): Promise<void> {
    this.flush();
    if (this.isClosed || this.socket.writableLength === 0) return Promise.resolve();
    return new Promise((resolve) => this.drainWaiters.push(resolve));
  }

  /** Whether the unsent answers are over the bound at which parsing stops. */
  get overBound(): boolean {
    return this.backlog > ANSWER_BACKLOG_BYTES;
  }

  private wakeDrainWaiters(): void {
    for (const w of this.drainWaiters.splice(0)) w();
  }

  /** The connection is gone: drop what is queued and let every waiter go. */
  close(): void {
    this.isClosed = true;
    this.out = [];
    this.outBytes = 0;
    this.wakeDrainWaiters();
  }
}
