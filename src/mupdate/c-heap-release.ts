/**
 * Hands the C heap's free pages back to the system (glibc's malloc_trim).
 *
 * glibc returns freed memory only from the top of its heap. After bursts
 * such as 10,000 connections opened and closed, the freed chunks below a
 * few live ones stay resident for good: measured 63 MiB of anonymous memory
 * at rest against 52 after malloc_trim. Node has no way to call a libc
 * function, so this borrows SQLite's extension loader (better-sqlite3, which
 * the frontend database already uses): it calls a named symbol of a shared
 * library as `entry(db, &errorText, api)`. malloc_trim reads only its first
 * argument, as the padding to keep at the heap's top; a pointer is far
 * larger than any heap, so the top is kept, while the free pages inside the
 * heap and every thread's arena are released (MADV_DONTNEED). SQLite reports
 * malloc_trim's "memory was released" (1) as an initialization error, which
 * is expected here. Where libc.so.6 or the symbol is missing (musl, other
 * systems), loading fails and releasing stays off.
 */
import { createRequire } from 'node:module';
import type BetterSqlite3 from 'better-sqlite3';

/** SQLite's text when the entry point answered non-zero (here: memory was released). */
const ANSWERED_NONZERO = /^error during initialization/;

/** better-sqlite3 takes an entry point's name as a second argument; its types omit it. */
type LoadExtension = (this: BetterSqlite3.Database, file: string, entryPoint: string) => void;

export type CHeapRelease = 'released' | 'nothing to release' | 'unavailable';

export class CHeapReleaser {
  private db: BetterSqlite3.Database | null = null;
  /** Why releasing is off, once it failed to load (null while it works or was not tried). */
  unavailable: string | null = process.platform === 'linux' ? null : `not on Linux (${process.platform})`;

  release(): CHeapRelease {
    if (this.unavailable !== null) return 'unavailable';
    try {
      // Loaded on first use: a server that never goes idle never loads SQLite.
      this.db ??= new (createRequire(import.meta.url)('better-sqlite3') as typeof BetterSqlite3)(':memory:');
      (this.db.loadExtension as LoadExtension).call(this.db, 'libc.so.6', 'malloc_trim');
      return 'nothing to release';
    } catch (err) {
      const message = (err as Error).message;
      if (ANSWERED_NONZERO.test(message)) return 'released';
      this.unavailable = message;
      this.close();
      return 'unavailable';
    }
  }

  close(): void {
    this.db?.close();
    this.db = null;
  }
}
