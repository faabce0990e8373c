import { beforeAll, describe, expect, it } from '@jest/globals';
import { X509Certificate } from 'node:crypto';
import { Agent, request } from 'node:https';
import { connect } from 'node:tls';
import { CertificateAuthority, type IssuedCert } from './certs.js';
import { silentLogger } from '../telemetry/logger.js';
import { Metrics } from '../telemetry/metrics.js';
import { createApp } from './app.js';
import { FakeCluster } from './fixtures/kit.js';
import { DEFAULT_IDLE_TIMEOUT_MS, serveHttps, type TlsMaterial } from './server.js';

let ca: CertificateAuthority;
let first: IssuedCert;
let second: IssuedCert;

const material = (c: IssuedCert): TlsMaterial => ({ cert: c.certPem, key: c.keyPem });
const fingerprint = (c: IssuedCert) => new X509Certificate(c.certPem).fingerprint256;
const hello = (_req: unknown, res: { end(body: string): void }) => res.end('ok');

beforeAll(async () => {
  ca = await CertificateAuthority.create('taskgrant-test-ca', 3_600_000);
  const spec = { commonName: 'taskgrant-webhook', dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'], usage: 'server' as const, validityMs: 3_600_000 };
  first = await ca.issue(spec);
  second = await ca.issue(spec);
});

/** The certificate a fresh TLS connection is served; with `servername` the client sends SNI. */
function servedFingerprint(port: number, servername?: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port, ca: ca.certPem, ...(servername ? { servername } : {}) }, () => {
      resolve(socket.getPeerCertificate().fingerprint256);
      socket.end();
    });
    socket.on('error', reject);
  });
}

function get(port: number, agent?: Agent): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path: '/', ca: ca.certPem, ...(agent ? { agent } : {}) }, (res) => {
      let body = '';
      res.on('data', (chunk: Buffer) => (body += chunk.toString()));
      res.on('end', () => resolve(body));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('serveHttps', () => {
  it('serves over TLS and picks up a rotated certificate without a restart', async () => {
    let current = material(first);
    const handle = await serveHttps(hello, { port: 0, host: '127.0.0.1', tls: () => current });
    try {
      expect(await get(handle.port)).toBe('ok');
      expect(await servedFingerprint(handle.port)).toBe(fingerprint(first));
      current = material(second);
      // No SNI (the API server calling an IP sends none) and with SNI both see the new certificate.
      expect(await servedFingerprint(handle.port)).toBe(fingerprint(second));
      expect(await servedFingerprint(handle.port, 'localhost')).toBe(fingerprint(second));
      expect(await get(handle.port)).toBe('ok');
    } finally {
      await handle.close();
    }
  });

  it('keeps serving the previous certificate when a rotated one cannot be loaded', async () => {
    let current = material(first);
    const errors: Error[] = [];
    const handle = await serveHttps(hello, { port: 0, host: '127.0.0.1', tls: () => current, onTlsError: (e) => errors.push(e) });
    try {
      current = { cert: 'not a certificate', key: 'not a key' };
      expect(await servedFingerprint(handle.port)).toBe(fingerprint(first));
      expect(errors[0]?.message).toBe('loading the webhook TLS certificate');
      // The cause is an Error from node's realm, not jest's, hence no toBeInstanceOf.
      expect(errors[0]?.cause).toHaveProperty('message', expect.stringMatching(/.+/));
    } finally {
      await handle.close();
    }
  });

  it('refuses to start without a usable certificate, or on a port in use', async () => {
    await expect(serveHttps(hello, { port: 0, tls: () => ({ cert: 'x', key: 'y' }) })).rejects.toThrow('loading the webhook TLS certificate');
    const handle = await serveHttps(hello, { port: 0, host: '127.0.0.1', tls: () => material(first) });
    try {
      await expect(serveHttps(hello, { port: handle.port, host: '127.0.0.1', tls: () => material(first) })).rejects.toThrow(`listening on 127.0.0.1:${handle.port}`);
    } finally {
      await handle.close();
    }
  });

  it('closes promptly while the client holds a keep-alive connection', async () => {
    const handle = await serveHttps(hello, { port: 0, host: '127.0.0.1', tls: () => material(first) });
    const agent = new Agent({ keepAlive: true });
    try {
      expect(await get(handle.port, agent)).toBe('ok');
      const started = Date.now();
      await handle.close();
      expect(Date.now() - started).toBeLessThan(1_000);
    } finally {
      agent.destroy();
    }
  });

  it('keeps an idle connection longer than the API server does, so it is never closed under a reusing caller', async () => {
    const handle = await serveHttps(hello, { port: 0, host: '127.0.0.1', tls: () => material(first), idleTimeoutMs: 12_000 });
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    const idleSockets = () => Object.values(agent.freeSockets).flat().length;
    try {
      expect(await get(handle.port, agent)).toBe('ok');
      expect(idleSockets()).toBe(1);
      await new Promise((r) => setTimeout(r, 7_500)); // past Node's default (5 s, plus its 1 s buffer)
      expect(idleSockets()).toBe(1); // still open
      expect(await get(handle.port, agent)).toBe('ok');
    } finally {
      agent.destroy();
      await handle.close();
    }
    expect(DEFAULT_IDLE_TIMEOUT_MS).toBeGreaterThan(90_000); // kube-apiserver's idle connection timeout
  }, 20_000);

  it('drops a client that never finishes its request headers', async () => {
    const handle = await serveHttps(hello, { port: 0, host: '127.0.0.1', tls: () => material(first), requestTimeoutMs: 300 });
    try {
      const started = Date.now();
      await new Promise<void>((resolve, reject) => {
        const socket = connect({ host: '127.0.0.1', port: handle.port, ca: ca.certPem }, () => socket.write('POST /mutate/pods HTTP/1.1\r\nHost: x\r\n'));
        socket.on('error', reject);
        socket.on('close', () => resolve());
        socket.resume();
      });
      // The deadline is swept once a second.
      expect(Date.now() - started).toBeLessThan(3_000);
    } finally {
      await handle.close();
    }
  });
});

describe('admission callers authenticated by client certificate (audit finding 9)', () => {
  let clientCa: CertificateAuthority;
  let apiServerClient: IssuedCert;
  let strangerClient: IssuedCert;

  beforeAll(async () => {
    clientCa = await CertificateAuthority.create('taskgrant-webhook-client-ca', 3_600_000);
    apiServerClient = await clientCa.issue({ commonName: 'kube-apiserver-webhook-client', usage: 'client', validityMs: 3_600_000 });
    // Signed by the serving CA, which the webhook trusts for nothing else.
    strangerClient = await ca.issue({ commonName: 'someone', usage: 'client', validityMs: 3_600_000 });
  });

  function post(port: number, path: string, client?: IssuedCert): Promise<{ status: number; body: string }> {
    return new Promise((resolve, reject) => {
      const req = request(
        { host: '127.0.0.1', port, path, method: 'POST', ca: ca.certPem, headers: { 'Content-Type': 'application/json' }, ...(client ? { cert: client.certPem, key: client.keyPem } : {}) },
        (res) => {
          let body = '';
          res.on('data', (chunk: Buffer) => (body += chunk.toString()));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
        },
      );
      req.on('error', reject);
      req.end('{"not":"a review"}');
    });
  }

  it('refuses admission calls from anyone but the holder of the API server client certificate, before reading them', async () => {
    const cluster = new FakeCluster();
    const metrics = new Metrics();
    const app = createApp({ tasks: cluster, slots: cluster, serviceAccounts: cluster, accessReviewer: cluster, metrics, logger: silentLogger(), requireClientCert: true });
    const handle = await serveHttps(app, { port: 0, host: '127.0.0.1', tls: () => material(first), clientCa: clientCa.certPem });
    try {
      for (const caller of [undefined, strangerClient]) {
        const refused = await post(handle.port, '/mutate/pods', caller);
        expect(refused.status).toBe(403);
        expect(refused.body).toMatch(/only the API server may call the admission routes/);
      }
      // Nothing was parsed or counted for them; the API server's call is read (and found malformed).
      expect(await metrics.registry.getSingleMetricAsString('taskgrant_admission_decisions_total')).not.toMatch(/mutate-pods/);
      expect((await post(handle.port, '/mutate/pods', apiServerClient)).status).toBe(400);
      // Other paths (the receipt endpoints) stay open to clients without a certificate.
      expect((await post(handle.port, '/v1/verify')).status).toBe(404);
    } finally {
      await handle.close();
    }
  });
});
