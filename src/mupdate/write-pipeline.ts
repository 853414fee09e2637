/**
 * One connection's pipelined writes (spec 3.0, C11): consecutive writes
 * commit together, and their answers, with any FIND answered meanwhile, go
 * out in command order. The session decides what enters; this keeps the
 * order, the count in flight and the names they touch.
 */
import { ANSWER_BACKLOG_BYTES } from './output.js';

/** Writes one connection may have committing at once before its reader waits. */
const MAX_PIPELINED_WRITES = 64;

export class WritePipeline {
  /** Answers of pipelined writes, in command order. */
  private chain: Promise<void> = Promise.resolve();
  private writesInFlight = 0;
  /** Bytes of answers computed ahead (FINDs between pipelined writes), waiting for their turn. */
  private heldAnswerBytes = 0;
  /** Names the pending writes touch, with how many are pending for each. */
  private readonly pendingNames = new Map<string, number>();

  /** Resolves once every answer entered so far has been written. */
  get settled(): Promise<void> {
    return this.chain;
  }

  get busy(): boolean {
    return this.writesInFlight > 0;
  }

  /** Enough writes are committing: the reader waits for them. */
  get full(): boolean {
    return this.writesInFlight >= MAX_PIPELINED_WRITES;
  }

  /** A client that does not read its answers gets no more of them: its input waits in the kernel. */
  get answersBacklogged(): boolean {
    return this.heldAnswerBytes > ANSWER_BACKLOG_BYTES;
  }

  /** Whether a pending write touches `name` (latin1 of its bytes). */
  touches(name: string): boolean {
    return this.pendingNames.has(name);
  }

  /** A write of `name` has started; `answer` resolves to the function writing its answer. */
  addWrite(name: string, answer: Promise<() => void>): void {
    this.writesInFlight++;
    this.pendingNames.set(name, (this.pendingNames.get(name) ?? 0) + 1);
    this.chain = this.chain.then(async () => {
      (await answer)();
      this.writesInFlight--;
      const left = this.pendingNames.get(name)! - 1;
      if (left) this.pendingNames.set(name, left);
      else this.pendingNames.delete(name);
    });
  }

  /** An answer computed ahead: `write` sends it once the writes before it have answered. */
  addAnswer(answer: Buffer, write: (bytes: Buffer) => void): void {
    this.heldAnswerBytes += answer.length;
    this.chain = this.chain.then(() => {
      this.heldAnswerBytes -= answer.length;
      write(answer);
    });
  }
}
