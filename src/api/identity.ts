// Who is calling, and which pod: the shapes the API server's reviews report, shared by the kube
// adapters that fill them and the webhook and receipts that read them (one definition each).
import { ANNOTATION_POD_TASK_UID } from './constants.js';

/**
 * The authenticated caller as the API server saw it. `extra` may hold credential ids
 * (`authentication.kubernetes.io/credential-id`): it is passed to access reviews, never logged.
 */
export interface UserInfo {
  username?: string;
  uid?: string;
  groups?: string[];
  extra?: Record<string, string[]>;
}

/** The caller of a token, as a TokenReview reports it. */
export interface ReviewedIdentity {
  username: string;
  uid: string;
  groups: string[];
  /** Carries `authentication.kubernetes.io/pod-name` / `pod-uid` for pod-bound tokens. Never logged. */
  extra: Record<string, string[]>;
  /** The audiences the token is valid for, when the review reports them. */
  audiences?: string[];
}

export type TokenReviewOutcome = { type: 'authenticated'; identity: ReviewedIdentity } | { type: 'unauthenticated'; error: string };

/** The facts about a pod that decide whether it is a task's pod. */
export interface PodFacts {
  uid?: string;
  serviceAccountName?: string;
  labels: Record<string, string>;
  annotations: Record<string, string>;
  phase?: string;
  /** deletionTimestamp is set. */
  terminating: boolean;
}

/**
 * Whether a pod carries task `taskUid`'s grant and still holds one of its maxPods slots: stamped
 * with the task's uid at admission, not terminated, not being deleted. The one definition the
 * controller, the webhook's slot count and the receipts use.
 */
export function holdsGrant(pod: { annotations?: Record<string, string> | undefined; phase?: string | undefined; terminating: boolean }, taskUid: string): boolean {
  return pod.annotations?.[ANNOTATION_POD_TASK_UID] === taskUid && !pod.terminating && pod.phase !== 'Succeeded' && pod.phase !== 'Failed';
}
