/** The interactive client's command history (~/.mupdated_history, or $MUPDATED_HISTORY), private to its owner. */
import { readFileSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';

export function historyPath(): string {
  return process.env.MUPDATED_HISTORY || join(homedir(), '.mupdated_history');
}

export const HISTORY_SIZE = 1000;

/** Newest first, as readline wants it. */
export function loadHistory(path: string): string[] {
  try {
    return readFileSync(path, 'utf8')
      .split('\n')
      .filter((l) => l.trim() !== '')
      .slice(-HISTORY_SIZE)
      .reverse();
  } catch {
    return [];
  }
}

export function saveHistory(path: string, history: string[]): void {
  try {
    writeFileSync(path, history.slice(0, HISTORY_SIZE).reverse().join('\n') + '\n', { mode: 0o600 });
  } catch {
    /* history is a convenience */
  }
}
