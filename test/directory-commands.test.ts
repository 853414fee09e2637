/** The directory command tests (test/suites/directory-commands.ts) on a single master. */
import { singleMaster } from './helpers/cluster-nodes.js';
import { directoryCommandTests } from './suites/directory-commands.js';

directoryCommandTests(singleMaster);
