/** What `mupdated verify` found wrong, in words, with a cap so a badly damaged folder gives a readable report. */
export class Problems {
  private readonly found: string[] = [];
  private dropped = 0;

  constructor(private readonly max = 50) {}

  add(problem: string): void {
    if (this.found.length < this.max) this.found.push(problem);
    else this.dropped++;
  }

  get count(): number {
    return this.found.length + this.dropped;
  }

  /** The problems as report lines (the last one says how many were left out). */
  lines(): string[] {
    return this.dropped ? [...this.found, `... and ${this.dropped} more`] : [...this.found];
  }
}

/** A name or location for a message: its bytes as latin1, quoted so spaces and control bytes show. */
export function show(bytes: Uint8Array): string {
  return JSON.stringify(Buffer.from(bytes).toString('latin1'));
}
