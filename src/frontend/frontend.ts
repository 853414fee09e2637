/**
 * `mupdated slave --frontend-db FILE [--kick-socket PATH]`: the slave keeps a
 * Cyrus frontend's mailboxes database (sqlite) and answers its kicks, so the
 * frontend needs no Cyrus `mupdate` slave. Defaults come from the frontend's
 * own imapd.conf (`--imapd-conf`): `sql_database`, and the socket Cyrus's
 * slave would listen on, `<configdirectory>/socket/mupdate.target`.
 */
import { join } from 'node:path';
import type { Logger } from '../log.js';
import type { DirectoryStore } from '../store/types.js';
import { CatchUpAborted } from './catch-up.js';
import { KickSocket } from './kick-socket.js';
import { SqliteMirror } from './sqlite-mirror.js';

/** The frontend settings cannot be used (no database file named). */
export class FrontendSettingsError extends Error {}

export interface FrontendSettings {
  /** The sqlite file (`frontend_db`). */
  db?: string | undefined;
  /** The kick socket (`kick_socket`). */
  kickSocket?: string | undefined;
}

/** The imapd.conf as read (cyrus-conf/settings.ts): its file and every key. */
export interface ImapdConfKeys {
  file: string;
  raw: ReadonlyMap<string, string>;
}

/**
 * Fills what the flags and config file left open from the frontend's imapd.conf.
 * An imapd.conf that names a master but keeps its mailboxes in Cyrus's own
 * format is a plain Cyrus slave's: only the MUPDATE service is taken over.
 */
export function resolveFrontend(settings: FrontendSettings, imapd: ImapdConfKeys | null, log: Logger): FrontendSettings {
  if (!imapd) return settings;
  const conf = imapd.raw;
  const out = { ...settings };
  const sql = conf.get('mboxlist_db') === 'sql';
  out.db ??= conf.get('sql_database');
  if (!out.db && !sql && conf.has('mupdate_server')) {
    log.warn(
      { file: imapd.file, mboxlist_db: conf.get('mboxlist_db') ?? 'twoskip' },
      "the imapd.conf's mailboxes database is not sql, so it is not kept: only the MUPDATE service is taken over",
    );
    return out;
  }
  if (!sql || (conf.get('sql_engine') ?? 'sqlite') !== 'sqlite') {
    log.warn(
      { file: imapd.file },
      "the frontend's imapd.conf does not say 'mboxlist_db: sql' and 'sql_engine: sqlite': Cyrus will not read the database we write",
    );
  }
  const configDirectory = conf.get('configdirectory');
  if (configDirectory) out.kickSocket ??= join(configDirectory, 'socket', 'mupdate.target');
  if (!out.db) throw new FrontendSettingsError(`${imapd.file} has no sql_database: give --frontend-db FILE`);
  return out;
}

export interface RunningFrontend {
  mirror: SqliteMirror;
  /** Settles when the start-up correction of the file has finished (rejects when it failed). */
  caughtUp: Promise<void>;
  /** Stops following, closes the kick socket, writes what is queued and closes the file. */
  close(): Promise<void>;
}

/**
 * Opens the database, follows the store, and brings the file to the local
 * copy by difference while the slave already runs (catch-up.ts).
 * The kick socket opens once this run has synced with the master
 * (`synced`), as Cyrus's slave opens it only after its first sync: until
 * then a kick could only answer with a copy the master may have moved past.
 */
export function startFrontend(
  settings: FrontendSettings,
  store: DirectoryStore,
  follower: { synced: Promise<void>; syncedWithMaster(): Promise<void> },
  log: Logger,
): RunningFrontend {
  if (!settings.db) throw new FrontendSettingsError('the frontend database needs a file (--frontend-db or frontend_db)');
  const mirror = SqliteMirror.open(settings.db, log);
  // Following first: changes made while the correction runs are queued, and it leaves their names alone.
  const unsubscribe = mirror.follow(store);
  let closing = false;
  // A copy that has never held a change (a first start) would have the correction delete
  // every row of a file converted from Cyrus's slave: it waits for the first sync instead,
  // so the frontend keeps finding its mailboxes meanwhile (the file is never emptied).
  const ready = store.lastSeq === 0 ? follower.synced : Promise.resolve();
  const caughtUp = ready
    .then(() => (closing ? undefined : mirror.catchUp(store)))
    .then(
      () => undefined,
      (err: Error) => {
        if (err instanceof CatchUpAborted) return;
        log.error({ err: err.message, file: settings.db }, 'frontend database: the start-up correction failed');
        throw err;
      },
    );
  let kick: KickSocket | null = null;
  const kickPath = settings.kickSocket;
  if (kickPath) {
    // Opened once both hold: a kick's answer must mean "the file holds the master's state".
    void Promise.all([follower.synced, caughtUp])
      .then(async () => {
        if (closing) return;
        const listening = await KickSocket.listen({
          path: kickPath,
          log,
          syncWithMaster: () => follower.syncedWithMaster(),
          flushFrontend: () => mirror.flushNow(),
        });
        // Closed while it was opening: close it again.
        if (closing) await listening.close();
        else kick = listening;
      })
      .catch((err: Error) => {
        log.error({ err: err.message }, 'kick socket not opened: frontend writes will not be visible at once');
      });
  }
  caughtUp.catch(() => {
    /* logged above */
  });
  return {
    mirror,
    caughtUp,
    async close() {
      closing = true;
      // (not waiting for the socket to open: that waits for a sync that may never come)
      await kick?.close();
      unsubscribe();
      mirror.close();
    },
  };
}
