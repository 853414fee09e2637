/**
 * Reads a whole dump from a byte stream, a chunk at a time: lines are split
 * and decoded as node:readline does (UTF-8, `\n`, `\r\n` or a lone `\r`), but
 * without an await per line, so a million-line dump costs only its parsing.
 */
import { isAscii } from 'node:buffer';
import { DumpParser, type DumpRecord } from './cyrus-dump.js';

/**
 * Splits bytes into lines as readline does with crlfDelay Infinity (`\n`,
 * `\r\n` or a lone `\r`), decoded as UTF-8. Lines are found in the bytes
 * (a line break is never part of a UTF-8 sequence), so only whole lines are
 * decoded; a chunk of plain ASCII, as most dumps are, is decoded as Latin-1,
 * which gives the same text for less work. An unfinished line's bytes wait
 * as a list of pieces, joined once its end comes.
 */
export class LineSplitter {
  private tail: Buffer[] = [];

  /** `takeBytes`: offered each line's bytes first; when it answers true, the line is not decoded for onLine. */
  constructor(
    private readonly onLine: (line: string) => void,
    private readonly takeBytes?: TakeLineBytes,
  ) {}

  push(chunk: Buffer | string): void {
    let bytes = typeof chunk === 'string' ? Buffer.from(chunk, 'utf8') : chunk;
    // The unfinished line is completed from the new bytes up to their first line break only:
    // joining it to the whole chunk would copy every chunk (a megabyte each) once more.
    while (this.tail.length > 0 && bytes.length > 0) {
      const br = firstBreak(bytes);
      if (br < 0) return void this.tail.push(bytes);
      // A `\r` ending the joined bytes waits in the tail for what follows it, as at a chunk's end.
      this.split(Buffer.concat([...this.tail, bytes.subarray(0, br + 1)]), false);
      bytes = bytes.subarray(br + 1);
    }
    if (bytes.length > 0) this.split(bytes, false);
  }

  end(): void {
    const left = this.split(Buffer.concat(this.tail), true);
    if (left.length > 0 && !this.takeBytes?.(left, 0, left.length)) this.onLine(left.toString('utf8'));
    this.tail = [];
  }

  /** Calls onLine for each whole line of `bytes`; keeps (and returns) what follows the last one. */
  private split(bytes: Buffer, final: boolean): Buffer {
    const encoding = isAscii(bytes) ? 'latin1' : 'utf8';
    let start = 0;
    // Where the next `\r` is, looked up again only once passed: most dumps have none, and
    // searching the rest of the chunk for one at every line would be quadratic.
    let cr = -2;
    for (;;) {
      const lf = bytes.indexOf(0x0a, start);
      if (cr !== -1 && cr < start) cr = bytes.indexOf(0x0d, start);
      if (lf < 0 && cr < 0) break;
      if (cr < 0 || (lf >= 0 && lf < cr)) {
        if (!this.takeBytes?.(bytes, start, lf)) this.onLine(bytes.toString(encoding, start, lf));
        start = lf + 1;
        continue;
      }
      // A `\r` at the very end may be the first half of a `\r\n` still on its way.
      if (cr === bytes.length - 1 && !final) break;
      if (!this.takeBytes?.(bytes, start, cr)) this.onLine(bytes.toString(encoding, start, cr));
      start = bytes[cr + 1] === 0x0a ? cr + 2 : cr + 1;
    }
    const left = start === 0 ? bytes : bytes.subarray(start);
    this.tail = left.length > 0 ? [left] : [];
    return left;
  }
}

/** A reader of a line's bytes [start, end) that may take the line instead of its text's reader (true). */
export type TakeLineBytes = (bytes: Buffer, start: number, end: number) => boolean;

/** Where the first `\n` or `\r` of `bytes` is, or -1. */
function firstBreak(bytes: Buffer): number {
  const lf = bytes.indexOf(0x0a);
  const cr = (lf < 0 ? bytes : bytes.subarray(0, lf)).indexOf(0x0d);
  return cr >= 0 ? cr : lf;
}

/** A dump fed a chunk at a time: each record goes to `onRecord` as soon as its line is complete. */
export class DumpRecordReader {
  private readonly parser = new DumpParser();
  private readonly records: DumpRecord[] = [];
  private readonly lines: LineSplitter;

  /**
   * `takePlainRecord`: offered the bytes of each line where a one-line record may stand; a line
   * it takes (true) is only counted here. It must take only lines the parser would read as a
   * record, and do with them what `onRecord` would.
   */
  constructor(onRecord: (r: DumpRecord) => void, takePlainRecord?: TakeLineBytes) {
    const takeBytes: TakeLineBytes | undefined =
      takePlainRecord &&
      ((bytes, start, end) => {
        if (!this.parser.expectsRecord || !takePlainRecord(bytes, start, end)) return false;
        this.parser.countLine();
        return true;
      });
    this.lines = new LineSplitter((line) => {
      this.parser.line(line, this.records);
      for (const r of this.records) onRecord(r);
      this.records.length = 0;
    }, takeBytes);
  }

  push(chunk: Buffer | string): void {
    this.lines.push(chunk);
  }

  /** The input ended: the last line is read, and a dump that is not complete throws DumpFormatError. */
  end(): void {
    this.lines.end();
    this.parser.end();
  }
}

/** Parses a dump from `input`, calling `onRecord` for each record in order; throws DumpFormatError as parseDump does. */
export async function readDump(
  input: AsyncIterable<Buffer | string>,
  onRecord: (r: DumpRecord) => void,
  takePlainRecord?: TakeLineBytes,
): Promise<void> {
  const reader = new DumpRecordReader(onRecord, takePlainRecord);
  for await (const chunk of input) reader.push(chunk);
  reader.end();
}
