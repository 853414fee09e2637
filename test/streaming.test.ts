/** The UPDATE streaming tests (test/suites/streaming.ts) on a single master. */
import { singleMaster } from './helpers/cluster-nodes.js';
import { streamingTests } from './suites/streaming.js';

streamingTests(singleMaster);
