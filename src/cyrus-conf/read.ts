/**
 * Reads a Cyrus imapd.conf by Cyrus's rules (imapd.conf(5), lib/libconfig):
 * `key: value` lines, keys lower-cased and made of letters, digits, `-` and
 * `_`, the colon right after the key; `#` starts a comment line; a line
 * ending in `\` continues on the next; `@include: FILE` reads FILE there
 * (a relative path is taken from the working directory, as Cyrus does); a
 * file included twice, a key given twice and an empty value are errors.
 */
import { readFileSync } from 'node:fs';

/** The file cannot be read or breaks Cyrus's rules (Cyrus itself would refuse to start). */
export class ImapdConfError extends Error {}

export interface ImapdConfValue {
  value: string;
  /** Where it was set, for messages. */
  file: string;
  line: number;
}

export function readImapdConf(path: string): Map<string, ImapdConfValue> {
  const out = new Map<string, ImapdConfValue>();
  readInto(path, out, new Set());
  return out;
}

function readInto(path: string, out: Map<string, ImapdConfValue>, seen: Set<string>): void {
  if (seen.has(path)) throw new ImapdConfError(`configuration file ${path} included twice`);
  seen.add(path);
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ImapdConfError(`cannot read imapd.conf ${path}: ${(err as Error).message}`);
  }
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const lineNo = i + 1;
    let raw = lines[i].replace(/\r$/, '');
    // Continuations join without a space, as Cyrus joins them.
    while (raw.endsWith('\\') && i + 1 < lines.length) raw = raw.slice(0, -1) + lines[++i].replace(/\r$/, '');
    const text = raw.replace(/^\s+/, '');
    if (text === '' || text.startsWith('#')) continue;
    const m = /^(@?[A-Za-z0-9_-]*):(.*)$/.exec(text);
    if (!m || m[1] === '' || m[1] === '@') throw new ImapdConfError(`${path}:${lineNo}: invalid option name (expected 'key: value')`);
    const key = m[1].toLowerCase();
    const value = m[2].trim();
    if (value === '') throw new ImapdConfError(`${path}:${lineNo}: empty value for ${key}`);
    if (key.startsWith('@')) {
      if (key !== '@include') throw new ImapdConfError(`${path}:${lineNo}: unknown directive ${key}`);
      readInto(value, out, seen);
      continue;
    }
    const before = out.get(key);
    if (before) {
      throw new ImapdConfError(`${path}:${lineNo}: option '${key}' given twice (first at ${before.file}:${before.line})`);
    }
    out.set(key, { value, file: path, line: lineNo });
  }
}

/** Cyrus's switches: 1/yes/on/true/t and 0/no/off/false/f, by their first letters. */
export function cyrusSwitch(value: string): boolean | null {
  const v = value.toLowerCase();
  if (v.startsWith('0') || v.startsWith('n') || v.startsWith('of') || v.startsWith('f')) return false;
  if (v.startsWith('1') || v.startsWith('y') || v.startsWith('on') || v.startsWith('t')) return true;
  return null;
}

/** Cyrus's durations: a number with an optional unit (s, m, h, d; several may follow each other, as `1h30m`). */
export function cyrusDurationSeconds(value: string, defaultUnit: 's' | 'm' = 's'): number | null {
  const unit = { s: 1, m: 60, h: 3600, d: 86400 } as const;
  if (/^\d+$/.test(value)) return Number(value) * unit[defaultUnit];
  if (!/^(\d+[smhd])+$/i.test(value)) return null;
  let total = 0;
  for (const m of value.toLowerCase().matchAll(/(\d+)([smhd])/g)) total += Number(m[1]) * unit[m[2] as keyof typeof unit];
  return total;
}
