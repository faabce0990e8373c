// X.509 issuance for the webhook's self-managed TLS (and the local control plane's PKI).
// Pure crypto, no I/O: callers decide where the PEMs are stored.
import { KeyObject, randomBytes, webcrypto } from 'node:crypto';
// @peculiar/x509 resolves its ASN.1 codecs through tsyringe, which needs the Reflect metadata API.
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';

x509.cryptoProvider.set(webcrypto as unknown as Crypto);

type SelfSignedParams = Parameters<typeof x509.X509CertificateGenerator.createSelfSigned>[0];

const ecdsa = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;

export interface KeyPairPem {
  privateKeyPem: string;
  publicKeyPem: string;
}

export interface IssuedCert {
  certPem: string;
  keyPem: string;
  notAfter: Date;
}

export interface CertSpec {
  commonName: string;
  organizations?: string[];
  dnsNames?: string[];
  ipAddresses?: string[];
  usage: 'server' | 'client' | 'server+client';
  validityMs: number;
}

function pemOfPrivateKey(key: webcrypto.CryptoKey): string {
  return KeyObject.from(key).export({ type: 'pkcs8', format: 'pem' }).toString();
}

function serial(): string {
  // RFC 5280: positive, at most 20 octets; clearing the top bit keeps it positive.
  const bytes = randomBytes(16);
  bytes[0] = bytes[0]! & 0x7f;
  return bytes.toString('hex');
}

function distinguishedName(commonName: string, organizations: string[] = []): string {
  const escape = (v: string) => v.replace(/([,+"\\<>;=])/g, '\\$1');
  return [`CN=${escape(commonName)}`, ...organizations.map((o) => `O=${escape(o)}`)].join(', ');
}

async function generateKeys(): Promise<webcrypto.CryptoKeyPair> {
  return (await webcrypto.subtle.generateKey(ecdsa, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
}

/** A self-signed CA able to sign leaf certificates. */
export class CertificateAuthority {
  private constructor(
    private readonly cert: x509.X509Certificate,
    private readonly privateKey: webcrypto.CryptoKey,
    readonly keyPem: string,
  ) {}

  static async create(commonName: string, validityMs: number): Promise<CertificateAuthority> {
    const keys = await generateKeys();
    const now = Date.now();
    const cert = await x509.X509CertificateGenerator.createSelfSigned({
      serialNumber: serial(),
      name: distinguishedName(commonName),
      notBefore: new Date(now - 60_000),
      notAfter: new Date(now + validityMs),
      keys: keys as unknown as SelfSignedParams['keys'],
      signingAlgorithm: ecdsa,
      extensions: [
        new x509.BasicConstraintsExtension(true, 0, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
        await x509.SubjectKeyIdentifierExtension.create(keys.publicKey as unknown as CryptoKey),
      ],
    });
    return new CertificateAuthority(cert, keys.privateKey, pemOfPrivateKey(keys.privateKey));
  }

  /** Re-hydrates a CA from PEMs previously produced by `create`. */
  static async fromPem(certPem: string, keyPem: string): Promise<CertificateAuthority> {
    const cert = new x509.X509Certificate(certPem);
    const der = KeyObject.from(await importPrivateKey(keyPem)).export({ type: 'pkcs8', format: 'der' });
    const privateKey = await webcrypto.subtle.importKey('pkcs8', der, ecdsa, true, ['sign']);
    return new CertificateAuthority(cert, privateKey, keyPem);
  }

  get certPem(): string {
    return this.cert.toString('pem');
  }

  get notAfter(): Date {
    return this.cert.notAfter;
  }

  async issue(spec: CertSpec): Promise<IssuedCert> {
    const keys = await generateKeys();
    const now = Date.now();
    const notAfter = new Date(Math.min(now + spec.validityMs, this.cert.notAfter.getTime()));
    const usages = spec.usage === 'server' ? [x509.ExtendedKeyUsage.serverAuth]
      : spec.usage === 'client' ? [x509.ExtendedKeyUsage.clientAuth]
        : [x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth];
    const altNames = [
      ...(spec.dnsNames ?? []).map((value) => ({ type: 'dns' as const, value })),
      ...(spec.ipAddresses ?? []).map((value) => ({ type: 'ip' as const, value })),
    ];
    const cert = await x509.X509CertificateGenerator.create({
      serialNumber: serial(),
      subject: distinguishedName(spec.commonName, spec.organizations),
      issuer: this.cert.subject,
      notBefore: new Date(now - 60_000),
      notAfter,
      publicKey: keys.publicKey as unknown as CryptoKey,
      signingKey: this.privateKey as unknown as CryptoKey,
      signingAlgorithm: ecdsa,
      extensions: [
        new x509.BasicConstraintsExtension(false, undefined, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment, true),
        new x509.ExtendedKeyUsageExtension(usages, false),
        ...(altNames.length > 0 ? [new x509.SubjectAlternativeNameExtension(altNames, false)] : []),
        await x509.AuthorityKeyIdentifierExtension.create(this.cert, false),
      ],
    });
    return { certPem: cert.toString('pem'), keyPem: pemOfPrivateKey(keys.privateKey), notAfter };
  }
}

async function importPrivateKey(pem: string): Promise<webcrypto.CryptoKey> {
  const body = pem.replace(/-----[^-]+-----/g, '').replace(/\s+/g, '');
  return webcrypto.subtle.importKey('pkcs8', Buffer.from(body, 'base64'), ecdsa, true, ['sign']);
}

/** When the PEM certificate stops being valid. */
export function certificateNotAfter(certPem: string): Date {
  return new x509.X509Certificate(certPem).notAfter;
}

/** An ECDSA P-256 key pair, e.g. for ServiceAccount token signing. */
export async function generateKeyPairPem(): Promise<KeyPairPem> {
  const keys = await generateKeys();
  return {
    privateKeyPem: pemOfPrivateKey(keys.privateKey),
    publicKeyPem: KeyObject.from(keys.publicKey).export({ type: 'spki', format: 'pem' }).toString(),
  };
}
