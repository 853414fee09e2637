/**
 * The metrics listener (`metrics_listen`): GET /metrics (Prometheus text
 * format), /healthz (200 while the process answers) and /readyz (200 only
 * when the server can do its job; a slave: first sync done and streaming).
 * Nothing else is served; it is meant for loopback or a monitoring network.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { HostPort } from '../host-port.js';
import type { Registry } from 'prom-client';

export interface Readiness {
  /** null when ready, else why not (sent as the 503's body). */
  notReadyReason(): string | null | Promise<string | null>;
}

export interface MetricsListener {
  address: HostPort;
  close(): Promise<void>;
}

export async function startMetricsListener(at: HostPort, registry: Registry, readiness: Readiness): Promise<MetricsListener> {
  const server: Server = createServer((req, res) => void answer(req, res, registry, readiness));
  // Slow or idle scrapers do not hold sockets forever.
  server.requestTimeout = 10_000;
  server.headersTimeout = 5_000;
  server.keepAliveTimeout = 5_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host: at.host, port: at.port }, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const addr = server.address();
  const address = typeof addr === 'object' && addr ? { host: addr.address, port: addr.port } : at;
  return {
    address,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

async function answer(req: IncomingMessage, res: ServerResponse, registry: Registry, readiness: Readiness): Promise<void> {
  const path = (req.url ?? '/').split('?')[0];
  if (req.method !== 'GET' && req.method !== 'HEAD') return send(res, 405, 'only GET\n');
  if (path === '/metrics') {
    try {
      const body = await registry.metrics();
      res.setHeader('Content-Type', registry.contentType);
      return send(res, 200, body);
    } catch (err) {
      return send(res, 500, `metrics could not be collected: ${(err as Error).message}\n`);
    }
  }
  if (path === '/healthz') return send(res, 200, 'ok\n');
  if (path === '/readyz') {
    const reason = await readiness.notReadyReason();
    return reason === null ? send(res, 200, 'ready\n') : send(res, 503, `not ready: ${reason}\n`);
  }
  return send(res, 404, 'not found: try /metrics, /healthz or /readyz\n');
}

function send(res: ServerResponse, status: number, body: string): void {
  res.statusCode = status;
  if (!res.hasHeader('Content-Type')) res.setHeader('Content-Type', 'text/plain; charset=utf-8');
  res.end(res.req.method === 'HEAD' ? undefined : body);
}
