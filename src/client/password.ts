/** The password of a MUPDATE login: the first line of a file, or asked on the terminal without echo. */
import { closeSync, openSync, readFileSync } from 'node:fs';
import tty from 'node:tty';
import { Interrupted, UsageError } from './errors.js';

/** The first line of a password file (`--password-file`); a file that cannot be read throws its fs error. */
export function readPasswordFile(path: string): string {
  return readFileSync(path, 'utf8').split(/\r?\n/)[0] ?? '';
}

/** Asks for a password on the terminal without echoing it. */
export async function askPassword(prompt: string): Promise<string> {
  let input: tty.ReadStream;
  let output: NodeJS.WritableStream;
  const opened: Array<{ destroy(): void }> = [];
  if (process.stdin.isTTY) {
    input = process.stdin;
    output = process.stderr.isTTY ? process.stderr : process.stdout;
  } else {
    let rfd: number;
    let wfd: number;
    try {
      rfd = openSync('/dev/tty', 'r');
    } catch {
      throw new UsageError('no password: give --password-file FILE (standard input is not a terminal and there is no terminal to ask on)');
    }
    try {
      wfd = openSync('/dev/tty', 'w');
    } catch {
      closeSync(rfd);
      throw new UsageError('no password: give --password-file FILE');
    }
    input = new tty.ReadStream(rfd);
    const w = new tty.WriteStream(wfd);
    output = w;
    opened.push(input, w);
  }
  output.write(prompt);
  input.setRawMode(true);
  input.resume();
  return new Promise<string>((resolve, reject) => {
    let pw = '';
    const finish = () => {
      input.removeListener('data', onData);
      input.setRawMode(false);
      input.pause();
      output.write('\n');
      for (const s of opened) s.destroy();
    };
    const onData = (d: Buffer) => {
      for (const ch of d.toString('utf8')) {
        if (ch === '\r' || ch === '\n') {
          finish();
          resolve(pw);
          return;
        }
        if (ch === '\x03' || (ch === '\x04' && pw === '')) {
          finish();
          reject(new Interrupted('no password given'));
          return;
        }
        if (ch === '\x7f' || ch === '\b') pw = [...pw].slice(0, -1).join('');
        else if (ch === '\x15') pw = '';
        else if (ch >= ' ') pw += ch;
      }
    };
    input.on('data', onData);
  });
}
