/** The tests of test/suites/crash.ts on a single master. */
import { singleMaster } from './helpers/cluster-nodes.js';
import { crashTests } from './suites/crash.js';

crashTests(singleMaster);
