/**
 * The interactive `mupdated client`: a prompt with history and Tab
 * completion, output printed above the prompt, Ctrl-C cancelling the
 * command that waits (or the watch) and Ctrl-D leaving.
 */
import { clearLine, createInterface, cursorTo, type Interface } from 'node:readline';
import { ConnectionProblem, Interrupted, UsageError } from './errors.js';
import { HISTORY_SIZE, historyPath, loadHistory, saveHistory } from './history.js';
import { parseCommand, type ParsedCommand } from './input.js';
import { paint } from './render.js';
import type { ClientSession, Output, WatchHooks } from './session.js';

export async function interactive(session: ClientSession, target: string, setOutput: (o: Output) => void): Promise<number> {
  const path = historyPath();
  const rl: Interface = createInterface({
    input: process.stdin,
    output: process.stdout,
    terminal: !!process.stdout.isTTY,
    history: loadHistory(path),
    historySize: HISTORY_SIZE,
    removeHistoryDuplicates: true,
    completer: (line: string) => session.complete(line),
    prompt: `${target}> `,
  });
  const promptText = `${target}> `;
  rl.on('history', (h: string[]) => saveHistory(path, h));
  let promptShown = false;
  let closed = false;
  rl.once('close', () => {
    closed = true;
  });
  const stdout = process.stdout;
  const print = (text: string) => {
    if (promptShown && !closed && rl.terminal) {
      cursorTo(stdout, 0);
      clearLine(stdout, 0);
      stdout.write(`${text}\n`);
      rl.prompt(true);
    } else stdout.write(`${text}\n`);
  };
  setOutput({ line: print, note: print });
  const showPrompt = () => {
    if (closed) return;
    promptShown = true;
    rl.prompt(true);
  };
  const hooks: WatchHooks = {
    begin: () => {
      rl.setPrompt('');
      showPrompt();
    },
    end: () => {
      // what was typed while watching was not run: drop it
      if (closed) return;
      if (rl.line !== '') {
        rl.write(null, { ctrl: true, name: 'e' });
        rl.write(null, { ctrl: true, name: 'u' });
      }
      promptShown = false;
      cursorTo(stdout, 0);
      clearLine(stdout, 0);
      rl.setPrompt(promptText);
    },
  };

  return new Promise<number>((resolve) => {
    const queue: string[] = [];
    let busy = false;
    let closing = false;
    let finished = false;
    const finish = async () => {
      if (finished) return;
      finished = true;
      promptShown = false; // (a prompt() on a closed interface would resume stdin and keep the process alive)
      await session.close();
      rl.close();
      resolve(0);
    };
    const pump = async () => {
      if (busy || finished) return;
      busy = true;
      promptShown = false;
      while (queue.length > 0 && !closing) {
        const line = queue.shift()!;
        let cmd: ParsedCommand | null = null;
        try {
          cmd = parseCommand(line);
        } catch (err) {
          print(paint(session.style, 'red', `error: ${(err as Error).message}`));
        }
        if (!cmd) continue;
        try {
          if ((await session.run(cmd, hooks)) === 'quit') closing = true;
        } catch (err) {
          if (err instanceof ConnectionProblem || err instanceof UsageError || err instanceof Interrupted) {
            print(paint(session.style, 'red', `error: ${err.message}`));
          } else {
            print(paint(session.style, 'red', `error: ${(err as Error).message ?? String(err)}`));
          }
        }
      }
      busy = false;
      if (closing) {
        await finish();
        return;
      }
      showPrompt();
    };
    rl.on('line', (line: string) => {
      if (session.watching) {
        print(paint(session.style, 'dim', '(watching: Ctrl-C returns to the prompt)'));
        return;
      }
      queue.push(line);
      void pump();
    });
    rl.on('SIGINT', () => {
      if (session.watching || busy) {
        stdout.write('^C\n');
        session.cancel();
        return;
      }
      if (closed) return;
      if (rl.line !== '') {
        rl.write(null, { ctrl: true, name: 'e' });
        stdout.write('^C\n');
        rl.write(null, { ctrl: true, name: 'u' });
        return;
      }
      print(paint(session.style, 'dim', '(type quit or press Ctrl-D to leave)'));
    });
    rl.on('close', () => {
      promptShown = false;
      if (finished) return;
      closing = true;
      if (session.watching) session.cancel();
      if (!busy) {
        stdout.write('\n');
        void finish();
      }
    });
    print(paint(session.style, 'dim', 'type help for the commands, Tab completes, Ctrl-D leaves'));
    showPrompt();
  });
}
