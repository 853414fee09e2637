/**
 * Helpers for a Cyrus Murder *frontend* whose mailboxes database is written
 * by `mupdated slave --frontend-db` (issue "Frontends"):
 *
 * - `Imtest`: the real Cyrus `imtest` logged in to an IMAP server, typing one
 *   tagged command at a time and reading up to its tagged answer.
 * - `readRows()`: the rows of a Cyrus sqlite mailboxes database
 *   (`mailboxes_db`), keys and values as bytes (latin1 strings), with
 *   SQLite's `typeof()` of each column.
 * - `withoutMtime()`: a row value with its `M` (write time) field blanked,
 *   the one field two writers never agree on.
 *
 * Facts used (Debian's Cyrus 3.6.1): `imtest` prints the server's lines of
 * the login phase with `S: ` and the later ones raw; it sends what it reads
 * on stdin with CRLF; `-m PLAIN` needs `allowplaintext` on the server.
 */
import Database from 'better-sqlite3';
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { join } from 'node:path';
import { CYRUS_BIN, PASSWORD } from './cyrus-backend.js';

export interface ImapAnswer {
  ok: boolean;
  /** The tagged line. */
  status: string;
  /** The lines before it. */
  untagged: string[];
}

export class Imtest {
  private output = '';
  private cursor = 0;
  private wake: (() => void) | null = null;
  private n = 0;
  private exited = false;

  private constructor(private readonly child: ChildProcessWithoutNullStreams) {
    child.stdout.on('data', (d: Buffer) => {
      this.output += d.toString('latin1');
      this.wake?.();
    });
    child.stderr.on('data', (d: Buffer) => {
      this.output += d.toString('latin1');
      this.wake?.();
    });
    child.stdin.on('error', () => {
      /* it exited */
    });
    child.once('close', () => {
      this.exited = true;
      this.wake?.();
    });
  }

  /** `imtest -m PLAIN -a USER -w PASSWORD -p PORT 127.0.0.1`, waiting for `Authenticated.`. */
  static async login(port: number, user = 'cyrus', password = PASSWORD): Promise<Imtest> {
    const child = spawn(join(CYRUS_BIN, 'imtest'), ['-m', 'PLAIN', '-a', user, '-w', password, '-p', String(port), '127.0.0.1'], {
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    const session = new Imtest(child);
    try {
      await session.waitFor(/^Authenticated\.\r?$/m, 20_000);
    } catch (err) {
      session.close();
      throw err;
    }
    return session;
  }

  private async waitFor(re: RegExp, timeoutMs: number): Promise<RegExpExecArray> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const m = re.exec(this.output.slice(this.cursor));
      if (m) {
        const start = this.cursor;
        this.cursor += m.index + m[0].length;
        return Object.assign(m, { index: start + m.index });
      }
      if (this.exited || Date.now() >= deadline) {
        throw new Error(`imtest never printed ${String(re)} (exited: ${this.exited}); output:\n${this.output}`);
      }
      await new Promise<void>((resolve) => {
        const t = setTimeout(
          () => {
            this.wake = null;
            resolve();
          },
          Math.min(250, deadline - Date.now()),
        );
        this.wake = () => {
          clearTimeout(t);
          this.wake = null;
          resolve();
        };
      });
    }
  }

  /** Types `<tag> <text>` and reads up to the tagged answer. */
  async command(text: string, timeoutMs = 30_000): Promise<ImapAnswer> {
    const tag = `F${++this.n}`;
    const from = this.cursor;
    this.child.stdin.write(Buffer.from(`${tag} ${text}\n`, 'latin1'));
    const m = await this.waitFor(new RegExp(`^${tag} (OK|NO|BAD)[^\\n]*`, 'm'), timeoutMs);
    const before = this.output.slice(from, m.index);
    const untagged = before
      .split('\n')
      .map((l) => l.replace(/\r$/, ''))
      .filter((l) => l !== '');
    return { ok: m[1] === 'OK', status: m[0].replace(/\r$/, ''), untagged };
  }

  close(): void {
    if (!this.exited) this.child.kill('SIGKILL');
  }
}

export interface Row {
  key: string;
  value: string;
  keyType: string;
  valueType: string;
}

/** The rows of a Cyrus sqlite mailboxes database, sorted by key bytes. */
export function readRows(file: string): Row[] {
  const db = new Database(file, { readonly: true, fileMustExist: true, timeout: 5_000 });
  try {
    const rows = db
      .prepare('SELECT CAST(dbkey AS BLOB) AS k, CAST(data AS BLOB) AS d, typeof(dbkey) AS kt, typeof(data) AS dt FROM mailboxes_db')
      .all() as Array<{ k: Buffer; d: Buffer | null; kt: string; dt: string }>;
    return rows
      .map((r) => ({ key: r.k.toString('latin1'), value: (r.d ?? Buffer.alloc(0)).toString('latin1'), keyType: r.kt, valueType: r.dt }))
      .sort((a, b) => Buffer.compare(Buffer.from(a.key, 'latin1'), Buffer.from(b.key, 'latin1')));
  } finally {
    db.close();
  }
}

/** SQLite's journal mode of a database file. */
export function journalMode(file: string): string {
  const db = new Database(file, { readonly: true, fileMustExist: true, timeout: 5_000 });
  try {
    return String(db.pragma('journal_mode', { simple: true }));
  } finally {
    db.close();
  }
}

/** A row value with its write time blanked (`M 1796574570` -> `M _`). */
export function withoutMtime(value: string): string {
  return value.replace(/ M \d+ A /, ' M _ A ');
}
