/**
 * Password check through a running saslauthd (for sites whose users live in
 * Cyrus SASL). Its socket protocol: four length-prefixed strings (login,
 * password, service, realm), answered by one length-prefixed "OK..." or "NO...".
 */
import { connect } from 'node:net';

function counted(value: Buffer): Buffer {
  const len = Buffer.alloc(2);
  len.writeUInt16BE(value.length);
  return Buffer.concat([len, value]);
}

export function saslauthdVerify(
  socketPath: string,
  user: string,
  password: Buffer,
  service: string,
  realm: string,
  timeoutMs = 10_000,
): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = connect(socketPath);
    const chunks: Buffer[] = [];
    let done = false;
    const finish = (ok: boolean) => {
      if (done) return;
      done = true;
      sock.destroy();
      resolve(ok);
    };
    sock.setTimeout(timeoutMs, () => finish(false));
    sock.on('error', () => finish(false));
    sock.on('connect', () => {
      sock.write(Buffer.concat([Buffer.from(user), password, Buffer.from(service), Buffer.from(realm)].map(counted)));
    });
    sock.on('data', (d) => {
      chunks.push(d);
      const all = Buffer.concat(chunks);
      if (all.length < 2) return;
      const len = all.readUInt16BE(0);
      if (all.length < 2 + len) return;
      finish(all.subarray(2, 4).toString('latin1') === 'OK');
    });
    sock.on('end', () => finish(false));
  });
}
