/**
 * How parametrized suites (test/suites/) get their servers: a factory that
 * starts a single master, or a node of a cluster (cluster-nodes.ts).
 */
import { removeDir, startMupdated, type RunningMupdated, type StartOptions } from './server.js';

/** Starts a mupdated server: a single master, or a node of a cluster. */
export type ServerFactory = (options?: StartOptions) => Promise<RunningMupdated>;

export const singleMaster: ServerFactory = (options) => startMupdated(options);

/** `withServer(options, fn)`: runs `fn` on a server of its own from `start`, stopped and its folder removed afterwards. */
export function serverScope(start: ServerFactory) {
  return async <T>(options: StartOptions, fn: (s: RunningMupdated) => Promise<T>): Promise<T> => {
    const s = await start(options);
    try {
      return await fn(s);
    } finally {
      await s.stop();
      removeDir(s.dataDir);
    }
  };
}
