/**
 * The admin socket (`<data>/admin.sock`, mode 0600): JSON-line requests from
 * `mupdated conflicts` to the running server, so resolutions stream to
 * listeners like any other change. Local only; file permissions are the
 * access control.
 */
import { rmSync } from 'node:fs';
import { createServer, type Socket } from 'node:net';
import { join } from 'node:path';
import type { Logger } from '../log.js';
import { createPrivately, PRIVATE_SOCKET_UMASK } from '../store/private-files.js';
import type { DirectoryStore } from '../store/types.js';
import { handleAdminRequest, type AdminRequest } from './operations.js';
import { AdminRequestInvalid, parseAdminRequest } from './request.js';

const MAX_REQUEST = 64 * 1024;
/** A connection gets this long to send its request. */
const REQUEST_TIMEOUT_MS = 30_000;

export function adminSocketPath(dataDir: string): string {
  return join(dataDir, 'admin.sock');
}

/** The running admin socket. */
export interface AdminSocket {
  /** Stops listening, drops connections that have sent no request, and resolves once the others are answered. */
  close(): Promise<void>;
}

export async function startAdminSocket(dataDir: string, store: DirectoryStore, log: Logger): Promise<AdminSocket> {
  const path = adminSocketPath(dataDir);
  rmSync(path, { force: true });
  /** Connections that have not sent their request yet: a shutdown does not wait for them. */
  const idle = new Set<Socket>();
  // allowHalfOpen: a client that sends its request and shuts its side (`printf ... | nc -U`) still gets the answer.
  const server = createServer({ allowHalfOpen: true }, (sock) => {
    let buf = '';
    /** The connection's one request has been read (its answer may still be on its way). */
    let taken = false;
    idle.add(sock);
    sock.on('close', () => idle.delete(sock));
    // A connection that sends nothing would hold a shutdown forever.
    sock.setTimeout(REQUEST_TIMEOUT_MS, () => void (taken || sock.destroy()));
    const answer = (line: string) => void sock.end(`${line}\n`);
    const handle = (text: string) => {
      taken = true;
      idle.delete(sock);
      let req: AdminRequest;
      try {
        req = parseAdminRequest(JSON.parse(text));
      } catch (err) {
        const why = err instanceof AdminRequestInvalid ? `bad request: ${err.message}` : 'bad request';
        return answer(JSON.stringify({ ok: false, error: why }));
      }
      handleAdminRequest(req, store, dataDir, log).then(
        (res) => answer(JSON.stringify(res)),
        (err: Error) => answer(JSON.stringify({ ok: false, error: err.message })),
      );
    };
    sock.setEncoding('utf8');
    sock.on('error', () => sock.destroy());
    sock.on('data', (d: string) => {
      if (taken) return;
      buf += d;
      if (buf.length > MAX_REQUEST) return void sock.destroy();
      const nl = buf.indexOf('\n');
      if (nl < 0) return;
      const line = buf.slice(0, nl);
      buf = '';
      handle(line);
    });
    // One request per connection: an unterminated last line counts when the client shuts its side.
    sock.on('end', () => {
      if (taken) return;
      if (buf.trim() !== '') handle(buf);
      else sock.end();
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    // The socket file is created by listen() itself: born 0600, never briefly open to others.
    createPrivately(() => server.listen(path, () => resolve()), PRIVATE_SOCKET_UMASK);
  });
  return {
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const sock of idle) sock.destroy();
      }),
  };
}
