// What the default policies decide, as a table a reviewer can read: one row per task intent.
// Every task lives in namespace team-a; `ttl` defaults to 15m and `sensitivity` to internal.
//
// expect:
//   allow             - granted as asked
//   approval-required - denied now, allowed once approved (phase AwaitingApproval)
//   deny              - denied, and approval would not change it (phase Denied)
// policies: @ids that must be among the determining policies (the permits of an allow, the
//   forbids of a deny).
import type { PermissionRule, RiskLevel, Sensitivity } from '../../src/api/index.js';

export type Expectation = 'allow' | 'approval-required' | 'deny';

export interface DecisionCase {
  name: string;
  permissions: PermissionRule[];
  sensitivity?: Sensitivity;
  ttl?: string;
  tools?: string[];
  approved?: boolean;
  recentGrants?: number;
  recentGrantSeconds?: number;
  delegationDepth?: number;
  /** The cluster's risk level (taskgrant-risk); normal when absent. */
  risk?: RiskLevel;
  expect: Expectation;
  policies?: string[];
  /** A fragment the deny reason must contain. */
  reason?: string;
}

const read = (resources: string[], extra: Partial<PermissionRule> = {}): PermissionRule => ({ apiGroups: [''], resources, verbs: ['get', 'list', 'watch'], ...extra });
const rule = (verbs: string[], resources: string[], apiGroups: string[] = [''], extra: Partial<PermissionRule> = {}): PermissionRule => ({ apiGroups, resources, verbs, ...extra });

export const cases: DecisionCase[] = [
  // --- baseline: reads in the task's own namespace ---
  { name: 'read pods in own namespace', permissions: [read(['pods'])], expect: 'allow', policies: ['permit-read-own-namespace'] },
  { name: 'read pod logs in own namespace', permissions: [rule(['get'], ['pods/log'])], expect: 'allow', policies: ['permit-read-own-namespace'] },
  { name: 'read deployments.apps in own namespace', permissions: [read(['deployments', 'replicasets'], { apiGroups: ['apps'] })], expect: 'allow' },
  { name: 'read named configmaps', permissions: [rule(['get'], ['configmaps'], [''], { resourceNames: ['app-config', 'feature-flags'] })], expect: 'allow' },
  { name: 'explicit namespace equal to the task namespace', permissions: [read(['services'], { namespace: 'team-a' })], expect: 'allow' },
  { name: 'public sensitivity read', permissions: [read(['pods'])], sensitivity: 'public', expect: 'allow' },
  { name: 'internal sensitivity read', permissions: [read(['pods'])], sensitivity: 'internal', expect: 'allow' },
  { name: 'confidential read needs approval', permissions: [read(['pods'])], sensitivity: 'confidential', expect: 'approval-required', reason: 'get pods in team-a needs approval (no policy permits it)' },
  { name: 'restricted read needs approval', permissions: [read(['pods'])], sensitivity: 'restricted', expect: 'approval-required' },
  { name: 'confidential read approved', permissions: [read(['pods'])], sensitivity: 'confidential', approved: true, expect: 'allow', policies: ['permit-approved'] },
  { name: 'restricted read approved', permissions: [read(['pods'])], sensitivity: 'restricted', approved: true, expect: 'allow' },
  { name: 'ttl of exactly 1h reads without approval', permissions: [read(['pods'])], ttl: '1h', expect: 'allow' },
  { name: 'ttl of 3601s needs approval', permissions: [read(['pods'])], ttl: '3601s', expect: 'approval-required' },
  { name: 'ttl of 3601s approved', permissions: [read(['pods'])], ttl: '3601s', approved: true, expect: 'allow' },
  { name: 'fractional ttl just over 1h rounds up', permissions: [read(['pods'])], ttl: '3600500ms', expect: 'approval-required' },
  { name: 'shortest ttl', permissions: [rule(['watch'], ['events'])], ttl: '10s', expect: 'allow' },
  { name: 'tools do not change the decision', permissions: [read(['pods'])], tools: ['kubectl-logs', 'grep'], expect: 'allow' },

  // --- other namespaces ---
  { name: 'read in another namespace needs approval', permissions: [read(['pods'], { namespace: 'team-b' })], expect: 'approval-required', reason: 'get pods in team-b needs approval' },
  { name: 'read in another namespace approved', permissions: [read(['pods'], { namespace: 'team-b' })], approved: true, expect: 'allow' },
  { name: 'own and other namespace in one task', permissions: [read(['pods']), read(['pods'], { namespace: 'kube-system' })], expect: 'approval-required', reason: 'in kube-system' },

  // --- secrets and interactive pod access: approval only ---
  { name: 'get secrets in own namespace', permissions: [rule(['get'], ['secrets'])], expect: 'approval-required', policies: ['forbid-sensitive-resources-unapproved'], reason: 'get secrets in team-a needs approval (forbidden by forbid-sensitive-resources-unapproved)' },
  { name: 'list named secret', permissions: [rule(['get'], ['secrets'], [''], { resourceNames: ['db-credentials'] })], expect: 'approval-required', reason: 'get secrets "db-credentials" in team-a' },
  { name: 'watch secrets public sensitivity', permissions: [rule(['watch'], ['secrets'])], sensitivity: 'public', expect: 'approval-required', policies: ['forbid-sensitive-resources-unapproved'] },
  { name: 'get secrets approved', permissions: [rule(['get'], ['secrets'])], approved: true, expect: 'allow', policies: ['permit-approved'] },
  // Exec, attach, ephemeral containers and the kubelet proxy reach other pods' tokens: never, even approved.
  { name: 'exec (websocket get) approved', permissions: [rule(['get'], ['pods/exec'])], approved: true, expect: 'deny', policies: ['forbid-reaching-other-identities'] },
  { name: 'exec (create) unapproved', permissions: [rule(['create'], ['pods/exec'])], expect: 'deny', policies: ['forbid-reaching-other-identities'] },
  { name: 'attach approved', permissions: [rule(['get', 'create'], ['pods/attach'])], approved: true, expect: 'deny', policies: ['forbid-reaching-other-identities'] },
  { name: 'ephemeral containers approved', permissions: [rule(['patch', 'update'], ['pods/ephemeralcontainers'])], approved: true, expect: 'deny', policies: ['forbid-reaching-other-identities'] },
  { name: 'kubelet proxy approved', permissions: [rule(['get'], ['nodes/proxy'])], approved: true, expect: 'deny', policies: ['forbid-reaching-other-identities'] },
  { name: 'port-forward approved', permissions: [rule(['create'], ['pods/portforward'])], approved: true, expect: 'allow' },
  { name: 'port-forward needs approval', permissions: [rule(['get'], ['pods/portforward'])], expect: 'approval-required', policies: ['forbid-sensitive-resources-unapproved'] },
  { name: 'pod proxy needs approval', permissions: [rule(['get'], ['pods/proxy'])], expect: 'approval-required', policies: ['forbid-sensitive-resources-unapproved'] },
  { name: 'service proxy approved', permissions: [rule(['get'], ['services/proxy'])], approved: true, expect: 'allow' },

  // --- writes need approval ---
  { name: 'create configmaps needs approval', permissions: [rule(['create'], ['configmaps'])], expect: 'approval-required', policies: [], reason: 'create configmaps in team-a needs approval (no policy permits it)' },
  { name: 'create configmaps approved', permissions: [rule(['create'], ['configmaps'])], approved: true, expect: 'allow', policies: ['permit-approved'] },
  { name: 'patch deployments needs approval', permissions: [rule(['patch'], ['deployments/scale'], ['apps'])], expect: 'approval-required', reason: 'patch deployments.apps/scale in team-a' },
  { name: 'delete named pod approved', permissions: [rule(['delete'], ['pods'], [''], { resourceNames: ['worker-0'] })], approved: true, expect: 'allow' },
  { name: 'deletecollection approved', permissions: [rule(['deletecollection'], ['jobs'], ['batch'])], approved: true, expect: 'allow' },
  { name: 'update in another namespace approved', permissions: [rule(['update'], ['configmaps'], [''], { namespace: 'team-b' })], approved: true, expect: 'allow' },

  // --- guardrails: never, approved or not ---
  { name: 'bind approved', permissions: [rule(['bind'], ['roles'], ['rbac.authorization.k8s.io'])], approved: true, expect: 'deny', policies: ['forbid-escalation-verbs'] },
  { name: 'escalate approved', permissions: [rule(['escalate'], ['roles'], ['rbac.authorization.k8s.io'])], approved: true, expect: 'deny', policies: ['forbid-escalation-verbs'] },
  { name: 'impersonate serviceaccounts approved', permissions: [rule(['impersonate'], ['serviceaccounts'])], approved: true, expect: 'deny', policies: ['forbid-escalation-verbs'] },
  { name: 'impersonate unapproved is a plain deny', permissions: [rule(['impersonate'], ['serviceaccounts'])], expect: 'deny', reason: 'impersonate serviceaccounts in team-a is not allowed (forbidden by forbid-escalation-verbs, forbid-operator-held-writes)' },
  { name: 'create serviceaccounts/token approved', permissions: [rule(['create'], ['serviceaccounts/token'])], approved: true, expect: 'deny', policies: ['forbid-serviceaccount-token'] },
  { name: 'get serviceaccounts/token unapproved', permissions: [rule(['get'], ['serviceaccounts/token'])], expect: 'deny', policies: ['forbid-serviceaccount-token'] },
  { name: 'create roles approved', permissions: [rule(['create'], ['roles'], ['rbac.authorization.k8s.io'])], approved: true, expect: 'deny', policies: ['forbid-rbac-writes'], reason: 'create roles.rbac.authorization.k8s.io in team-a is not allowed (forbidden by forbid-rbac-writes)' },
  { name: 'patch named rolebinding approved', permissions: [rule(['patch'], ['rolebindings'], ['rbac.authorization.k8s.io'], { resourceNames: ['admin'] })], approved: true, expect: 'deny', policies: ['forbid-rbac-writes'] },
  { name: 'read roles without approval', permissions: [read(['roles', 'rolebindings'], { apiGroups: ['rbac.authorization.k8s.io'] })], expect: 'allow' },
  { name: 'read rolebindings in another namespace approved', permissions: [read(['rolebindings'], { apiGroups: ['rbac.authorization.k8s.io'], namespace: 'team-b' })], approved: true, expect: 'allow' },
  { name: 'delete webhook configurations approved', permissions: [rule(['delete'], ['validatingwebhookconfigurations'], ['admissionregistration.k8s.io'])], approved: true, expect: 'deny', policies: ['forbid-admission-writes'] },
  { name: 'create serviceaccounts approved', permissions: [rule(['create'], ['serviceaccounts'])], approved: true, expect: 'deny', policies: ['forbid-operator-held-writes'] },
  { name: 'delete serviceaccounts approved', permissions: [rule(['delete'], ['serviceaccounts'])], approved: true, expect: 'deny', policies: ['forbid-operator-held-writes'] },
  { name: 'create events approved (forging the audit trail)', permissions: [rule(['create', 'patch'], ['events'])], approved: true, expect: 'deny', policies: ['forbid-operator-held-writes'] },
  { name: 'create events.k8s.io events approved', permissions: [rule(['create'], ['events'], ['events.k8s.io'])], approved: true, expect: 'deny', policies: ['forbid-operator-held-writes'] },
  { name: 'update leases approved', permissions: [rule(['update'], ['leases'], ['coordination.k8s.io'])], approved: true, expect: 'deny', policies: ['forbid-operator-held-writes'] },
  { name: 'patch or delete agenttasks approved', permissions: [rule(['patch', 'delete'], ['agenttasks'], ['taskgrant.io'])], approved: true, expect: 'deny', policies: ['forbid-operator-held-writes'] },
  { name: 'read serviceaccounts and events needs approval only', permissions: [rule(['get', 'list'], ['serviceaccounts', 'events'])], expect: 'allow' },
  { name: 'update admission policies approved', permissions: [rule(['update'], ['validatingadmissionpolicies'], ['admissionregistration.k8s.io'])], approved: true, expect: 'deny', policies: ['forbid-admission-writes'] },
  { name: 'read admission configuration', permissions: [read(['mutatingwebhookconfigurations'], { apiGroups: ['admissionregistration.k8s.io'] })], expect: 'allow' },
  { name: 'create taskapprovals approved', permissions: [rule(['create'], ['taskapprovals'], ['taskgrant.io'])], approved: true, expect: 'deny', policies: ['forbid-taskgrant-self-approval'] },
  { name: 'approve agenttasks approved', permissions: [rule(['approve'], ['agenttasks'], ['taskgrant.io'])], approved: true, expect: 'deny', policies: ['forbid-taskgrant-self-approval'] },
  { name: 'patch agenttasks/status approved', permissions: [rule(['patch'], ['agenttasks/status'], ['taskgrant.io'])], approved: true, expect: 'deny', policies: ['forbid-taskgrant-self-approval'] },
  { name: 'create agenttasks (delegation) approved', permissions: [rule(['create'], ['agenttasks'], ['taskgrant.io'])], approved: true, expect: 'allow' },
  { name: 'read taskapprovals', permissions: [read(['taskapprovals'], { apiGroups: ['taskgrant.io'] })], expect: 'allow' },

  // --- limits ---
  { name: 'ttl of exactly 4h approved', permissions: [read(['pods'])], ttl: '4h', approved: true, expect: 'allow' },
  { name: 'ttl of 14401s approved', permissions: [read(['pods'])], ttl: '14401s', approved: true, expect: 'deny', policies: ['forbid-ttl-over-4h'] },
  { name: 'ttl of 14401s unapproved is a plain deny', permissions: [read(['pods'])], ttl: '14401s', expect: 'deny', policies: ['forbid-ttl-over-4h'] },
  { name: '19 recent grants', permissions: [read(['pods'])], recentGrants: 19, expect: 'allow' },
  { name: '20 recent grants: the 21st is refused', permissions: [read(['pods'])], recentGrants: 20, expect: 'deny', policies: ['forbid-grant-rate'] },
  { name: '20 recent grants approved', permissions: [read(['pods'])], recentGrants: 20, approved: true, expect: 'deny', policies: ['forbid-grant-rate'] },
  { name: 'delegation depth 2', permissions: [read(['pods'])], delegationDepth: 2, expect: 'allow' },
  { name: 'delegation depth 3', permissions: [read(['pods'])], delegationDepth: 3, expect: 'deny', policies: ['forbid-delegation-depth'] },
  { name: 'delegation depth 3 approved', permissions: [read(['pods'])], delegationDepth: 3, approved: true, expect: 'deny', policies: ['forbid-delegation-depth'] },
  { name: 'time budget reached exactly (27900s + 15m)', permissions: [read(['pods'])], recentGrantSeconds: 27900, expect: 'allow' },
  { name: 'time budget exceeded by 1s', permissions: [read(['pods'])], recentGrantSeconds: 27901, expect: 'deny', policies: ['forbid-granted-time-budget'] },
  { name: 'two 4h grants fit the budget', permissions: [read(['pods'])], ttl: '4h', recentGrantSeconds: 14400, approved: true, expect: 'allow' },
  { name: 'a third 4h grant does not', permissions: [read(['pods'])], ttl: '4h', recentGrantSeconds: 28800, approved: true, expect: 'deny', policies: ['forbid-granted-time-budget'] },

  // --- several tuples: every one must be allowed ---
  { name: 'read pods and create pods', permissions: [read(['pods']), rule(['create'], ['pods'])], expect: 'approval-required', reason: 'create pods in team-a needs approval' },
  { name: 'read pods and secrets', permissions: [read(['pods', 'secrets'])], expect: 'approval-required', reason: 'get secrets in team-a' },
  { name: 'approved read plus bind', permissions: [read(['pods']), rule(['bind'], ['clusterroles'], ['rbac.authorization.k8s.io'])], approved: true, expect: 'deny', policies: ['forbid-escalation-verbs'] },
  { name: 'one forbidden name among allowed ones', permissions: [rule(['get'], ['configmaps', 'serviceaccounts/token'], [''], { resourceNames: ['a', 'b'] })], approved: true, expect: 'deny', policies: ['forbid-serviceaccount-token'] },
  { name: 'many reads across groups', permissions: [read(['pods', 'services', 'endpoints']), read(['deployments', 'statefulsets'], { apiGroups: ['apps'] }), read(['jobs', 'cronjobs'], { apiGroups: ['batch'] })], expect: 'allow' },
  // Risk (policies/risk.cedar): elevated keeps own-namespace reads, asks approval for the rest; lockdown denies all.
  { name: 'elevated risk: own-namespace read goes on', permissions: [read(['pods'])], risk: 'elevated', expect: 'allow' },
  { name: 'elevated risk: a write needs approval', permissions: [rule(['delete'], ['pods'])], risk: 'elevated', expect: 'approval-required', policies: ['risk-elevated-needs-approval'] },
  { name: 'elevated risk: an approved write is allowed', permissions: [rule(['delete'], ['pods'])], risk: 'elevated', approved: true, expect: 'allow' },
  { name: 'lockdown: even an approved read is denied', permissions: [read(['pods'])], risk: 'lockdown', approved: true, expect: 'deny', policies: ['risk-lockdown'] },
  { name: 'unknown verb is denied even approved', permissions: [read(['pods']), rule(['frobnicate'], ['pods'])], approved: true, expect: 'deny', reason: 'unknown verb "frobnicate"' },
];
