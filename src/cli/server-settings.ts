/** What the server takes from the config: session settings and the TLS context (at start and at each reload). */
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
  return createSecureContext({
    cert: readFileSync(c.tlsCert),
    key: readFileSync(c.tlsKey),
    minVersion: TLS_VERSIONS[c.tlsVersions.min],
    maxVersion: TLS_VERSIONS[c.tlsVersions.max],
    ...(c.tlsCiphers === undefined ? {} : { ciphers: c.tlsCiphers }),
  });
}
