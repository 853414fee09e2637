/** The tests of test/suites/connections.ts on a single master. */
import { singleMaster } from './helpers/server-factory.js';
import { connectionTests } from './suites/connections.js';

connectionTests(singleMaster);
