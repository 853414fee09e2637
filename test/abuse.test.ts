/** The tests of test/suites/abuse.ts on a single master. */
import { singleMaster } from './helpers/server-factory.js';
import { abuseTests } from './suites/abuse.js';

abuseTests(singleMaster);
