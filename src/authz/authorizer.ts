// Decides each API request of a task identity while the task runs (the request-time half of
// taskgrant; the grant-time half is the controller). The API server asks only about `tg-*`
// ServiceAccounts (its AuthorizationConfiguration's matchConditions) and this answers deny or no
// opinion, never allow: RBAC must still allow whatever passes here, so a wrong answer from
// taskgrant can refuse too much but never grant anything.
import {
  coveringTuple,
  expandPermissions,
  holdsGrant,
  isLive,
  taskIdentityOf,
  type AgentTask,
  type PermissionTuple,
  type PodFacts,
  type RiskLevel,
} from '../api/index.js';
import { buildRuntimeRequest, describeTuple, type RuntimeInput, type TupleDecision } from '../policy/index.js';
import type { AccessRequest, AuthzVerdict } from './review.js';
import type { UsageBook } from './usage.js';

/** The runtime policy family (a PolicyEngine loaded with policies/*.runtime.cedar). */
export interface RuntimePolicy {
  decideRequest(request: ReturnType<typeof buildRuntimeRequest>['request'], context: ReturnType<typeof buildRuntimeRequest>['context']): TupleDecision;
}

export interface AuthorizerDeps {
  /** The task owning a tg-* ServiceAccount (informer caches), or undefined. */
  taskOf(namespace: string, serviceAccount: string): AgentTask | undefined;
  pod(namespace: string, name: string): PodFacts | undefined;
  risk(): RiskLevel;
  policy: RuntimePolicy;
  usage: UsageBook;
  /** The facts grant time decided with, derived the same way. */
  approved(task: AgentTask): boolean;
  delegationDepth(task: AgentTask): number;
  sensitivityFloor(task: AgentTask): string | undefined;
  now(): Date;
}

/** Extra keys the API server sets for a pod-bound ServiceAccount token. */
export const EXTRA_POD_NAME = 'authentication.kubernetes.io/pod-name';
export const EXTRA_POD_UID = 'authentication.kubernetes.io/pod-uid';

/** Discovery a kubectl needs before any call; granted to every authenticated user by RBAC (system:discovery). */
const DISCOVERY = /^\/(api|apis|version|openapi\/v[23])(\/.*)?$/;
/** "Who am I" and "can I" reviews of one's own access (kubectl auth whoami / can-i): they grant nothing. */
const SELF_REVIEWS = new Set(['authentication.k8s.io/selfsubjectreviews', 'authorization.k8s.io/selfsubjectaccessreviews', 'authorization.k8s.io/selfsubjectrulesreviews']);

export class RequestAuthorizer {
  constructor(private readonly deps: AuthorizerDeps) {}

  review(request: AccessRequest): AuthzVerdict {
    const identity = taskIdentityOf(request.user);
    // The API server's matchConditions send only task identities; anything else is not ours to judge.
    if (!identity) return { type: 'no-opinion' };
    const task = this.deps.taskOf(identity.namespace, identity.name);
    if (!task) return { type: 'deny', reason: `no AgentTask holds ServiceAccount ${identity.namespace}/${identity.name} (the task ended or was deleted)` };
    const verdict = this.decide(task, request);
    // Discovery and self-reviews pass uncounted: a kubectl makes them before every command, and
    // a budget they burnt would measure the client, not the agent.
    if (verdict.type === 'deny') this.deps.usage.record(task, 'denied');
    else if (verdict.used) this.deps.usage.record(task, 'passed', verdict.used);
    return verdict.type === 'deny' ? verdict : { type: 'no-opinion' };
  }

  private decide(task: AgentTask, request: AccessRequest): { type: 'deny'; reason: string } | { type: 'pass'; used?: PermissionTuple } {
    const name = `AgentTask ${task.metadata.namespace}/${task.metadata.name}`;
    const phase = task.status?.phase;
    if (!isLive(phase)) return { type: 'deny', reason: `${name} is ${phase ?? 'not granted yet'}${task.status?.reason ? ` (${task.status.reason})` : ''}` };
    const now = this.deps.now();
    const expiresAt = Date.parse(task.status?.grant?.expiresAt ?? '');
    if (!(expiresAt > now.getTime())) return { type: 'deny', reason: `${name} expired at ${task.status?.grant?.expiresAt ?? '(no expiry recorded)'}` };
    const pod = this.podRefusal(task, request.extra);
    if (pod) return { type: 'deny', reason: pod };
    const risk = this.deps.risk();
    // Also a default runtime policy; kept here as well so no policy edit can switch it off.
    if (risk === 'lockdown') return { type: 'deny', reason: 'the cluster risk level is lockdown: every request of a task identity is refused' };

    if (request.nonResource) {
      const { verb, path } = request.nonResource;
      return verb === 'get' && DISCOVERY.test(path) ? { type: 'pass' } : { type: 'deny', reason: `${verb} ${path} is outside ${name}'s grant` };
    }
    const r = request.resource;
    if (!r) return { type: 'deny', reason: 'the review names no request' };
    if (r.verb === 'create' && SELF_REVIEWS.has(`${r.group}/${r.resource}`)) return { type: 'pass' };
    const call: PermissionTuple = { verb: r.verb, apiGroup: r.group, resource: r.subresource ? `${r.resource}/${r.subresource}` : r.resource, name: r.name, namespace: r.namespace };
    const used = coveringTuple(call, expandPermissions(task));
    if (!used) return { type: 'deny', reason: `${describeTuple(call)} is outside ${name}'s grant` };

    const seen = this.deps.usage.seen(task);
    const budget = task.spec.intent.maxRequests;
    if (budget !== undefined && seen.requests >= budget) return { type: 'deny', reason: `${name} has used its budget of ${budget} requests (spec.intent.maxRequests)` };

    const input: RuntimeInput = {
      task,
      call,
      requests: seen.requests,
      denied: seen.denied,
      risk,
      approved: this.deps.approved(task),
      delegationDepth: this.deps.delegationDepth(task),
      sensitivityFloor: this.deps.sensitivityFloor(task),
      now,
    };
    const built = buildRuntimeRequest(input);
    const decision = this.deps.policy.decideRequest(built.request, built.context);
    if (decision.outcome === 'allowed') return { type: 'pass', used };
    const why = decision.outcome === 'forbidden' ? `forbidden by ${decision.determiningPolicies.join(', ')}` : decision.outcome === 'not_permitted' ? 'no runtime policy permits it' : decision.errors.join('; ') || decision.outcome;
    return { type: 'deny', reason: `${describeTuple(call)}: ${why}` };
  }

  /** A pod-bound token must come from a pod that still holds the task's grant. */
  private podRefusal(task: AgentTask, extra: Record<string, string[]>): string | undefined {
    const podName = extra[EXTRA_POD_NAME]?.[0];
    const podUid = extra[EXTRA_POD_UID]?.[0];
    if (podName === undefined && podUid === undefined) return undefined;
    const pod = podName ? this.deps.pod(task.metadata.namespace, podName) : undefined;
    if (!pod || pod.uid !== podUid) return `the token's pod ${podName ?? '(unnamed)'} is not a pod of AgentTask ${task.metadata.namespace}/${task.metadata.name}`;
    if (!holdsGrant(pod, task.metadata.uid ?? '')) return `the token's pod ${podName ?? ''} no longer holds the grant (it ended or is being deleted)`;
    return undefined;
  }
}
