// The webhook's serving certificate. Self-managed mode: a CA and a serving certificate kept in
// a Secret (shared by every replica), the CA pushed into the webhook configurations' caBundle,
// the leaf renewed when a third of its life is left and the CA renewed the same way (the old CA
// stays in the bundle until it expires, so a replica still serving the old leaf keeps working).
// cert-manager mode: tls.crt / tls.key from a mounted Secret, re-read when they change.
import { X509Certificate } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { StoredTls, TlsBundle } from '../api/index.js';
import type { Logger } from '../telemetry/logger.js';
import { CertificateAuthority, certificateNotAfter } from './certs.js';
import type { TlsMaterial } from './server.js';

export type { StoredTls, TlsBundle };



export interface TlsStore {
  load(): Promise<StoredTls | undefined>;
  /** Saves; rejects when `version` is stale (another replica saved first). */
  save(bundle: TlsBundle, version: string | undefined): Promise<StoredTls>;
}

/** Where the CA must be trusted: the webhook configurations' caBundle. */
export interface CaBundleSink {
  inject(caBundlePem: string): Promise<void>;
}

export interface CertSource {
  start(): Promise<void>;
  stop(): void;
  current(): TlsMaterial;
}

export interface SelfManagedOptions {
  store: TlsStore;
  sink: CaBundleSink;
  dnsNames: string[];
  ipAddresses: string[];
  validityMs: number;
  caValidityMs?: number;
  checkIntervalMs?: number;
  logger: Logger;
  now?: () => number;
}

function renewDue(certPem: string, validityMs: number, now: number): boolean {
  return certificateNotAfter(certPem).getTime() - now < validityMs / 3;
}

export function caBundleOf(bundle: TlsBundle, now: number): string {
  const previous = bundle.previousCaCertPem && certificateNotAfter(bundle.previousCaCertPem).getTime() > now ? bundle.previousCaCertPem : '';
  return `${bundle.caCertPem.trim()}\n${previous.trim()}`.trim() + '\n';
}

export class SelfManagedCerts implements CertSource {
  private stored?: StoredTls;
  private timer?: NodeJS.Timeout;
  private injected = '';
  private readonly now: () => number;
  private readonly caValidityMs: number;

  constructor(private readonly options: SelfManagedOptions) {
    this.now = options.now ?? Date.now;
    this.caValidityMs = options.caValidityMs ?? Math.max(365 * 24 * 3_600_000, options.validityMs * 3);
  }

  async start(): Promise<void> {
    await this.reconcile();
    this.timer = setInterval(() => {
      this.reconcile().catch((err: unknown) => this.options.logger.error({ err }, 'webhook certificate check failed; will retry'));
    }, this.options.checkIntervalMs ?? 60_000);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
  }

  current(): TlsMaterial {
    if (!this.stored) throw new Error('webhook certificate not loaded');
    return { cert: this.stored.bundle.certPem, key: this.stored.bundle.keyPem };
  }

  /** PEM of every CA callers must trust right now. */
  caBundle(): string {
    if (!this.stored) throw new Error('webhook certificate not loaded');
    return caBundleOf(this.stored.bundle, this.now());
  }

  /** Load (another replica may have rotated), renew what is due, make sure the CA is trusted. */
  async reconcile(): Promise<void> {
    const { store, logger } = this.options;
    for (let attempt = 0; attempt < 3; attempt += 1) {
      const loaded = await store.load();
      const next = await this.renewed(loaded?.bundle);
      if (next === loaded?.bundle) {
        this.stored = loaded;
        break;
      }
      try {
        this.stored = await store.save(next, loaded?.version);
        logger.info({ notAfter: certificateNotAfter(next.certPem).toISOString() }, 'webhook serving certificate issued');
        break;
      } catch (err) {
        // Another replica saved first: take theirs on the next pass.
        logger.info({ err }, 'webhook certificate changed concurrently; reloading');
      }
    }
    if (!this.stored) throw new Error('could not load or create the webhook certificate');
    const bundle = caBundleOf(this.stored.bundle, this.now());
    if (bundle !== this.injected) {
      await this.options.sink.inject(bundle);
      this.injected = bundle;
    }
  }

  /** The bundle to store: `current` itself when nothing is due, else a renewed copy. */
  private async renewed(stored: TlsBundle | undefined): Promise<TlsBundle> {
    const now = this.now();
    // An emptied or corrupted Secret is treated as absent: issue anew rather than fail to start.
    const current = stored && usable(stored) ? stored : undefined;
    const { validityMs, dnsNames, ipAddresses } = this.options;
    const validCa = current && !renewDue(current.caCertPem, this.caValidityMs, now);
    const ca = validCa ? await CertificateAuthority.fromPem(current.caCertPem, current.caKeyPem) : await CertificateAuthority.create('taskgrant-webhook-ca', this.caValidityMs);
    const leafOk = validCa && !renewDue(current.certPem, validityMs, now) && sameNames(current.certPem, dnsNames);
    if (leafOk) return stored as TlsBundle;
    const leaf = await ca.issue({ commonName: dnsNames[0] ?? 'taskgrant-webhook', dnsNames, ipAddresses, usage: 'server', validityMs });
    return {
      caCertPem: ca.certPem,
      caKeyPem: ca.keyPem,
      certPem: leaf.certPem,
      keyPem: leaf.keyPem,
      ...(validCa ? (current.previousCaCertPem ? { previousCaCertPem: current.previousCaCertPem } : {}) : current ? { previousCaCertPem: current.caCertPem } : {}),
    };
  }
}

function usable(bundle: TlsBundle): boolean {
  try {
    certificateNotAfter(bundle.caCertPem);
    certificateNotAfter(bundle.certPem);
    return bundle.caKeyPem.length > 0 && bundle.keyPem.length > 0;
  } catch {
    return false;
  }
}

/** A changed Service name means the old certificate no longer matches what callers dial. */
function sameNames(certPem: string, dnsNames: string[]): boolean {
  try {
    const san = new X509Certificate(certPem).subjectAltName ?? '';
    return dnsNames.every((n) => san.split(', ').includes(`DNS:${n}`));
  } catch {
    return false;
  }
}

/** cert-manager mode: the mounted Secret's files, re-read periodically (kubelet updates them in place). */
export class FileCerts implements CertSource {
  private material?: TlsMaterial;
  private timer?: NodeJS.Timeout;

  constructor(
    private readonly dir: string,
    private readonly logger: Logger,
    private readonly intervalMs = 30_000,
  ) {}

  async start(): Promise<void> {
    await this.load();
    this.timer = setInterval(() => {
      this.load().catch((err: unknown) => this.logger.error({ err, dir: this.dir }, 'reloading the webhook certificate failed; keeping the current one'));
    }, this.intervalMs);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
  }

  current(): TlsMaterial {
    if (!this.material) throw new Error('webhook certificate not loaded');
    return this.material;
  }

  private async load(): Promise<void> {
    const [cert, key] = await Promise.all([readFile(join(this.dir, 'tls.crt'), 'utf8'), readFile(join(this.dir, 'tls.key'), 'utf8')]);
    this.material = { cert, key };
  }
}
