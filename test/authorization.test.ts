/** The tests of test/suites/authorization.ts on a single master. */
import { singleMaster } from './helpers/cluster-nodes.js';
import { authorizationTests } from './suites/authorization.js';

authorizationTests(singleMaster);
