/**
 * An error crossing from one of `mupdated load`'s threads to the one that
 * waits for it: sent as its class name, text and system code, and made
 * again on arrival, so a bad dump is still a DumpFormatError and a missing
 * file still carries ENOENT.
 */
import { DumpFormatError } from './cyrus-dump.js';

export interface ThreadError {
  name: string;
  message: string;
  code: string | undefined;
}

export function toThreadError(err: unknown): ThreadError {
  const e = err instanceof Error ? err : new Error(String(err));
  return { name: e.name, message: e.message, code: (e as NodeJS.ErrnoException).code };
}

export function fromThreadError(sent: ThreadError): Error {
  if (sent.name === 'DumpFormatError') return new DumpFormatError(sent.message);
  const err: NodeJS.ErrnoException = new Error(sent.message);
  if (sent.code !== undefined) err.code = sent.code;
  return err;
}
