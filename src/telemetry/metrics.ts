// Every metric taskgrant exposes, on a private registry (nothing global, so tests and several
// instances in one process never collide). Label values are bounded enums: never a task name,
// never an agent name, never a token.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

const latencyBuckets = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];
const lifecycleBuckets = [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30];

export class Metrics {
  readonly registry = new Registry();

  readonly decisions = new Counter({ name: 'taskgrant_policy_decisions_total', help: 'Policy decisions by result (allow, deny, approval_required, error).', labelNames: ['result'] as const, registers: [this.registry] });
  readonly policyEvaluationSeconds = new Histogram({ name: 'taskgrant_policy_evaluation_seconds', help: 'Time to evaluate every tuple of one task.', buckets: latencyBuckets, registers: [this.registry] });
  readonly policyReloads = new Counter({ name: 'taskgrant_policy_reloads_total', help: 'Policy set loads by result (success, rejected).', labelNames: ['result'] as const, registers: [this.registry] });
  readonly policyRevisionInfo = new Gauge({ name: 'taskgrant_policy_loaded_policies', help: 'Policies in the set currently in force.', registers: [this.registry] });
  readonly grants = new Counter({ name: 'taskgrant_grants_total', help: 'Grants issued (ServiceAccount + Roles + RoleBindings created).', registers: [this.registry] });
  readonly grantFailures = new Counter({ name: 'taskgrant_grant_failures_total', help: 'Grants that ended Failed, by reason.', labelNames: ['reason'] as const, registers: [this.registry] });
  readonly revocations = new Counter({ name: 'taskgrant_revocations_total', help: 'Revocations completed, by reason.', labelNames: ['reason'] as const, registers: [this.registry] });
  readonly activeGrants = new Gauge({ name: 'taskgrant_active_grants', help: 'Tasks currently holding a grant (Granted or Active).', registers: [this.registry] });
  readonly reconcileSeconds = new Histogram({ name: 'taskgrant_reconcile_duration_seconds', help: 'Duration of one reconcile, by outcome.', labelNames: ['outcome'] as const, buckets: latencyBuckets, registers: [this.registry] });
  readonly reconcileErrors = new Counter({ name: 'taskgrant_reconcile_errors_total', help: 'Reconciles that failed and were requeued.', registers: [this.registry] });
  readonly timeToGrantSeconds = new Histogram({ name: 'taskgrant_time_to_grant_seconds', help: 'AgentTask creation to grant issued.', buckets: lifecycleBuckets, registers: [this.registry] });
  readonly triggerToRevocationSeconds = new Histogram({ name: 'taskgrant_trigger_to_revocation_seconds', help: 'Revocation trigger (pod end, expiry, delete, ...) to objects deleted, by reason.', labelNames: ['reason'] as const, buckets: lifecycleBuckets, registers: [this.registry] });
  readonly queueDepth = new Gauge({ name: 'taskgrant_workqueue_depth', help: 'Keys waiting in the reconcile queue.', registers: [this.registry] });
  readonly watchRestarts = new Counter({ name: 'taskgrant_watch_restarts_total', help: 'Informer watch restarts, by resource.', labelNames: ['resource'] as const, registers: [this.registry] });
  readonly admissionSeconds = new Histogram({ name: 'taskgrant_admission_duration_seconds', help: 'Admission handler latency, by handler.', labelNames: ['handler'] as const, buckets: latencyBuckets, registers: [this.registry] });
  readonly webhookConnections = new Counter({ name: 'taskgrant_webhook_connections_total', help: 'TCP connections accepted by the webhook server (a climbing rate means callers are not reusing connections).', registers: [this.registry] });
  readonly admissionDecisions = new Counter({ name: 'taskgrant_admission_decisions_total', help: 'Admission answers, by handler and result (allowed, denied, error).', labelNames: ['handler', 'result'] as const, registers: [this.registry] });
  readonly receiptsIssued = new Counter({ name: 'taskgrant_receipts_issued_total', help: 'Task receipts issued by the token exchange.', registers: [this.registry] });
  readonly receiptRequests = new Counter({ name: 'taskgrant_token_exchange_requests_total', help: 'Token exchange and verify requests, by endpoint and result.', labelNames: ['endpoint', 'result'] as const, registers: [this.registry] });
  readonly authzDecisions = new Counter({ name: 'taskgrant_authz_decisions_total', help: 'Request-time reviews of task identities, by result (deny, no_opinion, error).', labelNames: ['result'] as const, registers: [this.registry] });
  readonly authzSeconds = new Histogram({ name: 'taskgrant_authz_duration_seconds', help: 'Time to decide one request-time review.', buckets: latencyBuckets, registers: [this.registry] });
  readonly usageWrites = new Counter({ name: 'taskgrant_usage_writes_total', help: 'Writes of status.usage, by result (success, conflict, error).', labelNames: ['result'] as const, registers: [this.registry] });
  readonly leader = new Gauge({ name: 'taskgrant_leader', help: '1 while this replica reconciles (holds the Lease, or runs without leader election), else 0.', registers: [this.registry] });
  private certificateNotAfter: (() => number | undefined) | undefined;
  readonly certificateExpiry: Gauge = new Gauge({
    name: 'taskgrant_webhook_certificate_expiry_timestamp_seconds',
    help: 'When the webhook serving certificate this replica serves expires (Unix time).',
    registers: [this.registry],
    // Read at scrape time: the certificate served now, rotated or not.
    collect: () => {
      const notAfter = this.certificateNotAfter?.();
      if (notAfter !== undefined) this.certificateExpiry.set(notAfter);
    },
  });

  /** Where taskgrant_webhook_certificate_expiry_timestamp_seconds reads the served certificate's notAfter. */
  watchCertificate(notAfterSeconds: () => number | undefined): void {
    this.certificateNotAfter = notAfterSeconds;
  }

  constructor(options: { defaultMetrics?: boolean } = {}) {
    if (options.defaultMetrics) collectDefaultMetrics({ register: this.registry, prefix: 'taskgrant_process_' });
  }
}
