/** Structured logs to stderr (stdout stays free for command output such as `dump`). */
import { pino, type Logger } from 'pino';

export type { Logger };

export function createLogger(level = process.env.MUPDATED_LOG_LEVEL ?? 'info'): Logger {
  return pino({ level, base: { pid: process.pid } }, pino.destination({ fd: 2, sync: true }));
}
