/** The byte-exact transcript replays (test/suites/transcripts.ts) on single masters. */
import { singleMaster } from './helpers/server-factory.js';
import { transcriptTests } from './suites/transcripts.js';

transcriptTests(singleMaster);
