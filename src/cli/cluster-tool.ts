/**
 * What the operator tools (`user`, `conflicts`, `dump`, `load`) share: their
 * configuration (flags over `--config` over defaults, the etcd_* keys
 * included) and, with `--etcd`, the cluster's directory opened from any
 * machine that reaches etcd: through a private, temporary view (never a
 * running node's), thrown away when the tool ends.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { applySettings, defaultConfig, readConfigFile, type ServerConfig } from '../config.js';
import { createLogger } from '../log.js';
import type { DirectoryStore } from '../store/types.js';
import type { EtcdFlags } from './etcd-flags.js';
import { applyEtcdFlags, openDirectory } from './open-directory.js';

export interface ToolFlags extends EtcdFlags {
  data?: string | undefined;
  config?: string | undefined;
}

export function toolConfig(flags: ToolFlags): ServerConfig {
  const config = defaultConfig();
  // A tool reads the server's file: keys it has no use for are the server's, not typos.
  if (flags.config) applySettings(config, readConfigFile(flags.config));
  if (flags.data) config.dataDir = flags.data;
  applyEtcdFlags(config, flags);
  return config;
}

export function isCluster(config: ServerConfig): boolean {
  return config.etcd.endpoints.length > 0;
}

export interface ToolDirectory {
  store: DirectoryStore;
  /** The temporary folder of the view (gone after close). */
  viewDir: string;
  close(): Promise<void>;
}

/** The cluster's directory through a temporary view of its own. */
export async function openClusterDirectory(config: ServerConfig, o: { mustExist: boolean }): Promise<ToolDirectory> {
  const viewDir = mkdtempSync(join(tmpdir(), 'mupdated-tool-view-'));
  try {
    const store = await openDirectory({ ...config, dataDir: viewDir, dumpWorkers: 0 }, createLogger('warn'), { mustExist: o.mustExist });
    return {
      store,
      viewDir,
      async close() {
        await store.close();
        rmSync(viewDir, { recursive: true, force: true });
      },
    };
  } catch (err) {
    rmSync(viewDir, { recursive: true, force: true });
    throw err;
  }
}
