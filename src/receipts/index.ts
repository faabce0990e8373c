// Task receipts (README, "Task receipts"): token exchange, JWKS and discovery, verify.
export { objectiveSha256, taskLiveness, type Liveness, type ReceiptClaims, type TaskClaims } from './claims.js';
export { JWT_TOKEN_TYPE, TOKEN_EXCHANGE_GRANT_TYPE, type OAuthErrorCode, type TokenResponse } from './exchange.js';
export { KeyRing, MAX_RECEIPT_LIFETIME_SECONDS, RECEIPT_ALG, decodeKeyRing, encodeKeyRing, generateSigningKey, type PublicJwk, type SigningKey } from './keys.js';
export { DEFAULT_RELOAD_INTERVAL_MS, DEFAULT_ROTATION_PERIOD_MS, KeyManager, type KeyManagerOptions, type SaveResult, type SigningKeyStore, type StoredKeys } from './manager.js';
export type { KeySource, PodFacts, PodLookup, ReceiptsDeps, ReceiptsOptions, ReviewedIdentity, TaskByServiceAccount, TokenReviewOutcome, TokenReviewer } from './ports.js';
export { RECEIPT_PATHS, createReceiptsRouter, defaultIssuer } from './router.js';
