/** What the server takes from the config: session settings and the TLS context (at start and at each reload). */
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createSecureContext, type SecureContext } from 'node:tls';
import { TLS_VERSIONS, type ServerConfig } from '../config.js';
import type { SessionSettings } from '../mupdate/session.js';

export function sessionSettings(c: ServerConfig): SessionSettings {
  return {
    servername: c.servername,
    limits: c.limits,
    idleTimeoutMs: c.idleTimeoutMs,
    maxBadCommands: c.maxBadCommands,
    loginTimeoutMs: c.loginTimeoutMs,
    maxCommandBeforeLogin: Math.min(c.maxCommandBeforeLogin, c.limits.maxCommand),
    streamQueueBytes: c.streamQueueBytes,
    failedLoginPauseMs: c.failedLoginPauseMs,
    maxFailedLogins: c.maxFailedLogins,
    allowPlaintext: c.allowPlaintext,
    streamQueueLimit: c.streamQueueLimit,
    socketHighWater: c.socketHighWater,
    conflictPolicy: c.conflictPolicy,
    dumpStallTimeoutMs: c.dumpStallTimeoutMs,
  };
}

export function loadTls(c: ServerConfig): SecureContext | undefined {
  if (!c.tlsCert || !c.tlsKey) return undefined;
  const cert = readFileSync(c.tlsCert);
  const key = readFileSync(c.tlsKey);
  // OpenSSL compares a pair only when both are of one type: an RSA certificate with an EC key
  // (a rotation half done) would be taken, and every handshake would then fail.
  if (!new X509Certificate(cert).checkPrivateKey(createPrivateKey(key))) {
    throw new Error(`the key in ${c.tlsKey} does not belong to the certificate in ${c.tlsCert}`);
  }
  return createSecureContext({
    cert,
    key,
    minVersion: TLS_VERSIONS[c.tlsVersions.min],
    maxVersion: TLS_VERSIONS[c.tlsVersions.max],
    ...(c.tlsCiphers === undefined ? {} : { ciphers: c.tlsCiphers }),
  });
}
