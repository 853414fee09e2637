/** `mupdated backup DEST` and `mupdated verify`: hot copies of a data folder, and checks of one. */
import { FolderRefused } from '../backup/folder-databases.js';
import { backupFolder, clusterBackupAdvice } from '../backup/hot-backup.js';
import { describeReport, verifyFolder } from '../backup/verify-folder.js';
import { isCluster, toolConfig, type ToolFlags } from './cluster-tool.js';

export const BACKUP_USAGE = `usage: mupdated backup DEST [--data DIR] [--config FILE]
  copies the data folder (directory and users) into the new folder DEST while the server runs;
  DEST must not exist. Restore: stop the server, put DEST in place of the data folder (or point --data at it), start.
usage: mupdated verify [--data DIR] [--config FILE]
  checks a data folder or a backup: storage format, entries, by-server index, change log, conflicts, users;
  exit 0 when sound, 1 with the problems listed when not.
`;

/** A usage mistake: said with the usage, exit 2. */
function usage(problem: string): number {
  process.stderr.write(`mupdated: ${problem}\n${BACKUP_USAGE}`);
  return 2;
}

export async function runBackup(positionals: string[], flags: ToolFlags): Promise<number> {
  const [dest, ...extra] = positionals;
  if (!dest || extra.length) return usage(dest ? `unexpected arguments: ${extra.join(' ')}` : 'backup needs DEST, the new folder to write');
  const config = toolConfig(flags);
  if (isCluster(config)) throw new FolderRefused(clusterBackupAdvice('mupdated backup copies a data folder'));
  const result = await backupFolder(config.dataDir, dest);
  for (const line of describeReport(result.report)) process.stdout.write(`${line}\n`);
  if (result.report.problemCount) {
    process.stderr.write(
      `mupdated: the backup in ${result.dest} was written but does not verify; the data folder ` +
        `${config.dataDir} probably has the same problems ('mupdated verify --data ${config.dataDir}')\n`,
    );
    return 1;
  }
  process.stdout.write(`backup written to ${result.dest} (${result.files.join(', ')}), fsynced, at change #${result.report.seq}\n`);
  return 0;
}

export async function runVerify(positionals: string[], flags: ToolFlags): Promise<number> {
  if (positionals.length) return usage(`verify takes the folder as --data DIR, not ${positionals.join(' ')}`);
  const config = toolConfig(flags);
  if (isCluster(config)) {
    throw new FolderRefused(
      'mupdated verify checks a data folder; with --etcd the directory lives in etcd ' +
        "(read it whole with 'mupdated dump --etcd URL', or check etcd with 'etcdctl endpoint status')",
    );
  }
  const report = await verifyFolder(config.dataDir);
  for (const line of describeReport(report)) process.stdout.write(`${line}\n`);
  if (report.problemCount) {
    process.stderr.write(
      `mupdated: ${config.dataDir} failed verification: ${report.problemCount} problem` +
        `${report.problemCount === 1 ? '' : 's'} (listed above)\n`,
    );
    return 1;
  }
  process.stdout.write('ok\n');
  return 0;
}
