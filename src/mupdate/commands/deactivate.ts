/**
 * C31: DEACTIVATE "<name>" "<location>" (spec 3.5, master only): an active
 * entry becomes reserved at the given location; a missing or reserved one is refused.
 */
import * as rules from '../directory-rules.js';
import { directoryWrite } from './directory-write.js';

export const deactivate = directoryWrite({
  word: 'DEACTIVATE',
  args: 2,
  creates: false,
  decide: (args) => rules.deactivate(args[0], args[1]),
});
