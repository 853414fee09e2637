/** The values a setting may take, each parsed with an error naming its key (config.ts uses them). */
import type { HostPort } from './host-port.js';
import { LOG_FORMATS, type LogFormat } from './log-formats.js';

export const DEFAULT_PORT = 3905;

/** `tls_versions` as Cyrus writes them, and the range Node can set. */
export const TLS_VERSIONS = { tls1_0: 'TLSv1', tls1_1: 'TLSv1.1', tls1_2: 'TLSv1.2', tls1_3: 'TLSv1.3' } as const;
export type TlsVersionName = keyof typeof TLS_VERSIONS;
export interface TlsVersionRange {
  min: TlsVersionName;
  max: TlsVersionName;
}

export function tlsVersions(key: string, v: string): TlsVersionRange {
  const order = Object.keys(TLS_VERSIONS) as TlsVersionName[];
  const names = v
    .toLowerCase()
    .split(/[\s,]+/)
    .filter(Boolean);
  const unknown = names.filter((n) => !(order as string[]).includes(n));
  if (unknown.length > 0 || names.length === 0) throw new ConfigError(`${key}: expected some of ${order.join(' ')}, got '${v}'`);
  const idx = names.map((n) => order.indexOf(n as TlsVersionName)).sort((a, b) => a - b);
  const first = idx[0],
    last = idx[idx.length - 1];
  // Node sets a range, not a set: a gap would silently enable the version left out.
  if (last - first + 1 !== new Set(idx).size) throw new ConfigError(`${key}: '${v}' leaves a gap; only a range of versions can be offered`);
  return { min: order[first], max: order[last] };
}

export const SASL_MECHANISMS = ['SCRAM-SHA-256', 'PLAIN'] as const;
export type SaslMechanism = (typeof SASL_MECHANISMS)[number];

export function mechanismList(key: string, v: string): SaslMechanism[] {
  const names = v
    .toUpperCase()
    .split(/[\s,]+/)
    .filter(Boolean);
  const unknown = names.filter((n) => !(SASL_MECHANISMS as readonly string[]).includes(n));
  if (unknown.length > 0 || names.length === 0) {
    throw new ConfigError(`${key}: expected some of ${SASL_MECHANISMS.join(' ')}, got '${v}'`);
  }
  return SASL_MECHANISMS.filter((m) => names.includes(m));
}

export class ConfigError extends Error {}

export function parseHostPort(value: string, defaultPort = DEFAULT_PORT): HostPort {
  const m = /^\[([^\]]+)\](?::(\d+))?$/.exec(value) ?? /^([^:]+)(?::(\d+))?$/.exec(value);
  if (!m) throw new ConfigError(`'${value}' is not HOST:PORT`);
  const port = m[2] === undefined ? defaultPort : Number(m[2]);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new ConfigError(`bad port in '${value}'`);
  return { host: m[1], port };
}

/**
 * A slave's masters: `HOST:PORT[,HOST:PORT...]` (the nodes of a cluster),
 * as --master or mupdate_server; a `/...` suffix, as Cyrus allows, is ignored on each.
 */
export function parseMasterList(value: string): HostPort[] {
  const list = value
    .split(',')
    .map((s) => s.trim().replace(/\/.*$/, ''))
    .filter(Boolean);
  if (!list.length) throw new ConfigError(`'${value}': expected HOST:PORT[,HOST:PORT...]`);
  return list.map((s) => parseHostPort(s));
}

export function logFormat(key: string, v: string): LogFormat {
  if (!(LOG_FORMATS as readonly string[]).includes(v)) throw new ConfigError(`${key}: expected ${LOG_FORMATS.join(' or ')}, got '${v}'`);
  return v as LogFormat;
}

export function bool(key: string, v: string): boolean {
  if (/^(1|yes|on|true)$/i.test(v)) return true;
  if (/^(0|no|off|false)$/i.test(v)) return false;
  throw new ConfigError(`${key}: expected yes or no, got '${v}'`);
}

/** The longest timer Node keeps (2^31-1 ms): a longer one fires at once. */
export const MAX_TIMER_SECONDS = Math.floor((2 ** 31 - 1) / 1000);

/** A duration in whole seconds, `min` or more, no longer than a timer can wait (about 24 days). */
export function wholeSeconds(key: string, v: string, min = 0): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < min || n > MAX_TIMER_SECONDS) {
    throw new ConfigError(`${key}: expected whole seconds from ${min} to ${MAX_TIMER_SECONDS}, got '${v}'`);
  }
  return n;
}

/** wholeSeconds, as milliseconds. */
export function secondsMs(key: string, v: string, min = 0): number {
  return wholeSeconds(key, v, min) * 1000;
}

/** A duration in seconds, fractions allowed, above 0 and no longer than a timer can wait, as milliseconds. */
export function fractionalSecondsMs(key: string, v: string): number {
  const n = Number(v);
  if (!(n > 0 && n <= MAX_TIMER_SECONDS))
    throw new ConfigError(`${key}: expected seconds above 0, at most ${MAX_TIMER_SECONDS}, got '${v}'`);
  return Math.round(n * 1000);
}

export function int(key: string, v: string, min = 0): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < min) throw new ConfigError(`${key}: expected a whole number >= ${min}, got '${v}'`);
  return n;
}
