/** The tests of test/suites/abuse.ts and test/suites/protocol-fuzz.ts on a single master. */
import { singleMaster } from './helpers/server-factory.js';
import { abuseTests } from './suites/abuse.js';
import { protocolFuzzTests } from './suites/protocol-fuzz.js';

abuseTests(singleMaster);
protocolFuzzTests(singleMaster);
