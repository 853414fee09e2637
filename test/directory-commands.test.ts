import test from 'ava';
import { RawClient } from './helpers/raw-client.js';
import { startMupdated, type RunningMupdated } from './helpers/server.js';

let server: RunningMupdated;
test.before(async () => { server = await startMupdated(); });
test.after.always(async () => { await server?.stop(); });

test('C24 ACTIVATE then FIND returns exactly the bytes sent', async (t) => {
  const c = await RawClient.login(server.port);
  c.send('X1 ACTIVATE "user.c24" "backend1!default" "c24\tlrswipkxtecdan\t"\r\n');
  t.deepEqual(await c.readUntilTagged('X1'), ['X1 OK "done"']);
  c.send('X2 FIND "user.c24"\r\n');
  t.deepEqual(await c.readUntilTagged('X2'), [
    'X2 MAILBOX {8+}', 'user.c24 {16+}', 'backend1!default {19+}', 'c24\tlrswipkxtecdan\t', 'X2 OK "Search completed"',
  ]);
  c.close();
});
