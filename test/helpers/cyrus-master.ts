/**
 * Starting Cyrus `master(8)` for a test, the one way all Cyrus helpers do it.
 *
 * master(8) answers SIGTERM by sending SIGTERM to its whole process group
 * (`kill(0, SIGTERM)`, as the cyrus user it switched to). Spawned plainly it
 * shares the process group of the test runner: ava, every test file's worker
 * and everything they started. Stopping one file's Cyrus server then killed
 * every Cyrus process of every other file running at the same time (their
 * masters, slaves, imapds), which is what made interop files interfere when
 * ava ran files in parallel. Each master(8) therefore gets a process group
 * (and session) of its own.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';

export const CYRUS_BIN = process.env.CYRUS_BIN ?? '/usr/lib/cyrus/bin';

/** Spawns `master ARGS` in the foreground, in a process group of its own; stdout and stderr piped. */
export function spawnCyrusMaster(args: string[]): ChildProcess {
  return spawn(join(CYRUS_BIN, 'master'), args, { stdio: ['ignore', 'pipe', 'pipe'], detached: true });
}
