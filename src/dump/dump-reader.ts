/**
 * Reads a whole dump from a byte stream, a chunk at a time: lines are split
 * and decoded as node:readline does (UTF-8, `\n`, `\r\n` or a lone `\r`), but
 * without an await per line, so a million-line dump costs only its parsing.
 */
import { StringDecoder } from 'node:string_decoder';
import { DumpParser, type DumpRecord } from './cyrus-dump.js';

/** Splits text into lines as readline does with crlfDelay Infinity; keeps the unfinished tail. */
export class LineSplitter {
  private tail = '';
  private readonly decoder = new StringDecoder('utf8');

  constructor(private readonly onLine: (line: string) => void) {}

  push(chunk: Buffer | string): void {
    this.split(this.tail + (typeof chunk === 'string' ? chunk : this.decoder.write(chunk)), false);
  }

  end(): void {
    this.split(this.tail + this.decoder.end(), true);
    if (this.tail.length > 0) this.onLine(this.tail);
    this.tail = '';
  }

  private split(text: string, final: boolean): void {
    let start = 0;
    // Where the next `\r` is, looked up again only once passed: most dumps have none, and
    // searching the rest of the chunk for one at every line would be quadratic.
    let cr = -2;
    for (;;) {
      const lf = text.indexOf('\n', start);
      if (cr !== -1 && cr < start) cr = text.indexOf('\r', start);
      if (lf < 0 && cr < 0) break;
      if (cr < 0 || (lf >= 0 && lf < cr)) {
        this.onLine(text.slice(start, lf));
        start = lf + 1;
        continue;
      }
      // A `\r` at the very end may be the first half of a `\r\n` still on its way.
      if (cr === text.length - 1 && !final) break;
      this.onLine(text.slice(start, cr));
      start = text.charCodeAt(cr + 1) === 0x0a ? cr + 2 : cr + 1;
    }
    this.tail = start === 0 ? text : text.slice(start);
  }
}

/** Parses a dump from `input`, calling `onRecord` for each record in order; throws DumpFormatError as parseDump does. */
export async function readDump(input: AsyncIterable<Buffer | string>, onRecord: (r: DumpRecord) => void): Promise<void> {
  const parser = new DumpParser();
  const out: DumpRecord[] = [];
  const lines = new LineSplitter((line) => {
    parser.line(line, out);
    for (const r of out) onRecord(r);
    out.length = 0;
  });
  for await (const chunk of input) lines.push(chunk);
  lines.end();
  parser.end();
}
