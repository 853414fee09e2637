/**
 * Limits per client address, so that one address cannot take the slots or
 * the password guesses of everyone: how many connections it may hold before
 * they log in, and how many failed logins it may make per minute (a budget
 * shared by all its connections; the per-connection pause alone lets
 * guesses grow with the number of connections). A spent budget delays the
 * address's password checks rather than refusing them, so a stranger's
 * guesses slow a neighbour's logins down but never lock it out.
 */
import { metricsHooks } from '../metrics/hooks.js';

export interface AdmissionLimits {
  /** Connections one address may hold that have not logged in yet. */
  maxPendingPerHost: number;
  /** Failed logins one address may make per minute; when spent, its password checks wait for it to refill. */
  failedLoginsPerMinute: number;
}

interface Budget {
  tokens: number;
  /** When `tokens` was last brought up to date (ms). */
  at: number;
}

/** Longest wait between two looks at a spent budget. */
const RESERVE_RETRY_MS = 250;

/** Budgets kept before full ones are forgotten (a full budget says nothing). */
const BUDGETS_BEFORE_SWEEP = 4096;

/**
 * The key an address is counted under: IPv4 as is (also when mapped into
 * IPv6), IPv6 by its /64 prefix, since one host usually holds a whole /64.
 */
export function hostKey(address: string | undefined): string {
  if (!address) return '?';
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  if (mapped) return mapped[1];
  if (!address.includes(':')) return address;
  const [head = '', tail = ''] = address.split('::');
  const headGroups = head ? head.split(':') : [];
  const tailGroups = tail ? tail.split(':') : [];
  const zeros = address.includes('::') ? 8 - headGroups.length - tailGroups.length : 0;
  const groups = [...headGroups, ...Array<string>(Math.max(0, zeros)).fill('0'), ...tailGroups];
  return `${groups
    .slice(0, 4)
    .map((g) => g.replace(/^0+(?=.)/, '').toLowerCase())
    .join(':')}::/64`;
}

export class Admission {
  private readonly pending = new Map<string, number>();
  private readonly budgets = new Map<string, Budget>();
  /** Size at which full budgets are next forgotten (doubles while they are not full, so sweeps stay rare). */
  private sweepAt = BUDGETS_BEFORE_SWEEP;

  constructor(
    private readonly limits: AdmissionLimits,
    private readonly now: () => number = Date.now,
  ) {}

  /** Takes a not-logged-in slot for a new connection; false when its address holds the maximum. */
  admit(host: string): boolean {
    const held = this.pending.get(host) ?? 0;
    if (held >= this.limits.maxPendingPerHost) return false;
    this.pending.set(host, held + 1);
    return true;
  }

  /** Gives the slot back: the connection logged in or ended. */
  release(host: string): void {
    const held = (this.pending.get(host) ?? 0) - 1;
    if (held > 0) this.pending.set(host, held);
    else this.pending.delete(host);
  }

  /** Connections of an address that have not logged in yet. */
  pendingOf(host: string): number {
    return this.pending.get(host) ?? 0;
  }

  /**
   * Takes one failed login of the address's budget before a password is
   * checked (so that concurrent checks cannot overdraw it): 0 when taken,
   * else the time until the budget has one again (or a check in progress
   * gives its back). A login that succeeds gives it back (`refund`).
   */
  reserve(host: string): number {
    let budget = this.budgets.get(host);
    if (!budget) {
      if (this.budgets.size >= this.sweepAt) {
        this.forgetFullBudgets();
        this.sweepAt = Math.max(BUDGETS_BEFORE_SWEEP, this.budgets.size * 2);
      }
      budget = { tokens: this.limits.failedLoginsPerMinute, at: this.now() };
      this.budgets.set(host, budget);
    }
    const tokens = this.refill(budget);
    if (tokens < 1) return Math.ceil(((1 - tokens) * 60_000) / this.limits.failedLoginsPerMinute);
    budget.tokens -= 1;
    return 0;
  }

  /** Gives back a reserved failed login: the password was right (or never answered). */
  refund(host: string): void {
    const budget = this.budgets.get(host);
    if (budget) budget.tokens = Math.min(this.limits.failedLoginsPerMinute, this.refill(budget) + 1);
  }

  private refill(budget: Budget): number {
    const now = this.now();
    const perMs = this.limits.failedLoginsPerMinute / 60_000;
    budget.tokens = Math.min(this.limits.failedLoginsPerMinute, budget.tokens + (now - budget.at) * perMs);
    budget.at = now;
    return budget.tokens;
  }

  private forgetFullBudgets(): void {
    for (const [host, budget] of this.budgets) {
      if (this.refill(budget) >= this.limits.failedLoginsPerMinute) this.budgets.delete(host);
    }
  }
}

/** One connection's standing before login: its slot among its address's, its deadline, its address's budget. */
export class LoginGate {
  private holdsSlot = true;
  private clock: NodeJS.Timeout | null = null;
  /** A failed login of the address's budget is held for the password being checked. */
  private reserved = false;

  /** The server has already taken the slot (Admission.admit). */
  constructor(
    private readonly admission: Admission,
    private readonly host: string,
  ) {}

  /** Starts the login deadline once (at the first banner). */
  startClock(timeoutMs: number, expired: () => void): void {
    if (this.holdsSlot && !this.clock) this.clock = setTimeout(expired, timeoutMs);
  }

  /**
   * Waits until a password may be checked, taking one failed login of the
   * address's budget: at once while it lasts, then as it refills. False if
   * the connection ended meanwhile (the login deadline ends a long wait).
   */
  async waitForGuess(ended: () => boolean, waiting: () => void): Promise<boolean> {
    for (let first = true; ; first = false) {
      if (ended()) return false;
      const wait = this.admission.reserve(this.host);
      if (wait === 0) break;
      if (first) waiting();
      // Checks in progress give theirs back when the password was right: look again soon.
      await new Promise((resolve) => setTimeout(resolve, Math.min(wait, RESERVE_RETRY_MS)));
    }
    this.reserved = true;
    return true;
  }

  /** The password was wrong: the reserved failed login stays spent. */
  failedLogin(): void {
    metricsHooks.failedLogin();
    this.reserved = false;
  }

  /** Logged in or gone: the slot goes back, the deadline stops, a reserved failed login is given back. */
  leave(): void {
    if (this.reserved) this.admission.refund(this.host);
    this.reserved = false;
    if (this.clock) clearTimeout(this.clock);
    this.clock = null;
    if (!this.holdsSlot) return;
    this.holdsSlot = false;
    this.admission.release(this.host);
  }
}
