// ES256 signing keys for task receipts, and the ring that rotates them.
//
// A key is published (in the JWKS) from the moment it exists, but signs only from `activatesAt`:
// a rotation made by one replica is then known to every replica, and to verifiers caching the
// JWKS, before the first receipt it signs. A key superseded by its successor stays published for
// the longest a receipt lives plus clock skew, so no receipt ever outlives the key that checks it.
import { calculateJwkThumbprint, exportJWK, generateKeyPair, importJWK, type CryptoKey, type JWK } from 'jose';
import type { KeySource } from './ports.js';

export const RECEIPT_ALG = 'ES256';
/** No receipt lives longer than this (the README's promise); it also bounds how long a retired key stays published. */
export const MAX_RECEIPT_LIFETIME_SECONDS = 600;

export interface PublicJwk {
  kty: 'EC';
  crv: 'P-256';
  x: string;
  y: string;
  kid: string;
  use: 'sig';
  alg: typeof RECEIPT_ALG;
}

interface PrivateEcJwk {
  kty: 'EC';
  crv: 'P-256';
  x: string;
  y: string;
  d: string;
}

export interface SigningKey {
  /** RFC 7638 thumbprint of the public key: stable, and checkable against the key itself. */
  readonly kid: string;
  /** Epoch ms. */
  readonly createdAt: number;
  /** Epoch ms from which it signs; before that it is only published. */
  readonly activatesAt: number;
  readonly privateKey: CryptoKey;
  readonly publicJwk: PublicJwk;
  /** Only for persistence: never served. */
  readonly privateJwk: PrivateEcJwk;
}

const isString = (v: unknown): v is string => typeof v === 'string' && v.length > 0;

function asPrivateEcJwk(jwk: JWK | Record<string, unknown>): PrivateEcJwk {
  const { kty, crv, x, y, d } = jwk as Record<string, unknown>;
  if (kty !== 'EC' || crv !== 'P-256' || !isString(x) || !isString(y) || !isString(d)) throw new Error('a signing key must be a private EC P-256 JWK');
  return { kty, crv, x, y, d };
}

/** A key from its private JWK; `expectedKid` guards against a stored kid that does not match its key. */
export async function signingKeyFromJwk(jwk: JWK | Record<string, unknown>, createdAt: number, activatesAt: number, expectedKid?: string): Promise<SigningKey> {
  const privateJwk = asPrivateEcJwk(jwk);
  const { kty, crv, x, y } = privateJwk;
  const kid = await calculateJwkThumbprint({ kty, crv, x, y }, 'sha256');
  if (expectedKid !== undefined && expectedKid !== kid) throw new Error(`stored key ${expectedKid} does not match its key material (thumbprint ${kid})`);
  let privateKey: CryptoKey;
  try {
    privateKey = (await importJWK({ ...privateJwk }, RECEIPT_ALG)) as CryptoKey;
  } catch (cause) {
    throw new Error(`importing signing key ${kid}`, { cause });
  }
  return { kid, createdAt, activatesAt, privateKey, privateJwk, publicJwk: { kty, crv, x, y, kid, use: 'sig', alg: RECEIPT_ALG } };
}

export async function generateSigningKey(createdAt: number, activatesAt = createdAt): Promise<SigningKey> {
  const { privateKey } = await generateKeyPair(RECEIPT_ALG, { extractable: true });
  return signingKeyFromJwk(await exportJWK(privateKey), createdAt, activatesAt);
}

export interface KeyRingOptions {
  /** How long a superseded key stays published: the longest receipt lifetime plus clock skew. */
  retentionMs: number;
}

export const DEFAULT_CLOCK_SKEW_MS = 60_000;
export const DEFAULT_RETENTION_MS = MAX_RECEIPT_LIFETIME_SECONDS * 1000 + DEFAULT_CLOCK_SKEW_MS;

/** An immutable set of keys ordered by activation; every change returns a new ring. */
export class KeyRing implements KeySource {
  readonly keys: readonly SigningKey[];

  private constructor(
    keys: readonly SigningKey[],
    readonly options: KeyRingOptions,
  ) {
    this.keys = [...keys].sort((a, b) => a.activatesAt - b.activatesAt || a.createdAt - b.createdAt);
  }

  static of(keys: readonly SigningKey[], options: KeyRingOptions = { retentionMs: DEFAULT_RETENTION_MS }): KeyRing {
    return new KeyRing(keys, options);
  }

  /** A ring with one key, signing at once. */
  static async create(nowMs: number, options: KeyRingOptions = { retentionMs: DEFAULT_RETENTION_MS }): Promise<KeyRing> {
    return new KeyRing([await generateSigningKey(nowMs)], options);
  }

  /** The newest key already active. */
  signingKey(nowMs: number): SigningKey | undefined {
    let current: SigningKey | undefined;
    for (const key of this.keys) if (key.activatesAt <= nowMs) current = key;
    return current;
  }

  /** When `key` stopped signing (its successor's activation), or undefined while it is current or pending. */
  supersededAt(key: SigningKey, nowMs: number): number | undefined {
    const i = this.keys.indexOf(key);
    const next = this.keys[i + 1];
    return next && next.activatesAt <= nowMs ? next.activatesAt : undefined;
  }

  /** Current, pending and superseded-but-still-verifiable keys: what the JWKS serves. */
  publishedKeys(nowMs: number): readonly SigningKey[] {
    return this.keys.filter((key) => {
      const until = this.supersededAt(key, nowMs);
      return until === undefined || nowMs < until + this.options.retentionMs;
    });
  }

  /** Drops keys no live receipt can carry any more. */
  prune(nowMs: number): KeyRing {
    const kept = this.publishedKeys(nowMs);
    return kept.length === this.keys.length ? this : new KeyRing(kept, this.options);
  }

  /** Adds a new key that signs from `nowMs + activateAfterMs` (at once by default). */
  async rotate(nowMs: number, activateAfterMs = 0): Promise<KeyRing> {
    return new KeyRing([...this.keys, await generateSigningKey(nowMs, nowMs + activateAfterMs)], this.options);
  }

  /**
   * Whether to rotate now so that the next key starts signing `periodMs` after the current one
   * did, given it is made `leadMs` ahead. Never while a rotation is already pending.
   */
  dueForRotation(nowMs: number, periodMs: number, leadMs: number): boolean {
    const newest = this.keys.at(-1);
    if (!newest) return true;
    if (newest.activatesAt > nowMs) return false;
    return newest.activatesAt + periodMs - leadMs <= nowMs;
  }

  jwks(nowMs: number): { keys: PublicJwk[] } {
    return { keys: this.publishedKeys(nowMs).map((k) => k.publicJwk) };
  }
}

// ---- persistence --------------------------------------------------------------------------

const DOCUMENT_VERSION = 1;

interface StoredKeyV1 {
  kid: string;
  createdAt: string;
  activatesAt: string;
  jwk: PrivateEcJwk;
}

/** The ring as the Secret holds it (JSON, private keys included). */
export function encodeKeyRing(ring: KeyRing): string {
  const keys: StoredKeyV1[] = ring.keys.map((k) => ({
    kid: k.kid,
    createdAt: new Date(k.createdAt).toISOString(),
    activatesAt: new Date(k.activatesAt).toISOString(),
    jwk: k.privateJwk,
  }));
  return JSON.stringify({ version: DOCUMENT_VERSION, keys });
}

/**
 * Reads a stored ring. Anything unexpected throws instead of being repaired: a document of a
 * newer format, or one someone edited, must not be overwritten by a replica that misreads it.
 */
export async function decodeKeyRing(document: string, options: KeyRingOptions = { retentionMs: DEFAULT_RETENTION_MS }): Promise<KeyRing> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(document);
  } catch (cause) {
    throw new Error('the stored signing keys are not JSON', { cause });
  }
  if (typeof parsed !== 'object' || parsed === null) throw new Error('the stored signing keys are not an object');
  const { version, keys } = parsed as { version?: unknown; keys?: unknown };
  if (version !== DOCUMENT_VERSION) throw new Error(`the stored signing keys have format version ${String(version)}; this taskgrant reads version ${DOCUMENT_VERSION}`);
  if (!Array.isArray(keys) || keys.length === 0) throw new Error('the stored signing keys list no key');
  const ring: SigningKey[] = [];
  for (const [i, raw] of keys.entries()) {
    const entry = (typeof raw === 'object' && raw !== null ? raw : {}) as Record<string, unknown>;
    const createdAt = typeof entry.createdAt === 'string' ? Date.parse(entry.createdAt) : NaN;
    const activatesAt = typeof entry.activatesAt === 'string' ? Date.parse(entry.activatesAt) : NaN;
    if (!isString(entry.kid) || Number.isNaN(createdAt) || Number.isNaN(activatesAt) || typeof entry.jwk !== 'object' || entry.jwk === null)
      throw new Error(`stored signing key ${i} needs kid, createdAt, activatesAt and jwk`);
    ring.push(await signingKeyFromJwk(entry.jwk as Record<string, unknown>, createdAt, activatesAt, entry.kid));
  }
  return KeyRing.of(ring, options);
}
