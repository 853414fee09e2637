/** The directory command tests (test/suites/directory-commands.ts) on a single master. */
import { singleMaster } from './helpers/server-factory.js';
import { directoryCommandTests } from './suites/directory-commands.js';

directoryCommandTests(singleMaster);
