/**
 * The admin socket (`<data>/admin.sock`, mode 0600): JSON-line requests from
 * `mupdated conflicts` to the running server, so resolutions stream to
 * listeners like any other change. Local only; file permissions are the
 * access control.
 */
import { rmSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import type { Logger } from '../log.js';
import { createPrivately, PRIVATE_SOCKET_UMASK } from '../store/private-files.js';
import type { DirectoryStore } from '../store/types.js';
import { handleAdminRequest, type AdminRequest } from './operations.js';

const MAX_REQUEST = 64 * 1024;

export function adminSocketPath(dataDir: string): string {
  return join(dataDir, 'admin.sock');
}

export async function startAdminSocket(dataDir: string, store: DirectoryStore, log: Logger): Promise<Server> {
  const path = adminSocketPath(dataDir);
  rmSync(path, { force: true });
  const server = createServer((sock) => {
    let buf = '';
    sock.setEncoding('utf8');
    sock.on('error', () => sock.destroy());
    sock.on('data', (d: string) => {
      buf += d;
      if (buf.length > MAX_REQUEST) return void sock.destroy();
      const nl = buf.indexOf('\n');
      if (nl < 0) return;
      const line = buf.slice(0, nl);
      buf = '';
      let req: AdminRequest;
      try {
        req = JSON.parse(line) as AdminRequest;
      } catch {
        return void sock.end(`${JSON.stringify({ ok: false, error: 'bad request' })}\n`);
      }
      handleAdminRequest(req, store, dataDir, log).then(
        (res) => sock.end(`${JSON.stringify(res)}\n`),
        (err: Error) => sock.end(`${JSON.stringify({ ok: false, error: err.message })}\n`),
      );
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    // The socket file is created by listen() itself: born 0600, never briefly open to others.
    createPrivately(() => server.listen(path, () => resolve()), PRIVATE_SOCKET_UMASK);
  });
  return server;
}
