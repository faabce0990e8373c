// What the webhook needs from the cluster, as small interfaces main.ts implements over its
// informer caches and clients. Lookups are synchronous on purpose: an admission answer must never
// wait on a reconcile or a list call (the API server holds the user's request open meanwhile).
import type { RequestHandler } from 'express';
import type { SlotClaim, SlotVerdict, TaskLookup } from '../api/index.js';
import type { Logger } from '../telemetry/logger.js';
import type { Metrics } from '../telemetry/metrics.js';
import type { UserInfo } from './admission.js';

export type { TaskLookup };

export type { SlotClaim, SlotVerdict };

export interface PodSlots {
  /**
   * Holds one of the task's maxPods slots for this pod, in a record every replica writes with a
   * resourceVersion precondition — the API server serialises the claims, so two replicas cannot
   * both hand out the last slot. Counted: pods that carry the grant and have not terminated, and
   * claims made moments ago whose pods the caches may not show yet. A retry of the same pod
   * name is not a second pod.
   */
  claim(claim: SlotClaim): Promise<SlotVerdict>;
}

export interface ServiceAccountLookup {
  /** Whether the ServiceAccount carries `app.kubernetes.io/managed-by: taskgrant`. */
  isManaged(namespace: string, name: string): boolean;
  /** The `taskgrant.io/task` label of a managed ServiceAccount: the task that owns it. */
  taskOf(namespace: string, name: string): string | undefined;
}

export interface AccessReviewer {
  /**
   * Whether `user` may `approve` `agenttasks.taskgrant.io` in `namespace` (a SubjectAccessReview
   * carrying username, uid, groups and extra as the admission request presented them).
   * Rejects on failure; the webhook then refuses the approval.
   */
  canApprove(user: UserInfo, namespace: string): Promise<boolean>;
}

export interface WebhookDeps {
  tasks: TaskLookup;
  slots: PodSlots;
  serviceAccounts: ServiceAccountLookup;
  accessReviewer: AccessReviewer;
  metrics: Metrics;
  logger: Logger;
  /** Injected so expiry checks are testable; defaults to the system clock. */
  now?: () => Date;
  /**
   * A handler that has not answered by then is refused (default 5000 ms). Keep it below the
   * webhook configurations' timeoutSeconds so the caller reads our reason, not a deadline error.
   */
  handlerTimeoutMs?: number;
  /**
   * Admission routes answer only callers whose TLS client certificate verified against the
   * server's client CA (serveHttps `clientCa`): the API server, given that certificate in its
   * AdmissionConfiguration. A review from anyone else changes nothing and learns nothing.
   */
  requireClientCert?: boolean;
  /** Largest accepted AdmissionReview body (default 1 MiB; a Pod is at most ~1.5 MiB in etcd, real ones are far smaller). */
  bodyLimitBytes?: number;
  /**
   * Other routes served on the same port, before the admission routes parse JSON (operator.ts
   * mounts the task receipt endpoints here; they parse their own bodies).
   */
  extraRoutes?: RequestHandler;
}
