/**
 * SCRAM-SHA-256 (RFC 5802, RFC 7677) without the network: RFC 7677's example
 * exchange byte for byte, both sides against each other, and the refusals.
 */
import test from 'ava';
import {
  deriveScramKeys,
  parseClientFirst,
  ScramClient,
  ScramError,
  ScramServer,
  decodeSaslName,
  encodeSaslName,
} from '../src/sasl/scram.js';
import { saslprep } from '../src/sasl/saslprep.js';

// RFC 7677 section 3: user "user", password "pencil".
const CLIENT_NONCE = 'rOprNGfwEbeRWgbNEkqO';
const SERVER_NONCE = '%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0';
const SALT = Buffer.from('W22ZaJ0SNY7soEsUEjb6gQ==', 'base64');
const CLIENT_FIRST = 'n,,n=user,r=rOprNGfwEbeRWgbNEkqO';
const SERVER_FIRST = 'r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096';
const CLIENT_FINAL = 'c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=';
const SERVER_FINAL = 'v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=';

const b = (s: string) => Buffer.from(s, 'utf8');

test('RFC 7677 test vector: the client sends exactly the example messages and accepts the server signature', async (t) => {
  const client = new ScramClient('user', b('pencil'), '', CLIENT_NONCE);
  t.is(client.first().toString(), CLIENT_FIRST);
  t.is((await client.final(b(SERVER_FIRST))).toString(), CLIENT_FINAL);
  t.true(client.verifyServer(b(SERVER_FINAL)));
  t.false(client.verifyServer(b('v=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=')));
});

test('RFC 7677 test vector: the server, from stored keys only, sends the example challenge and server signature', async (t) => {
  const keys = await deriveScramKeys(b('pencil'), SALT, 4096);
  const first = parseClientFirst(b(CLIENT_FIRST));
  t.like(first, { username: 'user', authzid: '', nonce: CLIENT_NONCE, gs2Header: 'n,,' });
  const server = new ScramServer(first, keys, SERVER_NONCE);
  t.is(server.challenge().toString(), SERVER_FIRST);
  t.is(server.finish(b(CLIENT_FINAL))?.toString(), SERVER_FINAL);
});

test('the server refuses a wrong proof, a changed nonce and a channel-binding field that does not echo the gs2 header', async (t) => {
  const keys = await deriveScramKeys(b('pencil'), SALT, 4096);
  const server = () => new ScramServer(parseClientFirst(b(CLIENT_FIRST)), keys, SERVER_NONCE);
  const badProof = CLIENT_FINAL.replace('p=dHzb', 'p=dHzc');
  t.is(server().finish(b(badProof)), null);
  t.is(server().finish(b(CLIENT_FINAL.replace('$k0', '$k1'))), null);
  t.is(server().finish(b(CLIENT_FINAL.replace('c=biws', 'c=eSws'))), null);
  t.is(server().finish(b(CLIENT_FINAL.replace(/p=.*$/, 'p=AAAA'))), null, 'a proof of the wrong length');
  // A wrong password gives a well-formed but wrong proof.
  const client = new ScramClient('user', b('pencil!'), '', CLIENT_NONCE);
  client.first();
  t.is(server().finish(await client.final(b(SERVER_FIRST))), null);
});

test('gs2 flags: "y" and an authzid are accepted and must be echoed; "p=" (channel binding) and malformed messages are refused', (t) => {
  t.like(parseClientFirst(b('y,a=ad=2Cmin,n=us=3Der,r=abc')), { gs2Header: 'y,a=ad=2Cmin,', authzid: 'ad,min', username: 'us=er' });
  t.throws(() => parseClientFirst(b('p=tls-unique,,n=user,r=abc')), { instanceOf: ScramError });
  for (const bad of [
    '',
    'n,,',
    'x,,n=user,r=abc',
    'n,,m=ext,n=user,r=abc',
    'n,,n=,r=abc',
    'n,,n=user,r=a,b',
    'n,,n=u=41,r=abc',
    'n,,n=user',
  ]) {
    t.throws(() => parseClientFirst(b(bad)), { instanceOf: ScramError }, bad);
  }
  t.throws(() => parseClientFirst(Buffer.from([0x6e, 0x2c, 0x2c, 0x6e, 0x3d, 0xff, 0x2c, 0x72, 0x3d, 0x61])), { instanceOf: ScramError });
});

test('client and server agree for an authzid, a name with "," and "=", and a non-ASCII password', async (t) => {
  const password = b('pässwörd ünicode');
  const keys = await deriveScramKeys(password, b('salt-0123456789ab'), 4096);
  const client = new ScramClient('we,ird=name', password, 'admin', 'clientnonce');
  const first = parseClientFirst(client.first());
  t.is(first.username, 'we,ird=name');
  t.is(first.authzid, 'admin');
  const server = new ScramServer(first, keys, 'servernonce');
  const final = server.finish(await client.final(server.challenge()));
  t.truthy(final);
  t.true(client.verifyServer(final!));
});

test('the client refuses a server that drops its nonce or asks for too few or too many iterations', async (t) => {
  const client = () => {
    const c = new ScramClient('user', b('pencil'), '', CLIENT_NONCE);
    c.first();
    return c;
  };
  await t.throwsAsync(client().final(b('r=other,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096')), { instanceOf: ScramError });
  await t.throwsAsync(client().final(b(`r=${CLIENT_NONCE},s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096`)), { instanceOf: ScramError });
  await t.throwsAsync(client().final(b(SERVER_FIRST.replace('i=4096', 'i=1'))), { instanceOf: ScramError });
  await t.throwsAsync(client().final(b(SERVER_FIRST.replace('i=4096', 'i=99999999'))), { instanceOf: ScramError });
  await t.throwsAsync(client().final(b('e=unknown-user')), { instanceOf: ScramError });
});

test('saslname escaping and SASLprep', (t) => {
  t.is(encodeSaslName('a,b=c'), 'a=2Cb=3Dc');
  t.is(decodeSaslName('a=2Cb=3Dc'), 'a,b=c');
  t.is(decodeSaslName('a=41'), null);
  t.is(saslprep('I\u00adX'), 'IX', 'soft hyphen mapped to nothing');
  t.is(saslprep('user'), 'user');
  t.is(saslprep('\u00aa'), 'a', 'NFKC');
  t.is(saslprep('\u2168'), 'IX', 'NFKC');
  t.is(saslprep('a\u00a0b'), 'a b', 'non-ASCII space');
  t.is(saslprep('\u0007'), null, 'control characters are prohibited');
});

test("keys are derived from the SASLprep'd password; bytes that are not UTF-8 are used as they are", async (t) => {
  const salt = b('0123456789abcdef');
  t.deepEqual(await deriveScramKeys(b('I\u00adX'), salt, 4096), await deriveScramKeys(b('IX'), salt, 4096));
  const raw = Buffer.from([0x70, 0xff, 0x77]);
  const keys = await deriveScramKeys(raw, salt, 4096);
  t.notDeepEqual(keys, await deriveScramKeys(b('p\ufffdw'), salt, 4096));
  const client = new ScramClient('user', raw, '', 'cn');
  const server = new ScramServer(parseClientFirst(client.first()), keys, 'sn');
  t.truthy(server.finish(await client.final(server.challenge())));
});
