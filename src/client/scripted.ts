/** `mupdated client` with commands on standard input, one a line; the exit status says how they went. */
import { createInterface } from 'node:readline';
import { ConnectionProblem } from './errors.js';
import { InputError, parseCommand, type ParsedCommand } from './input.js';
import type { ClientSession, Output } from './session.js';

/** 0 every command answered OK; 1 some command got NO or BAD or could not be parsed; 2 the connection failed. */
export async function scripted(session: ClientSession, out: Output, json: boolean): Promise<number> {
  const rl = createInterface({ input: process.stdin, terminal: false, crlfDelay: Infinity });
  let code = 0;
  try {
    for await (const line of rl) {
      let cmd: ParsedCommand | null;
      try {
        cmd = parseCommand(line);
      } catch (err) {
        if (!(err instanceof InputError)) throw err;
        if (json) out.line(JSON.stringify({ command: line.trim().split(/\s+/)[0]?.toLowerCase() ?? '', error: err.message }));
        else out.note(`error: ${err.message}`);
        code = 1;
        continue;
      }
      if (!cmd) continue;
      try {
        const outcome = await session.run(cmd);
        if (outcome === 'quit') break;
        if (outcome === 'failed') code = 1;
      } catch (err) {
        if (err instanceof ConnectionProblem) {
          out.note(`mupdated client: ${err.message}`);
          return 2;
        }
        throw err;
      }
    }
  } finally {
    rl.close();
    process.stdin.destroy();
  }
  await session.close();
  return code;
}
