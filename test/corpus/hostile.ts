// Hostile input for test/bad-input.test.ts: AgentTask and TaskApproval manifests sent raw to the
// API server, and raw AdmissionReviews sent straight to the operator's webhook port. Bodies are
// built as text, so malformed JSON, duplicate keys and `__proto__` keys arrive exactly as written.
// Invisible characters are written as escapes so a reader can see them.
import { gzipSync } from 'node:zlib';

/** A manifest the API server must refuse, with a message naming the field (or the parse problem). */
export interface ManifestCase {
  title: string;
  plural: 'agenttasks' | 'taskapprovals';
  /** The request body; `name` is a fresh object name. */
  body: (name: string) => string;
  expect: RegExp;
}

/** What a raw AdmissionReview may refer to: a real granted task and its namespace. */
export interface ReviewContext {
  namespace: string;
  otherNamespace: string;
  taskName: string;
  taskUid: string;
  serviceAccount: string;
  /** The username recorded as the task's requester. */
  requester: string;
}

/** A raw AdmissionReview the webhook must answer with HTTP 400 or `allowed: false`, and a message matching `expect`. */
export interface ReviewCase {
  title: string;
  path: string;
  body: (ctx: ReviewContext) => string | Buffer;
  headers?: Record<string, string>;
  expect: RegExp;
}

const API_VERSION = 'taskgrant.io/v1alpha1';
const rule = { apiGroups: [''], resources: ['pods'], verbs: ['get'] };
const objective = 'Summarize error logs for INC-1234';
const nested = (depth: number) => `${'['.repeat(depth)}${']'.repeat(depth)}`;

const CYRILLIC_A = '\u0430';
const CYRILLIC_O = '\u043e';
const ZERO_WIDTH_SPACE = '\u200b';
const RIGHT_TO_LEFT_OVERRIDE = '\u202e';
const RIGHT_TO_LEFT_ISOLATE = '\u2067';
const NUL = '\u0000';
const ESC = '\u001b';

// ---- manifests --------------------------------------------------------------------------------

function task(name: string, spec: Record<string, unknown> = {}, metadata: Record<string, unknown> = {}): string {
  return JSON.stringify({ apiVersion: API_VERSION, kind: 'AgentTask', metadata: { name, ...metadata }, spec: { agent: 'corpus-agent', intent: { objective, permissions: [rule] }, ...spec } });
}
const withIntent = (name: string, intent: Record<string, unknown>) => task(name, { intent: { objective, permissions: [rule], ...intent } });
const withRule = (name: string, over: Record<string, unknown>) => withIntent(name, { permissions: [{ ...rule, ...over }] });
const withToken = (name: string, token: Record<string, unknown>) => task(name, { token });
/** A task whose JSON text has `fragment` spliced in right after `"spec":{`. */
const splicedSpec = (name: string, fragment: string) => task(name).replace('"spec":{', `"spec":{${fragment},`);

function approval(name: string, spec: Record<string, unknown> = {}): string {
  return JSON.stringify({ apiVersion: API_VERSION, kind: 'TaskApproval', metadata: { name }, spec: { task: 'corpus-task', taskUID: '0b7164ff-0000-4000-8000-000000000000', decision: 'Approve', reason: 'CHG-7', ...spec } });
}

const t = (title: string, body: (name: string) => string, expect: RegExp): ManifestCase => ({ title, plural: 'agenttasks', body, expect });
const a = (title: string, body: (name: string) => string, expect: RegExp): ManifestCase => ({ title, plural: 'taskapprovals', body, expect });

export const manifestCases: ManifestCase[] = [
  // Not JSON, or not an object.
  t('truncated JSON', (n) => task(n).slice(0, 60), /json parse error: unexpected end of JSON input/),
  t('garbage after the object', (n) => `${task(n)}}}`, /json parse error: invalid character '}' after top-level value/),
  t('a JSON array', () => '[]', /cannot unmarshal array/),
  t('JSON null', () => 'null', /Kind' is missing/),
  t('a Pod sent to the agenttasks endpoint', (n) => JSON.stringify({ apiVersion: 'v1', kind: 'Pod', metadata: { name: n } }), /does not match the expected API version/),
  t('nesting 10,000 deep', (n) => withIntent(n, { objective: 'PLACEHOLDER' }).replace('"PLACEHOLDER"', nested(10_000)), /exceeded max depth/),
  t('nesting 100,000 deep', (n) => withIntent(n, { objective: 'PLACEHOLDER' }).replace('"PLACEHOLDER"', nested(100_000)), /exceeded max depth/),
  // Wrong types.
  t('agent as a number', (n) => task(n, { agent: 42 }), /spec\.agent/),
  t('agent as a list', (n) => task(n, { agent: ['corpus-agent'] }), /spec\.agent/),
  t('objective as an object', (n) => withIntent(n, { objective: { text: objective } }), /spec\.intent\.objective/),
  t('permissions as a string', (n) => withIntent(n, { permissions: 'get pods' }), /spec\.intent\.permissions/),
  t('verbs as a string', (n) => withRule(n, { verbs: 'get' }), /spec\.intent\.permissions\[0\]\.verbs/),
  t('ttl as a number', (n) => task(n, { ttl: 900 }), /spec\.ttl/),
  t('maxPods as a string', (n) => task(n, { maxPods: '1' }), /spec\.maxPods/),
  t('maxPods as a float', (n) => task(n, { maxPods: 1.5 }), /spec\.maxPods/),
  t('maxPods zero', (n) => task(n, { maxPods: 0 }), /spec\.maxPods/),
  t('expirationSeconds as a string', (n) => withToken(n, { expirationSeconds: '600' }), /spec\.token\.expirationSeconds/),
  t('expirationSeconds as a float', (n) => withToken(n, { expirationSeconds: 600.5 }), /spec\.token\.expirationSeconds/),
  t('negative expirationSeconds', (n) => withToken(n, { expirationSeconds: -600 }), /spec\.token\.expirationSeconds/),
  t('huge expirationSeconds', (n) => withToken(n, { expirationSeconds: 1e20 }), /spec\.token\.expirationSeconds/),
  t('expirationSeconds 3607 (stretched to a year)', (n) => withToken(n, { expirationSeconds: 3607 }), /spec\.token\.expirationSeconds must not be 3607/),
  // Refused by taskgrant's own mutating webhook before the schema is checked.
  t('no spec', (n) => JSON.stringify({ apiVersion: API_VERSION, kind: 'AgentTask', metadata: { name: n } }), /AgentTask spec is required/),
  // Oversized strings and lists.
  t('a 1 MB objective', (n) => withIntent(n, { objective: 'x'.repeat(1_000_000) }), /spec\.intent\.objective: Too long/),
  t('an empty objective', (n) => withIntent(n, { objective: '' }), /spec\.intent\.objective/),
  t('10,000 tools', (n) => withIntent(n, { tools: Array.from({ length: 10_000 }, (_, i) => `tool-${i}`) }), /spec\.intent\.tools: Too many/),
  t('a 129-character tool', (n) => withIntent(n, { tools: ['t'.repeat(129)] }), /spec\.intent\.tools\[0\]/),
  t('10,000 permission rules', (n) => withIntent(n, { permissions: Array.from({ length: 10_000 }, () => rule) }), /spec\.intent\.permissions: Too many/),
  t('10,000 verbs in one rule', (n) => withRule(n, { verbs: Array.from({ length: 10_000 }, (_, i) => `verb${i}`) }), /spec\.intent\.permissions\[0\]\.verbs: Too many/),
  t('33 resourceNames', (n) => withRule(n, { resourceNames: Array.from({ length: 33 }, (_, i) => `n${i}`) }), /spec\.intent\.permissions\[0\]\.resourceNames: Too many/),
  t('a 254-character apiGroup', (n) => withRule(n, { apiGroups: ['g'.repeat(254)] }), /spec\.intent\.permissions\[0\]\.apiGroups\[0\]/),
  t('17 token audiences', (n) => withToken(n, { audiences: Array.from({ length: 17 }, (_, i) => `aud-${i}`) }), /spec\.token\.audiences: Too many/),
  t('a 64-character name', (n) => task(`${n}-${'x'.repeat(64)}`.slice(0, 64)), /metadata\.name must be at most 63 characters/),
  t('a 64-character agent', (n) => task(n, { agent: 'a'.repeat(64) }), /spec\.agent/),
  // Confusables, invisible and control characters.
  t('a Cyrillic letter in the agent', (n) => task(n, { agent: `log-summ${CYRILLIC_A}rizer` }), /spec\.agent/),
  t('a Cyrillic letter in the name', (n) => task(`${n}-b${CYRILLIC_O}t`), /metadata\.name/),
  t('a zero-width space in the agent', (n) => task(n, { agent: `log${ZERO_WIDTH_SPACE}summarizer` }), /spec\.agent/),
  t('a NUL byte in the agent', (n) => task(n, { agent: `log${NUL}summarizer` }), /spec\.agent/),
  t('a NUL byte in the name', (n) => task(`${n}${NUL}x`), /metadata\.name/),
  t('a right-to-left override in the objective', (n) => withIntent(n, { objective: `Read pod logs ${RIGHT_TO_LEFT_OVERRIDE}sterces lla daer` }), /spec\.intent\.objective must not contain control, zero-width or bidirectional-override/),
  t('a right-to-left isolate in the objective', (n) => withIntent(n, { objective: `Read pod logs ${RIGHT_TO_LEFT_ISOLATE}then secrets` }), /spec\.intent\.objective must not contain/),
  t('a zero-width space in the objective', (n) => withIntent(n, { objective: `Read pod${ZERO_WIDTH_SPACE}logs` }), /spec\.intent\.objective must not contain/),
  t('a NUL byte in the objective', (n) => withIntent(n, { objective: `Read pod logs${NUL}and secrets` }), /spec\.intent\.objective must not contain/),
  t('a terminal escape sequence in the objective', (n) => withIntent(n, { objective: `Read pod logs${ESC}[8mand every secret${ESC}[0m` }), /spec\.intent\.objective must not contain/),
  t('a Cyrillic letter in a rule namespace', (n) => withRule(n, { namespace: `kube-syst${CYRILLIC_O}m` }), /spec\.intent\.permissions\[0\]\.namespace/),
  t('an unknown sensitivity', (n) => withIntent(n, { sensitivity: 'TOP-SECRET' }), /spec\.intent\.sensitivity/),
  t('a path in parentTask', (n) => task(n, { parentTask: '../kube-system/admin' }), /spec\.parentTask/),
  // '*' anywhere, including inside a subresource.
  t("'*' as a verb", (n) => withRule(n, { verbs: ['get', '*'] }), /verbs must not contain '\*'/),
  t("'*' hidden in a subresource", (n) => withRule(n, { resources: ['pods', 'pods/*'] }), /resources must not contain '\*'/),
  t("'*' as the resource of a subresource", (n) => withRule(n, { resources: ['*/status'] }), /resources must not contain '\*'/),
  t("'*' inside a resource name", (n) => withRule(n, { resources: ['deployments/sc*le'] }), /resources must not contain '\*'/),
  t("'*' in an apiGroup", (n) => withRule(n, { apiGroups: ['rbac.*'] }), /apiGroups must not contain '\*'/),
  t("'*' in resourceNames", (n) => withRule(n, { resources: ['secrets'], resourceNames: ['db-*'] }), /resourceNames must not contain '\*'/),
  // Durations.
  t('a negative ttl', (n) => task(n, { ttl: '-5m' }), /spec\.ttl must be a Go duration between 10s and 24h/),
  t('a fractional ttl under the minimum', (n) => task(n, { ttl: '0.5s' }), /spec\.ttl must be a Go duration between 10s and 24h/),
  t('a huge ttl', (n) => task(n, { ttl: '99999999999999999999h' }), /spec\.ttl/),
  t('a ttl over 24h', (n) => task(n, { ttl: '25h' }), /spec\.ttl must be a Go duration between 10s and 24h/),
  t('a ttl in scientific notation', (n) => task(n, { ttl: '1e3s' }), /spec\.ttl must be a Go duration/),
  t('a ttl with a NUL byte', (n) => task(n, { ttl: `15m${NUL}` }), /spec\.ttl must be a Go duration/),
  // Duplicate keys and prototype-pollution keys (kubectl sends fieldValidation=Strict, and so do we).
  t('a duplicate agent key', (n) => splicedSpec(n, '"agent":"evil-agent"'), /duplicate field "spec\.agent"/),
  t('a duplicate spec key', (n) => task(n).replace(/}$/, `,"spec":${JSON.stringify({ agent: 'evil', intent: { objective, permissions: [rule] } })}}`), /duplicate field "spec"/),
  t('a __proto__ key in spec', (n) => splicedSpec(n, '"__proto__":{"maxPods":100}'), /unknown field "spec\.__proto__"/),
  t('a constructor.prototype key in spec', (n) => splicedSpec(n, '"constructor":{"prototype":{"approved":true}}'), /unknown field "spec\.constructor"/),
  t('a __proto__ key in a permission rule', (n) => task(n).replace('"verbs":["get"]', '"verbs":["get"],"__proto__":{"verbs":["*"]}'), /unknown field "spec\.intent\.permissions\[0\]\.__proto__"/),
  t('a __proto__ key in metadata', (n) => task(n).replace('"metadata":{', '"metadata":{"__proto__":{"namespace":"kube-system"},'), /unknown field "metadata\.__proto__"/),

  a('truncated JSON', (n) => approval(n).slice(0, 50), /json parse error/),
  a('a lower-case decision', (n) => approval(n, { decision: 'approve' }), /spec\.decision/),
  a('a zero-width space in the decision', (n) => approval(n, { decision: `Approve${ZERO_WIDTH_SPACE}` }), /spec\.decision/),
  a('no decision', (n) => JSON.stringify({ apiVersion: API_VERSION, kind: 'TaskApproval', metadata: { name: n }, spec: { task: 'corpus-task', taskUID: 'x' } }), /spec\.decision: Required/),
  a('a Cyrillic letter in the task', (n) => approval(n, { task: `c${CYRILLIC_O}rpus-task` }), /spec\.task/),
  a('a 65-character taskUID', (n) => approval(n, { taskUID: 'u'.repeat(65) }), /spec\.taskUID/),
  a('a numeric taskUID', (n) => approval(n, { taskUID: 12345 }), /spec\.taskUID/),
  a('a 1025-character reason', (n) => approval(n, { reason: 'r'.repeat(1025) }), /spec\.reason: Too long/),
  a('a right-to-left override in the reason', (n) => approval(n, { reason: `approved ${RIGHT_TO_LEFT_OVERRIDE}deifirev ton` }), /spec\.reason must not contain control, zero-width or bidirectional-override/),
  a('a duplicate decision key', (n) => approval(n, { decision: 'Deny' }).replace('"decision":"Deny"', '"decision":"Deny","decision":"Approve"'), /duplicate field "spec\.decision"/),
  a('a __proto__ key in spec', (n) => approval(n).replace('"spec":{', '"spec":{"__proto__":{"approver":{"username":"admin"}},'), /unknown field "spec\.__proto__"/),
];

// ---- raw AdmissionReviews ---------------------------------------------------------------------

interface RequestFields {
  uid?: unknown;
  kind?: unknown;
  resource?: unknown;
  operation?: unknown;
  namespace?: unknown;
  userInfo?: unknown;
  object?: unknown;
  oldObject?: unknown;
  [field: string]: unknown;
}

const podKind = { kind: { group: '', version: 'v1', kind: 'Pod' }, resource: { group: '', version: 'v1', resource: 'pods' } };
const taskKind = { kind: { group: 'taskgrant.io', version: 'v1alpha1', kind: 'AgentTask' }, resource: { group: 'taskgrant.io', version: 'v1alpha1', resource: 'agenttasks' } };
const approvalKind = { kind: { group: 'taskgrant.io', version: 'v1alpha1', kind: 'TaskApproval' }, resource: { group: 'taskgrant.io', version: 'v1alpha1', resource: 'taskapprovals' } };
const mallory = { username: 'mallory', uid: 'u-mallory', groups: ['system:authenticated'] };

let reviewCounter = 0;
function review(ctx: ReviewContext, fields: RequestFields): string {
  reviewCounter += 1;
  const request = { uid: `corpus-${reviewCounter}`, ...podKind, operation: 'CREATE', namespace: ctx.namespace, userInfo: mallory, ...fields };
  return JSON.stringify({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', request });
}

function podObject(labels: Record<string, unknown> = {}, spec: Record<string, unknown> = {}, annotations: Record<string, unknown> = {}) {
  return { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'corpus-pod', labels, annotations }, spec: { containers: [{ name: 'agent', image: 'registry.invalid/agent:1' }], ...spec } };
}
const taskPod = (ctx: ReviewContext, taskName = ctx.taskName, spec: Record<string, unknown> = {}) => podObject({ 'taskgrant.io/task': taskName }, spec);
function approvalObject(ctx: ReviewContext, spec: Record<string, unknown> = {}) {
  return { apiVersion: API_VERSION, kind: 'TaskApproval', metadata: { name: 'corpus-approval', namespace: ctx.namespace }, spec: { task: ctx.taskName, taskUID: ctx.taskUid, decision: 'Approve', reason: 'ok', approver: { username: 'erin' }, ...spec } };
}
const erin = { username: 'erin', uid: 'u-erin', groups: ['system:authenticated'] };

const r = (title: string, path: string, body: (ctx: ReviewContext) => string | Buffer, expect: RegExp, headers?: Record<string, string>): ReviewCase => ({ title, path, body, expect, ...(headers ? { headers } : {}) });

export const reviewCases: ReviewCase[] = [
  // Not an AdmissionReview at all: HTTP 400.
  r('a body that is not JSON', '/mutate/pods', () => 'hello, webhook', /not valid JSON/),
  r('truncated JSON', '/validate/pods', (ctx) => review(ctx, { object: taskPod(ctx) }).slice(0, 100), /not valid JSON/),
  r('a bare JSON string', '/mutate/pods', () => '"AdmissionReview"', /not valid JSON/),
  r('NaN, which JSON does not have', '/mutate/pods', () => '{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":NaN}}', /not valid JSON/),
  r('an empty body', '/mutate/pods', () => '', /expected apiVersion admission\.k8s\.io\/v1, kind AdmissionReview/),
  r('a review sent as text/plain', '/mutate/pods', (ctx) => review(ctx, { object: taskPod(ctx, 'no-such-task') }), /Content-Type must be application\/json/, { 'Content-Type': 'text/plain' }),
  r('a charset other than UTF', '/mutate/pods', (ctx) => review(ctx, { object: taskPod(ctx, 'no-such-task') }), /could not be read/, { 'Content-Type': 'application/json; charset=latin1' }),
  r('admission.k8s.io/v1beta1', '/mutate/pods', (ctx) => review(ctx, { object: taskPod(ctx) }).replace('admission.k8s.io/v1', 'admission.k8s.io/v1beta1'), /expected apiVersion admission\.k8s\.io\/v1/),
  r('no request', '/validate/pods', () => JSON.stringify({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview' }), /request is required/),
  r('a numeric uid', '/validate/pods', (ctx) => review(ctx, { uid: 7 }), /request\.uid/),
  r('a 10,000-character uid', '/validate/pods', (ctx) => review(ctx, { uid: 'u'.repeat(10_000) }), /request\.uid/),
  r('an unknown operation', '/validate/pods', (ctx) => review(ctx, { operation: 'APPROVE_EVERYTHING', object: taskPod(ctx) }), /request\.operation/),
  r('no userInfo', '/mutate/agenttasks', (ctx) => review(ctx, { ...taskKind, userInfo: undefined, object: { spec: {} } }), /request\.userInfo/),
  r('groups that are not a list', '/mutate/agenttasks', (ctx) => review(ctx, { ...taskKind, userInfo: { username: 'x', groups: 'system:masters' }, object: { spec: {} } }), /userInfo\.groups/),
  r('extra nested 10,000 deep', '/mutate/agenttasks', (ctx) => review(ctx, { ...taskKind, userInfo: { username: 'x', extra: { k: 'PLACEHOLDER' } }, object: { spec: {} } }).replace('"PLACEHOLDER"', nested(10_000)), /userInfo\.extra/),
  r('a string dryRun', '/mutate/pods', (ctx) => review(ctx, { dryRun: 'false', object: taskPod(ctx) }), /request\.dryRun/),
  r('a request smuggled in __proto__', '/mutate/pods', (ctx) => review(ctx, { object: taskPod(ctx) }).replace('"request":', '"__proto__":'), /request is required/),
  r('a 2 MB body', '/mutate/pods', (ctx) => review(ctx, { object: taskPod(ctx, 'nope', { padding: 'x'.repeat(2_000_000) }) }), /exceeds 1048576 bytes/),
  r('a gzip bomb (64 MB inflated)', '/mutate/pods', () => gzipSync(Buffer.alloc(64 * 1024 * 1024, 0x20)), /exceeds 1048576 bytes/, { 'Content-Encoding': 'gzip' }),
  r('a gzip header on a body that is not gzip', '/mutate/pods', (ctx) => review(ctx, { object: taskPod(ctx, 'no-such-task') }), /could not be read|not valid JSON/, { 'Content-Encoding': 'gzip' }),
  r('nesting 100,000 deep', '/validate/pods', () => nested(100_000), /not valid JSON|expected a JSON AdmissionReview object/),

  // Well-formed reviews that must be refused: HTTP 200 with allowed: false.
  r('a pod whose containers nest 10,000 deep', '/mutate/pods', (ctx) => review(ctx, { object: taskPod(ctx, ctx.taskName, { containers: 'PLACEHOLDER' }) }).replace('"PLACEHOLDER"', nested(10_000)), /containers/),
  r('a pod with 10,000 containers for a task that does not exist', '/mutate/pods', (ctx) => review(ctx, { object: taskPod(ctx, 'no-such-task', { containers: Array.from({ length: 10_000 }, (_, i) => ({ name: `c${i}` })) }) }), /not found/),
  r('a pod labelled for a task in another namespace', '/mutate/pods', (ctx) => review(ctx, { namespace: ctx.otherNamespace, object: taskPod(ctx) }), /not found/),
  r('a pod labelled with a Cyrillic look-alike of the task', '/mutate/pods', (ctx) => review(ctx, { object: taskPod(ctx, ctx.taskName.replace(/a/, CYRILLIC_A).replace(/o/, CYRILLIC_O)) }), /not found/),
  r('a pod labelled with the task and a zero-width space', '/mutate/pods', (ctx) => review(ctx, { object: taskPod(ctx, `${ctx.taskName}${ZERO_WIDTH_SPACE}`) }), /not found/),
  r('a pod labelled with the task and a NUL byte', '/mutate/pods', (ctx) => review(ctx, { object: taskPod(ctx, `${ctx.taskName}${NUL}`) }), /not found/),
  r('a pod with an empty task label', '/mutate/pods', (ctx) => review(ctx, { object: taskPod(ctx, '') }), /is empty/),
  r('a task pod naming another ServiceAccount', '/mutate/pods', (ctx) => review(ctx, { object: taskPod(ctx, ctx.taskName, { serviceAccountName: 'builder' }) }), /leave it unset/),
  r('a task pod naming another ServiceAccount in the deprecated field', '/mutate/pods', (ctx) => review(ctx, { object: taskPod(ctx, ctx.taskName, { serviceAccount: 'builder' }) }), /spec\.serviceAccount to builder/),
  r('a numeric label value', '/mutate/pods', (ctx) => review(ctx, { object: podObject({ 'taskgrant.io/task': 42 }) }), /labels and annotations must map strings to strings/),
  r('labels hidden under __proto__', '/mutate/pods', (ctx) => review(ctx, { object: podObject({}) }).replace('"labels":{}', `"labels":{"__proto__":{"taskgrant.io/task":${JSON.stringify(ctx.taskName)}}}`), /labels and annotations must map strings to strings/),
  r('a duplicate task label whose last value names no task', '/mutate/pods', (ctx) => review(ctx, { object: taskPod(ctx) }).replace(`"taskgrant.io/task":${JSON.stringify(ctx.taskName)}`, `"taskgrant.io/task":${JSON.stringify(ctx.taskName)},"taskgrant.io/task":"no-such-task"`), /no-such-task.*not found/),
  r('containers that are not a list', '/mutate/pods', (ctx) => review(ctx, { object: taskPod(ctx, ctx.taskName, { containers: { name: 'agent' } }) }), /containers must be a list/),
  r('a request uid with a NUL byte and an RTL override', '/mutate/pods', (ctx) => review(ctx, { uid: `a${NUL}b${RIGHT_TO_LEFT_OVERRIDE}c`, object: taskPod(ctx, 'no-such-task') }), /not found/),
  r('an unlabelled pod running as the task ServiceAccount', '/validate/pods', (ctx) => review(ctx, { object: podObject({}, { serviceAccountName: ctx.serviceAccount }) }), /is a taskgrant task identity/),
  r('an unlabelled pod running as a tg- look-alike', '/validate/pods', (ctx) => review(ctx, { object: podObject({}, { serviceAccountName: 'tg-lookalike-00000000' }) }), /is a taskgrant task identity/),
  r('a labelled pod with a forged task-uid annotation', '/validate/pods', (ctx) => review(ctx, { object: podObject({ 'taskgrant.io/task': ctx.taskName }, { serviceAccountName: ctx.serviceAccount }, { 'taskgrant.io/task-uid': '00000000-forged' }) }), /was not admitted by the taskgrant pod mutating webhook/),
  r('relabelling a pod to the task', '/validate/pods', (ctx) => review(ctx, { operation: 'UPDATE', oldObject: podObject({}), object: podObject({ 'taskgrant.io/task': ctx.taskName }) }), /cannot be added to an existing pod/),
  r('adding a task-uid annotation to a pod', '/validate/pods', (ctx) => review(ctx, { operation: 'UPDATE', oldObject: podObject({}), object: podObject({}, {}, { 'taskgrant.io/task-uid': ctx.taskUid }) }), /cannot be added to an existing pod/),
  r('an AgentTask from nobody', '/mutate/agenttasks', (ctx) => review(ctx, { ...taskKind, userInfo: { groups: ['system:masters'] }, object: { spec: {} } }), /no authenticated username/),
  r('a Pod sent to the AgentTask stamp', '/mutate/agenttasks', (ctx) => review(ctx, { object: taskPod(ctx) }), /stamps AgentTask objects, not Pod/),
  r('an AgentTask whose spec is a string', '/mutate/agenttasks', (ctx) => review(ctx, { ...taskKind, object: { spec: 'grant me everything' } }), /spec is required/),
  r('a TaskApproval from nobody', '/mutate/taskapprovals', (ctx) => review(ctx, { ...approvalKind, userInfo: { groups: [] }, object: approvalObject(ctx) }), /no authenticated username/),
  r('an approval naming a stale uid', '/validate/taskapprovals', (ctx) => review(ctx, { ...approvalKind, userInfo: erin, object: approvalObject(ctx, { taskUID: '00000000-0000-4000-8000-000000000000' }) }), /is stale/),
  r('an approval with a forged approver', '/validate/taskapprovals', (ctx) => review(ctx, { ...approvalKind, userInfo: erin, object: approvalObject(ctx, { approver: { username: 'security-lead' } }) }), /approver does not match the caller/),
  r('a self-approval', '/validate/taskapprovals', (ctx) => review(ctx, { ...approvalKind, userInfo: { username: ctx.requester }, object: approvalObject(ctx, { approver: { username: ctx.requester } }) }), /cannot approve it/),
  r('an approval by someone without the approve verb', '/validate/taskapprovals', (ctx) => review(ctx, { ...approvalKind, userInfo: erin, object: approvalObject(ctx) }), /may not approve AgentTasks/),
  r('an approval naming a task with a NUL byte', '/validate/taskapprovals', (ctx) => review(ctx, { ...approvalKind, userInfo: erin, object: approvalObject(ctx, { task: `${ctx.taskName}${NUL}` }) }), /invalid TaskApproval: spec\.task/),
  r('an approval with a lower-case decision', '/validate/taskapprovals', (ctx) => review(ctx, { ...approvalKind, userInfo: erin, object: approvalObject(ctx, { decision: 'approve' }) }), /spec\.decision must be Approve or Deny/),
  r('an approval outside any namespace', '/validate/taskapprovals', (ctx) => review(ctx, { ...approvalKind, namespace: '', userInfo: erin, object: approvalObject(ctx) }), /must be namespaced/),
  r('an approval edited 10,000 levels deep', '/validate/taskapprovals', (ctx) =>
    review(ctx, { ...approvalKind, operation: 'UPDATE', userInfo: erin, oldObject: approvalObject(ctx, { reason: 'OLD' }), object: approvalObject(ctx, { reason: 'NEW' }) })
      .replace('"OLD"', nested(10_000))
      .replace('"NEW"', `${'['.repeat(10_000)}1${']'.repeat(10_000)}`), /immutable|could not check this request/),
];
