/** The types the client's session shares with the REPL and the scripted runner. */
import type { TlsFlags } from './tls-flags.js';

export interface ClientFlags extends TlsFlags {
  user?: string | undefined;
  'password-file'?: string | undefined;
  raw?: boolean | undefined;
  json?: boolean | undefined;
  timeout?: string | undefined;
}

/** What a command came to: answered OK, answered otherwise (or not parsed), or the end of the session. */
export type Outcome = 'ok' | 'failed' | 'quit';

/** Where output goes; the interactive mode redraws its prompt around it. */
export interface Output {
  /** A line for standard output. */
  line(text: string): void;
  /** A line for people about a problem or a state (stderr when scripted). */
  note(text: string): void;
}

export interface WatchHooks {
  begin(): void;
  end(): void;
}
