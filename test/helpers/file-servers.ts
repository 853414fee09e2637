/**
 * The servers and temp folders of one test file, stopped and removed after
 * the file (a test that fails halfway leaves nothing running).
 */
import test from 'ava';
import { removeDir, startMupdated, tempDir, type RunningMupdated, type StartOptions } from './server.js';

export interface FileServers {
  /** Starts a server; its data folder is removed afterwards unless `options.dataDir` was given (a restart). */
  start(options?: StartOptions): Promise<RunningMupdated>;
  /** A temp folder removed afterwards. */
  folder(prefix?: string): string;
}

export function serversForFile(): FileServers {
  const servers: RunningMupdated[] = [];
  const folders: string[] = [];
  test.after.always(async () => {
    for (const s of servers) await s.stop();
    for (const f of folders) removeDir(f);
  });
  return {
    async start(options: StartOptions = {}) {
      const s = await startMupdated(options);
      servers.push(s);
      if (options.dataDir === undefined) folders.push(s.dataDir);
      return s;
    },
    folder(prefix?: string) {
      const f = tempDir(prefix);
      folders.push(f);
      return f;
    },
  };
}
