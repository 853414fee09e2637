/** The tests of test/suites/lexical.ts on a single master. */
import { singleMaster } from './helpers/server-factory.js';
import { lexicalTests } from './suites/lexical.js';

lexicalTests(singleMaster);
