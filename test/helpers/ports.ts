/**
 * Loopback ports a test names itself: on a command line (Cyrus, etcd, a
 * restart of mupdated on the port a client keeps dialling) or as a port where
 * nothing must listen.
 *
 * Why not "bind port 0, read it, close it": that port comes from the kernel's
 * ephemeral range, so between the close and the later bind any other process
 * on the machine (another test file running in parallel, its servers on
 * `127.0.0.1:0`, its outgoing connections) may be given the same number. A
 * Cyrus slave or `mupdated slave` that redials a restarting master's port then
 * logs in to the other file's server (every test server knows the same
 * `mupdateadmin` password) and copies its directory; the restart itself fails
 * with EADDRINUSE. So these ports come from below the ephemeral range, which
 * the kernel never hands out by itself, and each is claimed with a file
 * created exclusively in a folder shared by every test process on the
 * machine, so two files never get the same number. Claims are removed when
 * the process exits.
 */
import { randomInt } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { alive } from './processes.js';

const CLAIMS = join(tmpdir(), 'mupdated-test-ports');
const FIRST_PORT = 20_000;
/** A claim of a process that died without removing it is removed after this long. */
const STALE_MS = 6 * 3600_000;

/** The first port of the kernel's ephemeral range (Linux default 32768). */
function ephemeralStart(): number {
  try {
    const low = Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]);
    if (Number.isInteger(low) && low > FIRST_PORT + 1000) return low;
  } catch {
    /* not Linux: the IANA range starts at 49152 */
  }
  return 32_768;
}

const LAST_PORT = ephemeralStart() - 1;
const mine = new Set<number>();

process.once('exit', () => {
  for (const port of mine)
    try {
      unlinkSync(join(CLAIMS, String(port)));
    } catch {
      /* gone */
    }
});

let swept = false;
/** Removes old claims of dead processes (once per process). */
function sweepStaleClaims(): void {
  if (swept) return;
  swept = true;
  for (const name of readdirSync(CLAIMS)) {
    const file = join(CLAIMS, name);
    try {
      if (Date.now() - statSync(file).mtimeMs < STALE_MS) continue;
      if (!alive(Number(readFileSync(file, 'utf8')))) unlinkSync(file);
    } catch {
      /* taken care of by another process */
    }
  }
}

function claim(port: number): boolean {
  try {
    writeFileSync(join(CLAIMS, String(port)), String(process.pid), { flag: 'wx' });
    mine.add(port);
    return true;
  } catch {
    return false;
  }
}

function release(port: number): void {
  mine.delete(port);
  try {
    unlinkSync(join(CLAIMS, String(port)));
  } catch {
    /* gone */
  }
}

function bindable(port: number, host: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createServer();
    s.once('error', () => resolve(false));
    s.listen(port, host, () => s.close(() => resolve(true)));
  });
}

/**
 * A port nothing listens on right now on every one of `hosts` (loopback
 * addresses), below the kernel's ephemeral range and claimed for this process
 * until it exits.
 */
export async function freePort(hosts: string | string[] = '127.0.0.1'): Promise<number> {
  const on = typeof hosts === 'string' ? [hosts] : hosts;
  mkdirSync(CLAIMS, { recursive: true, mode: 0o700 });
  sweepStaleClaims();
  for (let attempt = 0; attempt < 500; attempt++) {
    const port = randomInt(FIRST_PORT, LAST_PORT + 1);
    if (!claim(port)) continue;
    let free = true;
    for (const host of on) if (free) free = await bindable(port, host);
    if (free) return port;
    release(port);
  }
  throw new Error(`no free port in ${FIRST_PORT}-${LAST_PORT} on ${on.join(', ')} after 500 tries`);
}
