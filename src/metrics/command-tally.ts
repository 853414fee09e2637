/**
 * Pairs each command of a connection with its tagged answer, for the
 * commands-by-name-and-result counter. A session answers its commands in the
 * order they were read, exactly one tagged OK/NO/BAD each, so the answer
 * written next belongs to the oldest command not yet answered.
 */
import { metricsHooks } from './hooks.js';

export class CommandTally {
  private readonly unanswered: string[] = [];

  /** A command was read (`word` null: a line that did not parse as one). */
  asked(word: string | null): void {
    this.unanswered.push(word ?? 'unparsed');
  }

  /** A tagged answer with this keyword was written. */
  answered(keyword: string): void {
    metricsHooks.commandAnswered(this.unanswered.shift() ?? 'unparsed', keyword);
  }
}
