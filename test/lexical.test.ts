/** The tests of test/suites/lexical.ts on a single master. */
import { singleMaster } from './helpers/cluster-nodes.js';
import { lexicalTests } from './suites/lexical.js';

lexicalTests(singleMaster);
