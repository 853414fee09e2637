/** The tests of test/suites/auth.ts on a single master. */
import { singleMaster } from './helpers/server-factory.js';
import { authenticationTests } from './suites/auth.js';

authenticationTests(singleMaster);
