import { describe, expect, it } from '@jest/globals';
import { X509Certificate } from 'node:crypto';
import { silentLogger } from '../telemetry/logger.js';
import { SelfManagedCerts, type StoredTls, type TlsBundle, type TlsStore } from './tls.js';

class MemoryStore implements TlsStore {
  stored?: StoredTls;
  saves = 0;
  /** Simulates another replica saving first, once. */
  conflictOnce = false;
  async load() {
    return this.stored;
  }
  async save(bundle: TlsBundle, version: string | undefined) {
    if (this.conflictOnce) {
      this.conflictOnce = false;
      throw new Error('409 conflict');
    }
    if ((this.stored?.version ?? undefined) !== version) throw new Error('stale version');
    this.saves += 1;
    this.stored = { bundle, version: String(this.saves) };
    return this.stored;
  }
}

const day = 24 * 3_600_000;
function manager(store: MemoryStore, injected: string[], now = () => Date.now()) {
  return new SelfManagedCerts({
    store,
    sink: { inject: async (pem) => void injected.push(pem) },
    dnsNames: ['taskgrant-webhook.taskgrant-system.svc', 'localhost'],
    ipAddresses: ['127.0.0.1'],
    validityMs: 30 * day,
    logger: silentLogger(),
    now,
  });
}

describe('SelfManagedCerts', () => {
  it('issues a CA and a serving certificate for the Service names, and trusts the CA', async () => {
    const store = new MemoryStore();
    const injected: string[] = [];
    const certs = manager(store, injected);
    await certs.reconcile();
    const leaf = new X509Certificate(certs.current().cert);
    expect(leaf.subjectAltName).toContain('DNS:taskgrant-webhook.taskgrant-system.svc');
    expect(leaf.subjectAltName).toContain('IP Address:127.0.0.1');
    expect(leaf.verify(new X509Certificate(store.stored!.bundle.caCertPem).publicKey)).toBe(true);
    expect(injected).toEqual([certs.caBundle()]);
  });

  it('keeps a valid certificate and does not rewrite the Secret', async () => {
    const store = new MemoryStore();
    await manager(store, []).reconcile();
    const second = manager(store, []);
    await second.reconcile();
    expect(store.saves).toBe(1);
    expect(second.current().cert).toBe(store.stored!.bundle.certPem);
  });

  it('renews the leaf when a third of its life is left, keeping the CA', async () => {
    const store = new MemoryStore();
    await manager(store, []).reconcile();
    const before = store.stored!.bundle;
    const later = manager(store, [], () => Date.now() + 25 * day);
    await later.reconcile();
    expect(store.stored!.bundle.caCertPem).toBe(before.caCertPem);
    expect(store.stored!.bundle.certPem).not.toBe(before.certPem);
  });

  it('reissues from an emptied or corrupted Secret instead of failing to start', async () => {
    const store = new MemoryStore();
    store.stored = { bundle: { caCertPem: '', caKeyPem: '', certPem: '', keyPem: '' }, version: '7' };
    store.saves = 7;
    const certs = manager(store, []);
    await certs.reconcile();
    expect(new X509Certificate(certs.current().cert).subjectAltName).toContain('DNS:localhost');
  });

  it('takes the certificate another replica saved first', async () => {
    const store = new MemoryStore();
    store.conflictOnce = true;
    const certs = manager(store, []);
    await certs.reconcile();
    expect(certs.current().cert).toBe(store.stored!.bundle.certPem);
  });
});
