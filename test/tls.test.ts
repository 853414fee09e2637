/** The tests of test/suites/tls.ts on a single master. */
import { singleMaster } from './helpers/server-factory.js';
import { tlsTests } from './suites/tls.js';

tlsTests(singleMaster);
