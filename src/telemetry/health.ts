// /healthz (the process answers), /readyz (caches synced, policies loaded, not shutting down)
// and /metrics on a plain HTTP listener bound to the configured address.
import { createServer, type Server } from 'node:http';
import type { Registry } from 'prom-client';

export interface HealthServerOptions {
  host: string;
  port: number;
  registry: Registry;
  /** Undefined when ready; otherwise what is missing, shown to whoever probes. */
  notReady: () => string | undefined;
  /** A line about the mode in force, added to /readyz's answer. */
  detail?: () => string;
}

export interface RunningServer {
  port: number;
  close(): Promise<void>;
}

export async function startHealthServer(options: HealthServerOptions): Promise<RunningServer> {
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET') {
      res.writeHead(405).end();
      return;
    }
    if (path === '/healthz') {
      res.writeHead(200, { 'Content-Type': 'text/plain' }).end('ok');
    } else if (path === '/readyz') {
      const missing = options.notReady();
      const detail = options.detail ? `\n${options.detail()}` : '';
      res.writeHead(missing ? 503 : 200, { 'Content-Type': 'text/plain' }).end(`${missing ?? 'ok'}${detail}`);
    } else if (path === '/metrics') {
      options.registry
        .metrics()
        .then((text) => res.writeHead(200, { 'Content-Type': options.registry.contentType }).end(text))
        .catch(() => res.writeHead(500).end());
    } else {
      res.writeHead(404).end();
    }
  });
  server.requestTimeout = 10_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, () => resolve());
  });
  const address = server.address();
  return {
    port: typeof address === 'object' && address ? address.port : options.port,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}
