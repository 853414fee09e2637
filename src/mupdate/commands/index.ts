/** The command registry: each command word (upper case) and its definition. */
import { activate } from './activate.js';
import { authenticate } from './authenticate.js';
import { deactivate } from './deactivate.js';
import { remove } from './delete.js';
import { find } from './find.js';
import { list } from './list.js';
import { logout, noop } from './noop-logout.js';
import { reserve } from './reserve.js';
import { starttls } from './starttls.js';
import type { CommandDefinition } from './types.js';
import { update, xresume } from './update.js';

export type { CommandContext, ConnectionFacts, CommandDefinition, CommandInput, CommandMemory, ConnectionState } from './types.js';

export const COMMANDS: ReadonlyMap<string, CommandDefinition> = new Map(
  [authenticate, logout, starttls, noop, find, list, update, xresume, activate, reserve, deactivate, remove].map((definition) => [
    definition.word,
    definition,
  ]),
);
export { newConnectionFacts } from './types.js';
