/** The real `mupdatetest` (test/suites/mupdatetest.ts) against a single master. */
import { startMupdated } from './helpers/server.js';
import { mupdatetestTests } from './suites/mupdatetest.js';

mupdatetestTests(async () => [await startMupdated()]);
