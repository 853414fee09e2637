/**
 * Tab completion for `mupdated client`: command names first, then the
 * mailbox names, locations and servers seen in responses so far.
 */
import { bareArg, COMMAND_NAMES, quoteArg } from './input.js';
import type { Response } from '../mupdate/client/responses.js';

export class Completions {
  private readonly names = new Map<string, Buffer>();
  private readonly locations = new Map<string, Buffer>();
  private readonly servers = new Map<string, Buffer>();

  /** Takes note of the names, locations and servers in these responses (each kind bounded in count). */
  remember(rows: Response[]): void {
    for (const r of rows) {
      if (!['MAILBOX', 'RESERVE', 'DELETE'].includes(r.word) || r.args.length === 0) continue;
      if (this.names.size < 10_000) this.names.set(r.args[0].toString('latin1'), r.args[0]);
      const loc = r.args[1];
      if (loc && r.word !== 'DELETE') {
        if (this.locations.size < 1000) this.locations.set(loc.toString('latin1'), loc);
        const server = loc.subarray(0, loc.includes(0x21) ? loc.indexOf(0x21) : loc.length);
        if (this.servers.size < 1000) this.servers.set(server.toString('latin1'), server);
      }
    }
  }

  /** Tab completion: command names first, then names, locations and servers seen so far. */
  complete(line: string): [string[], string] {
    const first = /^(\s*)(\S*)$/.exec(line);
    if (first) {
      const w = first[2].toLowerCase();
      const hits = COMMAND_NAMES.filter((c) => c.startsWith(w)).map((c) => `${c} `);
      return [hits, first[2]];
    }
    // Where the word being typed starts (a space inside quotes or after a backslash is part of it).
    let start = 0;
    let pos = -1;
    let inWord = false;
    let quoted = false;
    for (let i = 0; i < line.length; i++) {
      const c = line[i];
      if (!inWord) {
        if (c === ' ' || c === '\t') continue;
        inWord = true;
        start = i;
        pos++;
        quoted = c === '"';
        continue;
      }
      if (c === '\\') i++;
      else if (quoted && c === '"') quoted = false;
      else if (!quoted && (c === ' ' || c === '\t')) inWord = false;
    }
    if (!inWord) {
      pos++;
      start = line.length;
    }
    const cmd = (/^\s*(\S+)/.exec(line)?.[1] ?? '').toLowerCase();
    const last = line.slice(start);
    // Typed with a leading quote: complete the quoted form; else the bare one (spaces as `\ `).
    const form = (b: Buffer) => (last.startsWith('"') ? quoteArg(b) : bareArg(b));
    let pool: string[] = [];
    if (['find', 'delete', 'activate', 'reserve', 'deactivate'].includes(cmd) && pos === 1) pool = [...this.names.values()].map(form);
    else if (['activate', 'reserve', 'deactivate'].includes(cmd) && pos === 2) pool = [...this.locations.values()].map(form);
    else if ((cmd === 'list' || cmd === 'stats') && pos === 1) {
      pool = [...this.servers.values()].map((s) => form(Buffer.concat([s, Buffer.from('!')])));
    } else if (cmd === 'watch') pool = [...this.servers.values()].map(form);
    else if (cmd === 'help' && pos === 1) pool = COMMAND_NAMES;
    const hits = pool
      .filter((p) => p.startsWith(last))
      .sort()
      .slice(0, 200);
    return [hits.length === 1 && !hits[0].endsWith('!') && !hits[0].endsWith('!"') ? [`${hits[0]} `] : hits, last];
  }
}
