/**
 * A real pseudo-terminal for tests, through tmux: a private tmux server
 * (`tmux -L <unique>`), one 120x40 window running a command, keys typed with
 * `send-keys`, the screen read with `capture-pane`. Every wait is bounded.
 */
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';

function shellQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

/** Reads every 100 ms until the text matches or the time is up (bounded); the last text read. */
async function pollUntil(read: () => string, what: RegExp, timeoutMs: number): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  for (let i = 0; i < 10_000; i++) {
    last = read();
    if (what.test(last) || Date.now() >= deadline) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  return last;
}

export function tmuxAvailable(): boolean {
  return spawnSync('tmux', ['-V'], { encoding: 'utf8' }).status === 0;
}

export class Tmux {
  readonly socket = `mupdated-test-${process.pid}-${randomBytes(4).toString('hex')}`;
  private alive = false;

  private tmux(args: string[], input?: string): string {
    const r = spawnSync('tmux', ['-L', this.socket, ...args], { encoding: 'utf8', input, timeout: 10_000 });
    if (r.status !== 0) throw new Error(`tmux ${args.join(' ')} failed (${r.status}): ${r.stderr}${r.error?.message ?? ''}`);
    return r.stdout;
  }

  /**
   * Starts `argv` in a new 120x40 session with the given environment. When it
   * exits, the pane shows `[exit N]` and stays open so its screen can be read.
   */
  start(argv: string[], env: Record<string, string | null> = {}): void {
    const entries = Object.entries(env);
    const sets = [
      ...entries.filter(([, v]) => v === null).map(([k]) => `-u ${k}`),
      ...entries.filter(([, v]) => v !== null).map(([k, v]) => `${k}=${shellQuote(v!)}`),
    ];
    const cmd = `env ${sets.join(' ')} ${argv.map(shellQuote).join(' ')}; echo "[exit $?]"; sleep 600`;
    this.tmux(['-f', '/dev/null', 'new-session', '-d', '-x', '120', '-y', '40', cmd]);
    this.alive = true;
  }

  /** Types text literally (no key names). */
  type(text: string): void {
    this.tmux(['send-keys', '-l', text]);
  }

  /** Presses keys by tmux name: Enter, Tab, Up, C-c, C-d ... */
  press(...keys: string[]): void {
    this.tmux(['send-keys', ...keys]);
  }

  /** The screen and its scrollback, wrapped lines joined, trailing blank lines dropped. */
  screen(escapes = false): string {
    const out = this.tmux(['capture-pane', '-p', '-J', '-S', '-2000', ...(escapes ? ['-e'] : [])]);
    return out.replace(/\s+$/, '');
  }

  /** Waits until the screen matches (bounded); returns the screen. */
  async waitFor(what: RegExp, timeoutMs = 15_000): Promise<string> {
    const last = await pollUntil(() => this.screen(), what, timeoutMs);
    if (what.test(last)) return last;
    throw new Error(`the terminal never showed ${what}; screen:\n${last}`);
  }

  /** The text of the line the cursor is on, up to the cursor at least (so typed trailing spaces show). */
  cursorLine(): string {
    const [x, y] = this.tmux(['display-message', '-p', '#{cursor_x} #{cursor_y}']).trim().split(' ').map(Number);
    const visible = this.tmux(['capture-pane', '-p']).split('\n');
    const line = (visible[y] ?? '').replace(/\s+$/, '');
    return line.length >= x ? line : line.padEnd(x);
  }

  /** Waits until the cursor's line matches. */
  async waitForCursorLine(what: RegExp, timeoutMs = 10_000): Promise<string> {
    const last = await pollUntil(() => this.cursorLine(), what, timeoutMs);
    if (what.test(last)) return last;
    throw new Error(`the cursor line never showed ${what}; it is ${JSON.stringify(last)}; screen:\n${this.screen()}`);
  }

  kill(): void {
    if (!this.alive) return;
    this.alive = false;
    spawnSync('tmux', ['-L', this.socket, 'kill-server'], { timeout: 10_000 });
  }
}

/** Established TCP connections whose local end is 127.0.0.1:port (the server's side of each client). */
export function establishedAt(port: number): number {
  let n = 0;
  for (const file of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text = '';
    try {
      text = readFileSync(file, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f.length < 4) continue;
      const localPort = parseInt(f[1].split(':')[1] ?? '', 16);
      if (localPort === port && f[3] === '01') n++;
    }
  }
  return n;
}
