/** The tests of test/suites/crash.ts on a single master. */
import { singleMaster } from './helpers/server-factory.js';
import { crashTests } from './suites/crash.js';

crashTests(singleMaster);
