/**
 * systemd's readiness protocol (Type=notify): "READY=1" on the datagram
 * socket named by $NOTIFY_SOCKET. Node cannot send on a unix datagram
 * socket, so systemd's own `systemd-notify` sends it for us; it waits until
 * the message has been taken (its barrier), and the units allow messages
 * from any process of the service (NotifyAccess=all).
 */
import { execFile } from 'node:child_process';
import type { Logger } from '../log.js';

export function notifySystemdReady(log: Logger): Promise<void> {
  if (!process.env['NOTIFY_SOCKET']) return Promise.resolve();
  return new Promise((resolve) => {
    execFile('systemd-notify', ['--ready', `--pid=${process.pid}`], { timeout: 10_000 }, (err, _out, stderr) => {
      if (err) {
        log.error(
          { err: err.message, stderr: stderr.trim() },
          'could not tell systemd the server is ready: check that systemd-notify is installed; systemd will time the start out',
        );
      } else {
        log.info('told systemd the server is ready');
      }
      resolve();
    });
  });
}
