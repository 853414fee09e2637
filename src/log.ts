/**
 * Logs to stderr (stdout stays free for command output such as `dump`):
 * readable lines on a terminal, JSON lines otherwise or with `--log-format json`.
 * Every warning and error carries `advice`: what to do about it, in words.
 */
import { pino, type Logger, type LevelWithSilent } from 'pino';
import PinoPretty from 'pino-pretty';
import { adviceFor } from './log-advice.js';
import type { LogFormat } from './log-formats.js';

export type { Logger };
export { LOG_FORMATS, type LogFormat } from './log-formats.js';
export const LOG_LEVELS: readonly LevelWithSilent[] = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

export interface LogOptions {
  /** From `log_level`; MUPDATED_LOG_LEVEL in the environment wins (a one-off run). */
  level?: string | undefined;
  /** Unset: pretty when stderr is a terminal. */
  format?: LogFormat | undefined;
}

/** The level a logger starts at, or is set to again by a reload. */
export function effectiveLevel(configured: string | undefined): string {
  return process.env.MUPDATED_LOG_LEVEL || configured || 'info';
}

const WARN = 40;

/** Adds `advice` to warnings and errors whose message has some (log-advice.ts). */
function withAdvice(args: unknown[], level: number): unknown[] {
  if (level < WARN) return args;
  const [first, second] = args;
  const msg = typeof first === 'string' ? first : typeof second === 'string' ? second : undefined;
  const advice = msg === undefined ? undefined : adviceFor(msg);
  if (advice === undefined) return args;
  if (typeof first === 'string') return [{ advice }, ...args];
  if (first !== null && typeof first === 'object' && !(first instanceof Error)) return [{ ...first, advice }, ...args.slice(1)];
  return args;
}

export function createLogger(options: LogOptions | string = {}): Logger {
  const o = typeof options === 'string' ? { level: options } : options;
  const format = o.format ?? (process.stderr.isTTY ? 'pretty' : 'json');
  const settings = {
    level: effectiveLevel(o.level),
    base: { pid: process.pid },
    hooks: {
      logMethod(this: Logger, args: unknown[], method: (...a: unknown[]) => void, level: number) {
        method.apply(this, withAdvice(args, level));
      },
    },
  };
  if (format === 'json') return pino(settings, pino.destination({ fd: 2, sync: true }));
  const pretty = PinoPretty({
    destination: 2,
    sync: true,
    colorize: PinoPretty.isColorSupported && !!process.stderr.isTTY,
    translateTime: 'SYS:yyyy-mm-dd HH:MM:ss',
    ignore: 'pid,hostname,advice',
    singleLine: true,
    messageFormat: (log, messageKey) => {
      const value = log[messageKey];
      const msg = typeof value === 'string' ? value : JSON.stringify(value ?? '');
      return typeof log.advice === 'string' ? `${msg} -- what to do: ${log.advice}` : msg;
    },
  });
  return pino(settings, pretty);
}
