/** The tests of test/suites/authorization.ts on a single master. */
import { singleMaster } from './helpers/server-factory.js';
import { authorizationTests } from './suites/authorization.js';

authorizationTests(singleMaster);
