// What the operator keeps in its own Secrets and registers with the API server, as the shapes
// both sides share: the webhook and receipts define what they need stored, src/kube stores it.

/** The webhook's serving CA and certificate. */
export interface TlsBundle {
  caCertPem: string;
  caKeyPem: string;
  certPem: string;
  keyPem: string;
  /** The CA before the last CA rotation, kept in the caBundle until it expires. */
  previousCaCertPem?: string;
}

export interface StoredTls {
  bundle: TlsBundle;
  /** Opaque version for optimistic concurrency (the Secret's resourceVersion). */
  version: string;
}

/** The receipt signing key ring as stored. */
export interface StoredKeys {
  /** The ring as the receipts service encoded it; '' when the store object exists but holds nothing. */
  document: string;
  resourceVersion: string;
}

export type SaveResult = { type: 'saved'; resourceVersion: string } | { type: 'conflict' };

/** One admission route as the webhook configurations register it. */
export interface WebhookRouteSpec {
  handler: string;
  path: string;
  type: 'mutating' | 'validating';
  apiGroup: string;
  resource: string;
  operations: readonly string[];
  sideEffects: 'None' | 'NoneOnDryRun';
  objectSelectorLabelExists?: string;
}

/** A pod's claim on one of its task's maxPods slots (the webhook asks, src/kube records it). */
export interface SlotClaim {
  namespace: string;
  taskName: string;
  taskUid: string;
  agent: string;
  maxPods: number;
  /** Unknown at mutating admission for a generateName pod. */
  podName: string | undefined;
  /** The AdmissionReview's uid: names the claim until the pod's name is known. */
  admission: string;
  now: number;
}

export type SlotVerdict = { type: 'claimed' } | { type: 'full'; held: number } | { type: 'refused'; message: string };
