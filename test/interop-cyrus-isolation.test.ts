/**
 * Cyrus servers started by the test helpers are independent of each other:
 * stopping one (SIGTERM to its master(8), which then signals its whole
 * process group) leaves another one serving. Before each master(8) got a
 * process group of its own (helpers/cyrus-master.ts), stopping any Cyrus
 * server killed the Cyrus processes of every test file running beside it,
 * so ava had to run the files one at a time.
 */
import { interopTest, listDirectory, startCyrusMaster } from './helpers/cyrus.js';

const interop = interopTest('serial');

interop('stopping one Cyrus master(8) leaves another Cyrus server running and answering', async (t) => {
  const stopped = await startCyrusMaster();
  const other = await startCyrusMaster();
  try {
    await stopped.stop();
    t.deepEqual(await listDirectory(other.port), [], 'the other server still answers a LIST');
    t.true(other.running, 'the other master(8) still runs');
  } finally {
    await stopped.cleanup();
    await other.cleanup();
  }
});
