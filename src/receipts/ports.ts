// What the receipt endpoints need from the cluster and from the key manager, as small interfaces
// that src/kube implements (reviews.ts, lookups.ts, signing-keys.ts). The lookups are
// synchronous, over informer caches: a token exchange must never wait on a list call.
import type { AgentTask, PodFacts, ReviewedIdentity, TokenReviewOutcome } from '../api/index.js';

export type { PodFacts, ReviewedIdentity, TokenReviewOutcome };
import type { Logger } from '../telemetry/logger.js';
import type { Metrics } from '../telemetry/metrics.js';
import type { TaskLookup } from '../api/index.js';
import type { SigningKey } from './keys.js';

export interface TokenReviewer {
  /**
   * A TokenReview for the API server's own audience (src/kube/reviews.ts `Reviews`). Must not
   * throw: a failed review is `unauthenticated`.
   */
  reviewToken(token: string): Promise<TokenReviewOutcome>;
}

export interface TaskByServiceAccount {
  /**
   * The task whose grant `namespace/serviceAccount` is (the managed ServiceAccount's
   * `taskgrant.io/task` label), or undefined when it is no task's ServiceAccount.
   */
  find(namespace: string, serviceAccount: string): AgentTask | undefined;
}

export interface PodLookup {
  /** From the task-pod informer cache (pods labelled `taskgrant.io/task`); undefined for any other pod. */
  get(namespace: string, name: string): PodFacts | undefined;
}

export interface KeySource {
  /** The key receipts are signed with now, or undefined when none can be trusted (fail closed). */
  signingKey(nowMs: number): SigningKey | undefined;
  /** Every key a live receipt may carry: the JWKS. */
  publishedKeys(nowMs: number): readonly SigningKey[];
}

/** What the receipt endpoints need beyond what the admission webhook already has. */
export interface ReceiptsOptions {
  /** `iss` of every receipt and the base of the discovery URLs, e.g. `https://taskgrant-webhook.taskgrant-system.svc`. */
  issuer: string;
  keys: KeySource;
  tokenReviewer: TokenReviewer;
  taskByServiceAccount: TaskByServiceAccount;
  pods: PodLookup;
  /** A TokenReview slower than this is answered 503 (default 5000 ms). */
  reviewTimeoutMs?: number;
}

export interface ReceiptsDeps extends ReceiptsOptions {
  tasks: TaskLookup;
  metrics: Metrics;
  logger: Logger;
  /** Injected so expiry checks are testable; defaults to the system clock. */
  now?: () => Date;
}
