// A fault-injecting HTTPS proxy on loopback between the operator and the API server: 500s,
// 429s with Retry-After, 409 conflicts on writes, slow answers, watches that drop or silently
// stall. It authenticates upstream as the admin and counts what passes, so a test can bound the
// request rate (no hot loop under faults).
import { createServer, request, type Server } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { readFileSync, writeFileSync } from 'node:fs';
import { parse } from 'yaml';
import { CertificateAuthority } from '../../src/webhook/certs.js';

export interface FaultRates {
  /** Probability of each fault per non-watch request. */
  error500: number;
  throttle429: number;
  conflict409: number;
  slow: number;
  slowMs: number;
  /** Probability a watch is cut after a few seconds / silently stalls (stays open, sends nothing). */
  dropWatch: number;
  stallWatch: number;
}

export const noFaults: FaultRates = { error500: 0, throttle429: 0, conflict409: 0, slow: 0, slowMs: 0, dropWatch: 0, stallWatch: 0 };

interface Kubeconfig {
  clusters: Array<{ cluster: { server: string; 'certificate-authority-data': string } }>;
  users: Array<{ user: { 'client-certificate-data': string; 'client-key-data': string } }>;
}

export class FaultProxy {
  rates: FaultRates = noFaults;
  readonly counts = { requests: 0, injected: 0, watches: 0 };
  private readonly perSecond = new Map<number, number>();
  private server?: Server;
  private readonly open = new Set<IncomingMessage>();

  private constructor(
    private readonly upstream: { server: string; ca: string; cert: string; key: string },
    private readonly tls: { cert: string; key: string; ca: string },
  ) {}

  static async create(adminKubeconfig: string): Promise<FaultProxy> {
    const file = parse(readFileSync(adminKubeconfig, 'utf8')) as Kubeconfig;
    const b64 = (s: string) => Buffer.from(s, 'base64').toString('utf8');
    const cluster = file.clusters[0]!.cluster;
    const user = file.users[0]!.user;
    const ca = await CertificateAuthority.create('fault-proxy-ca', 24 * 3_600_000);
    const leaf = await ca.issue({ commonName: 'fault-proxy', ipAddresses: ['127.0.0.1'], dnsNames: ['localhost'], usage: 'server', validityMs: 24 * 3_600_000 });
    return new FaultProxy(
      { server: cluster.server, ca: b64(cluster['certificate-authority-data']), cert: b64(user['client-certificate-data']), key: b64(user['client-key-data']) },
      { cert: leaf.certPem, key: leaf.keyPem, ca: ca.certPem },
    );
  }

  /** Listens on 127.0.0.1 and writes a kubeconfig pointing at the proxy. */
  async start(kubeconfigPath: string): Promise<void> {
    this.server = createServer({ cert: this.tls.cert, key: this.tls.key }, (req, res) => void this.handle(req, res));
    await new Promise<void>((resolve) => this.server!.listen(0, '127.0.0.1', () => resolve()));
    const port = (this.server.address() as AddressInfo).port;
    const b64 = (s: string) => Buffer.from(s).toString('base64');
    writeFileSync(
      kubeconfigPath,
      [
        'apiVersion: v1',
        'kind: Config',
        'clusters: [{name: proxy, cluster: {server: "https://127.0.0.1:' + port + '", certificate-authority-data: ' + b64(this.tls.ca) + '}}]',
        // The proxy authenticates upstream itself; the operator just needs some credentials.
        'users: [{name: proxy, user: {token: through-the-fault-proxy}}]',
        'contexts: [{name: proxy, context: {cluster: proxy, user: proxy}}]',
        'current-context: proxy',
        '',
      ].join('\n'),
      { mode: 0o600 },
    );
  }

  async stop(): Promise<void> {
    for (const req of this.open) req.socket.destroy();
    this.server?.closeAllConnections();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }

  /** The highest number of requests seen in any one second. */
  peakPerSecond(): number {
    return Math.max(0, ...this.perSecond.values());
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    this.counts.requests += 1;
    const second = Math.floor(Date.now() / 1000);
    this.perSecond.set(second, (this.perSecond.get(second) ?? 0) + 1);
    const isWatch = /[?&]watch=(true|1)/.test(req.url ?? '');
    const isWrite = req.method !== 'GET';
    const roll = Math.random();
    const r = this.rates;
    if (!isWatch) {
      let threshold = r.error500;
      if (roll < threshold) return this.inject(res, 500, 'InternalError', 'injected fault');
      threshold += r.throttle429;
      if (roll < threshold) return this.inject(res, 429, 'TooManyRequests', 'injected throttle', { 'Retry-After': '1' });
      threshold += isWrite ? r.conflict409 : 0;
      if (roll < threshold) return this.inject(res, 409, 'Conflict', 'injected conflict: the object has been modified');
      threshold += r.slow;
      if (roll < threshold) {
        this.counts.injected += 1;
        setTimeout(() => this.forward(req, res, false), r.slowMs);
        return;
      }
    }
    this.forward(req, res, isWatch);
  }

  private inject(res: ServerResponse, code: number, reason: string, message: string, headers: Record<string, string> = {}): void {
    this.counts.injected += 1;
    res.writeHead(code, { 'Content-Type': 'application/json', ...headers });
    res.end(JSON.stringify({ kind: 'Status', apiVersion: 'v1', status: 'Failure', message, reason, code }));
  }

  private forward(req: IncomingMessage, res: ServerResponse, isWatch: boolean): void {
    const headers = { ...req.headers };
    delete headers.authorization;
    delete headers.host;
    this.open.add(req);
    req.on('close', () => this.open.delete(req));
    const upstream = request(
      `${this.upstream.server}${req.url ?? '/'}`,
      { method: req.method, headers, ca: this.upstream.ca, cert: this.upstream.cert, key: this.upstream.key },
      (up) => {
        res.writeHead(up.statusCode ?? 502, up.headers);
        if (!isWatch) {
          up.pipe(res);
          return;
        }
        this.counts.watches += 1;
        const roll = Math.random();
        if (roll < this.rates.stallWatch) {
          // Silently stalled: the connection stays open and nothing more ever arrives.
          this.counts.injected += 1;
          up.once('data', (chunk: Buffer) => res.write(chunk));
          return;
        }
        up.pipe(res);
        if (roll < this.rates.stallWatch + this.rates.dropWatch) {
          this.counts.injected += 1;
          setTimeout(() => (up.destroy(), res.destroy()), 1000 + Math.random() * 4000);
        }
      },
    );
    upstream.on('error', () => {
      if (!res.headersSent) res.writeHead(502);
      res.end();
    });
    req.pipe(upstream);
  }
}
