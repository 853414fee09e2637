/**
 * C24 C25: ACTIVATE "<name>" "<location>" "<acl>" (spec 3.3, master only):
 * creates the entry or replaces it, unless the conflict policy refuses a
 * claim on another server's active mailbox (spec 5.2).
 */
import * as rules from '../directory-rules.js';
import { directoryWrite } from './directory-write.js';

export const activate = directoryWrite({
  word: 'ACTIVATE',
  args: 3,
  creates: true,
  decide: (args, writer) => rules.activate(args[0], args[1], args[2], writer),
});
