/** The UPDATE streaming tests (test/suites/streaming.ts) on a single master. */
import { singleMaster } from './helpers/server-factory.js';
import { streamingTests } from './suites/streaming.js';

streamingTests(singleMaster);
