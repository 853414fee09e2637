/** C29 C30: DELETE "<name>" (spec 3.6, master only): removes the entry; a missing name is refused. */
import * as rules from '../directory-rules.js';
import { directoryWrite } from './directory-write.js';

export const remove = directoryWrite({
  word: 'DELETE',
  args: 1,
  creates: false,
  decide: () => rules.remove(),
});
