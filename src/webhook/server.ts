// HTTPS for the webhook port. The certificate is read through a callback on every new
// connection, so a rotated webhook certificate is served without a restart and without
// dropping the connections the API server already holds.
import type { RequestListener } from 'node:http';
import { createServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { createSecureContext, type SecureContext } from 'node:tls';

export interface TlsMaterial {
  cert: string;
  key: string;
}

export interface ServeOptions {
  port: number;
  host?: string;
  /** Called per connection: must be cheap (return PEMs held in memory). */
  tls: () => TlsMaterial;
  /** A rotated certificate that cannot be loaded; the previous one keeps serving. */
  onTlsError?: (error: Error) => void;
  /** Whole-request and header deadline (default 10 s): the API server never needs longer. */
  requestTimeoutMs?: number;
  /** How long close() lets in-flight requests finish before cutting connections (default 5 s). */
  closeGraceMs?: number;
  /** Called for every TLS connection accepted: the API server should reuse a handful, not open one per call. */
  onConnection?: () => void;
  /** How long an idle keep-alive connection is kept (default 120 s; see DEFAULT_IDLE_TIMEOUT_MS). */
  idleTimeoutMs?: number;
  /**
   * CA bundle of the API server's webhook client certificate. Set: every client is asked for a
   * certificate and those verified against it are marked authorized on their socket; a client
   * without one still connects (the receipt endpoints serve backends that have none), and the
   * admission routes refuse it.
   */
  clientCa?: string;
}

/**
 * Longer than any caller keeps an idle connection (kube-apiserver's webhook client: 90 s), so the
 * caller always closes first. With Node's default of 5 s the server closed connections the API
 * server was about to reuse, and that call failed ("connection reset", failurePolicy Fail: the
 * AgentTask create was refused) — seen by make bench between two bursts.
 */
export const DEFAULT_IDLE_TIMEOUT_MS = 120_000;

export interface HttpsHandle {
  /** The bound port (useful with port 0). */
  port: number;
  close(): Promise<void>;
}

/** Holds the SecureContext for the current PEMs, rebuilt only when they change. */
class ContextCache {
  private current: (TlsMaterial & { context: SecureContext }) | undefined;

  constructor(
    private readonly read: () => TlsMaterial,
    private readonly onError: (error: Error) => void,
    private readonly clientCa: string | undefined,
  ) {}

  /** The context to use and whether it differs from the previous one. */
  refresh(): { context: SecureContext; material: TlsMaterial; changed: boolean } {
    const prior = this.current;
    try {
      const m = this.read();
      if (prior && prior.cert === m.cert && prior.key === m.key) return { context: prior.context, material: prior, changed: false };
      const context = createSecureContext({ cert: m.cert, key: m.key, minVersion: 'TLSv1.2', ...(this.clientCa ? { ca: this.clientCa } : {}) });
      this.current = { cert: m.cert, key: m.key, context };
      return { context, material: m, changed: true };
    } catch (cause) {
      const error = new Error('loading the webhook TLS certificate', { cause });
      if (!prior) throw error;
      this.onError(error);
      return { context: prior.context, material: prior, changed: false };
    }
  }
}

export async function serveHttps(app: RequestListener, options: ServeOptions): Promise<HttpsHandle> {
  const timeout = options.requestTimeoutMs ?? 10_000;
  const clientCa = options.clientCa;
  const contexts = new ContextCache(options.tls, options.onTlsError ?? (() => undefined), clientCa);
  const first = contexts.refresh();
  const server = createServer(
    {
      cert: first.material.cert,
      key: first.material.key,
      minVersion: 'TLSv1.2',
      ...(clientCa ? { ca: clientCa, requestCert: true, rejectUnauthorized: false } : {}),
      // Only clients that send SNI reach this; the API server calling https://127.0.0.1 sends
      // none (SNI carries host names, never IPs), hence setSecureContext below as well.
      SNICallback: (_servername, cb) => {
        try {
          cb(null, contexts.refresh().context);
        } catch (error) {
          cb(error as Error);
        }
      },
      handshakeTimeout: timeout,
      requestTimeout: timeout,
      headersTimeout: timeout,
      keepAliveTimeout: options.idleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS,
      // requestTimeout is only enforced when this sweep runs (default every 30 s).
      connectionsCheckingInterval: 1_000,
    },
    app,
  );
  // Prepended so it runs before the TLS layer's own 'connection' listener builds the socket
  // from the server's default context.
  server.prependListener('connection', () => {
    options.onConnection?.();
    const { material, changed } = contexts.refresh();
    if (changed) server.setSecureContext({ cert: material.cert, key: material.key, minVersion: 'TLSv1.2', ...(clientCa ? { ca: clientCa } : {}) });
  });

  await new Promise<void>((resolve, reject) => {
    const onError = (error: Error) => reject(new Error(`listening on ${options.host ?? '*'}:${options.port}`, { cause: error }));
    server.once('error', onError);
    server.listen(options.port, options.host, () => {
      server.off('error', onError);
      resolve();
    });
  });

  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve, reject) => {
        const force = setTimeout(() => server.closeAllConnections(), options.closeGraceMs ?? 5_000);
        server.close((error) => {
          clearTimeout(force);
          if (error) reject(new Error('closing the webhook server', { cause: error }));
          else resolve();
        });
        // Keep-alive connections from the API server would otherwise hold close() open.
        server.closeIdleConnections();
      }),
  };
}
