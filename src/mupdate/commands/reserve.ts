/**
 * C26 C27 C28: RESERVE "<name>" "<location>" (spec 3.4, master only): a new
 * name, or the same location again, is reserved; a name held elsewhere is refused.
 */
import * as rules from '../directory-rules.js';
import { directoryWrite } from './directory-write.js';

export const reserve = directoryWrite({
  word: 'RESERVE',
  args: 2,
  creates: true,
  decide: (args) => rules.reserve(args[0], args[1]),
});
