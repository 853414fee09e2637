/** The tests of test/suites/tls.ts on a single master. */
import { singleMaster } from './helpers/cluster-nodes.js';
import { tlsTests } from './suites/tls.js';

tlsTests(singleMaster);
