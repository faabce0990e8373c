import { describe, expect, it } from '@jest/globals';
import { SignJWT, createLocalJWKSet, jwtVerify } from 'jose';
import { DEFAULT_RETENTION_MS, KeyRing, MAX_RECEIPT_LIFETIME_SECONDS, decodeKeyRing, encodeKeyRing } from './keys.js';
import { T0 } from './kit.test-support.js';

const MIN = 60_000;
const kids = (ring: KeyRing, at: number) => ring.publishedKeys(at).map((k) => k.kid);

describe('KeyRing', () => {
  it('signs with one ES256 key that the JWKS publishes, kid = RFC 7638 thumbprint', async () => {
    const ring = await KeyRing.create(T0);
    const key = ring.signingKey(T0);
    expect(key).toBeDefined();
    expect(ring.jwks(T0)).toEqual({ keys: [{ kty: 'EC', crv: 'P-256', x: key?.publicJwk.x, y: key?.publicJwk.y, kid: key?.kid, use: 'sig', alg: 'ES256' }] });
    expect(JSON.stringify(ring.jwks(T0))).not.toContain('"d"');
    const jwt = await new SignJWT({}).setProtectedHeader({ alg: 'ES256', kid: key!.kid }).sign(key!.privateKey);
    await expect(jwtVerify(jwt, createLocalJWKSet(ring.jwks(T0)))).resolves.toBeDefined();
  });

  it('after rotate() signs with the new key and still publishes the previous one', async () => {
    const first = await KeyRing.create(T0);
    const old = first.signingKey(T0)!;
    const rotated = await first.rotate(T0 + MIN);
    const current = rotated.signingKey(T0 + MIN)!;
    expect(current.kid).not.toBe(old.kid);
    expect(kids(rotated, T0 + MIN)).toEqual([old.kid, current.kid]);
  });

  it('drops the previous key once every receipt it signed has expired (max lifetime + skew), not before', async () => {
    const rotatedAt = T0 + 5 * MIN;
    const ring = await (await KeyRing.create(T0)).rotate(rotatedAt);
    const [old, current] = ring.keys;
    // The last receipt `old` signed was signed just before rotatedAt and lives 10 min.
    const lastReceiptExpiry = rotatedAt + MAX_RECEIPT_LIFETIME_SECONDS * 1000;
    expect(kids(ring, lastReceiptExpiry)).toEqual([old!.kid, current!.kid]);
    expect(kids(ring, rotatedAt + DEFAULT_RETENTION_MS - 1)).toEqual([old!.kid, current!.kid]);
    expect(kids(ring, rotatedAt + DEFAULT_RETENTION_MS)).toEqual([current!.kid]);
    expect(ring.prune(rotatedAt + DEFAULT_RETENTION_MS).keys.map((k) => k.kid)).toEqual([current!.kid]);
    expect(ring.prune(lastReceiptExpiry)).toBe(ring);
  });

  it('publishes a key made ahead of time before it signs, and does not rotate again while it is pending', async () => {
    const ring = await (await KeyRing.create(T0)).rotate(T0 + MIN, 3 * MIN);
    const [old, next] = ring.keys;
    expect(ring.signingKey(T0 + 2 * MIN)?.kid).toBe(old!.kid);
    expect(kids(ring, T0 + 2 * MIN)).toEqual([old!.kid, next!.kid]);
    expect(ring.signingKey(T0 + 4 * MIN)?.kid).toBe(next!.kid);
    expect(ring.dueForRotation(T0 + 2 * MIN, MIN, 0)).toBe(false);
    expect(ring.dueForRotation(T0 + 4 * MIN, 10 * MIN, 3 * MIN)).toBe(false);
    expect(ring.dueForRotation(T0 + 11 * MIN, 10 * MIN, 3 * MIN)).toBe(true);
  });

  it('round-trips through its stored document', async () => {
    const ring = await (await KeyRing.create(T0)).rotate(T0 + MIN, MIN);
    const again = await decodeKeyRing(encodeKeyRing(ring));
    expect(again.keys.map((k) => [k.kid, k.createdAt, k.activatesAt])).toEqual(ring.keys.map((k) => [k.kid, k.createdAt, k.activatesAt]));
    const key = again.signingKey(T0 + 3 * MIN)!;
    const jwt = await new SignJWT({}).setProtectedHeader({ alg: 'ES256', kid: key.kid }).sign(key.privateKey);
    await expect(jwtVerify(jwt, createLocalJWKSet(ring.jwks(T0 + 3 * MIN)))).resolves.toBeDefined();
  });

  it('refuses a stored document it cannot trust instead of repairing it', async () => {
    const ring = await KeyRing.create(T0);
    const doc = JSON.parse(encodeKeyRing(ring)) as { version: number; keys: Array<Record<string, unknown>> };
    await expect(decodeKeyRing('not json')).rejects.toThrow('not JSON');
    await expect(decodeKeyRing(JSON.stringify({ ...doc, version: 2 }))).rejects.toThrow('format version 2');
    await expect(decodeKeyRing(JSON.stringify({ ...doc, keys: [] }))).rejects.toThrow('no key');
    await expect(decodeKeyRing(JSON.stringify({ ...doc, keys: [{ ...doc.keys[0], kid: 'forged' }] }))).rejects.toThrow('does not match its key material');
    const other = JSON.parse(encodeKeyRing(await KeyRing.create(T0))) as typeof doc;
    const jwk = { ...(doc.keys[0]!.jwk as object), d: (other.keys[0]!.jwk as { d: string }).d };
    await expect(decodeKeyRing(JSON.stringify({ ...doc, keys: [{ ...doc.keys[0], jwk }] }))).rejects.toThrow('importing signing key');
  });
});
