// Who asked and who approved: stamped from the authenticated caller, never taken from the
// manifest. Policy reads `requester`, and the self-approval check compares the two, so a forged
// value would let anyone impersonate a requester or approve their own task.
//
// Only CREATE is meant to be registered for these routes: spec is immutable after creation
// (CEL `self == oldSelf` on both CRDs), so an UPDATE cannot touch requester or approver. The
// validating handler still refuses an UPDATE that changes spec, in case a CRD is installed
// without its CEL rules.
import { isDeepStrictEqual } from 'node:util';
import { isRecord, AGENT_TASK_KIND, AGENT_TASK_PLURAL, GROUP, TASK_APPROVAL_KIND, parseAgentTask, parseTaskApproval, targetNamespaces, taskIdentityOf, type Requester } from '../api/index.js';
import {
  POD_NAME_EXTRA,
  allow,
  allowPatch,
  deny,
  type AdmissionRequest,
  type MutationVerdict,
  type UserInfo,
  type ValidationVerdict,
} from './admission.js';
import type { AccessReviewer, ServiceAccountLookup, TaskLookup } from './deps.js';
import { add } from './jsonpatch.js';


/** The caller as a Requester (the same shape serves as `approver`). */
export function requesterOf(user: UserInfo): Requester {
  const podName = user.extra?.[POD_NAME_EXTRA]?.[0];
  return {
    ...(user.username !== undefined ? { username: user.username } : {}),
    ...(user.uid !== undefined ? { uid: user.uid } : {}),
    groups: [...(user.groups ?? [])],
    ...(podName ? { podName } : {}),
  };
}

function stamp(request: AdmissionRequest, kind: string, field: 'requester' | 'approver'): MutationVerdict {
  if (request.operation !== 'CREATE') return allowPatch([]);
  if (request.kind.kind !== kind) return deny(`this webhook stamps ${kind} objects, not ${request.kind.kind}`);
  if (!request.userInfo.username) return deny(`the request carries no authenticated username to record as spec.${field}`);
  const object = request.object;
  // The CRD requires spec; refusing here gives a clearer message than a failed patch would.
  if (!isRecord(object) || !isRecord(object.spec)) return deny(`${kind} spec is required`);
  return allowPatch([add(['spec', field], requesterOf(request.userInfo))]);
}

/**
 * `/mutate/agenttasks`: spec.requester := the caller. A task identity (an agent holding a grant)
 * creates only children of its own task: spec.parentTask := that task, so the new task can only
 * narrow the grant, counts towards the delegation depth and ends with it.
 *
 * No finalizer here: the controller adds it before it binds anything (a task is never deleted
 * with its grant in place), so a task that holds nothing — denied, awaiting approval — never
 * blocks its own deletion or its namespace's, and a denial costs no write to release it.
 */
export function mutateAgentTask(request: AdmissionRequest, deps: { serviceAccounts: ServiceAccountLookup }): MutationVerdict {
  const verdict = stamp(request, AGENT_TASK_KIND, 'requester');
  if (verdict.type !== 'allow' || request.operation !== 'CREATE') return verdict;
  const patch = [...verdict.patch];
  const identity = taskIdentityOf(request.userInfo.username);
  if (identity) {
    const creator = deps.serviceAccounts.taskOf(identity.namespace, identity.name);
    if (!creator) return deny(`${request.userInfo.username ?? ''} is a task identity (tg-*) that belongs to no task taskgrant knows, so it may not create AgentTasks`);
    if (request.namespace !== identity.namespace) return deny(`a task identity creates AgentTasks only in its own namespace ${identity.namespace}, as children of task ${creator}`);
    const spec = (request.object as { spec: Record<string, unknown> }).spec;
    if (spec.parentTask !== undefined && spec.parentTask !== creator) return deny(`a task identity creates only children of its own task: spec.parentTask must be ${creator} (or left out), not ${JSON.stringify(spec.parentTask)}`);
    patch.push(add(['spec', 'parentTask'], creator));
  }
  return { ...verdict, patch };
}

/** `/mutate/taskapprovals`: spec.approver := the caller. */
export function mutateTaskApproval(request: AdmissionRequest): MutationVerdict {
  return stamp(request, TASK_APPROVAL_KIND, 'approver');
}

export interface ApprovalDeps {
  tasks: TaskLookup;
  accessReviewer: AccessReviewer;
}

/** `/validate/taskapprovals`: who may approve, and what. */
export async function validateTaskApproval(request: AdmissionRequest, deps: ApprovalDeps): Promise<ValidationVerdict> {
  switch (request.operation) {
    case 'CREATE':
      break;
    case 'UPDATE': {
      const spec = (o: unknown) => (isRecord(o) ? o.spec : undefined);
      return isDeepStrictEqual(spec(request.object), spec(request.oldObject))
        ? allow()
        : deny('TaskApproval spec is immutable; create a new TaskApproval instead');
    }
    case 'DELETE':
    case 'CONNECT':
      return allow();
    default: {
      const never: never = request.operation;
      return deny(`unexpected operation ${String(never)}`);
    }
  }
  if (request.kind.kind !== TASK_APPROVAL_KIND) return deny(`this webhook validates TaskApproval objects, not ${request.kind.kind}`);
  const object = request.object;
  if (!isRecord(object)) return deny('the request carries no TaskApproval');
  const namespace = request.namespace ?? '';
  if (namespace === '') return deny('a TaskApproval must be namespaced');
  // The API server fills metadata.namespace from the URL; use the request's own value so a
  // manifest cannot point the lookups at another namespace.
  const parsed = parseTaskApproval({ ...object, metadata: { ...(isRecord(object.metadata) ? object.metadata : {}), namespace } });
  if (!parsed.ok) return deny(`invalid TaskApproval: ${parsed.error}`);
  const approval = parsed.value;
  const caller = request.userInfo;
  const where = `${namespace}/${approval.spec.task}`;

  const task = deps.tasks.get(namespace, approval.spec.task);
  if (!task) return deny(`AgentTask ${where} not found`);
  if (!task.metadata.uid || approval.spec.taskUID !== task.metadata.uid)
    // The current uid is not echoed: copying it from an error would approve a task unseen.
    return deny(`spec.taskUID ${approval.spec.taskUID} is stale: it is not the uid of AgentTask ${where}; approvals never carry over to a recreated task`);
  if (!caller.username) return deny('the request carries no authenticated username');
  // Mutating webhooks all run before validating ones, so a mismatch means the stamp was skipped
  // (webhook configuration missing or mis-scoped); an unstamped approver must not be trusted.
  if (approval.spec.approver?.username !== caller.username)
    return deny('spec.approver does not match the caller: the taskgrant mutating webhook for taskapprovals did not run');
  const requester = task.spec.requester?.username;
  // Without a recorded requester, self-approval cannot be ruled out.
  if (!requester) return deny(`AgentTask ${where} has no recorded requester, so no approval can be checked against it; recreate the task`);
  if (requester === caller.username) return deny(`${caller.username} requested AgentTask ${where} and cannot approve it`);
  // An approval unlocks access in every namespace the task's rules name, so the approver needs
  // the right to approve in each of them: otherwise whoever may approve in team-a could hand an
  // agent of team-a access to team-b (or kube-system), up to the operator's cluster-wide ceiling.
  let reach: string[] = [namespace];
  if (approval.spec.decision === 'Approve') {
    const parsedTask = parseAgentTask(task);
    if (!parsedTask.ok) return deny(`AgentTask ${where} is invalid (${parsedTask.error}), so it cannot be approved`);
    reach = [...new Set([namespace, ...targetNamespaces(parsedTask.value)])];
  }
  for (const target of reach) {
    let permitted: boolean;
    try {
      permitted = await deps.accessReviewer.canApprove(caller, target);
    } catch (cause) {
      throw new Error(`access review for approving in namespace ${target}`, { cause });
    }
    if (!permitted && target === namespace)
      return deny(`${caller.username} may not approve AgentTasks in namespace ${namespace}: it needs verb approve on ${AGENT_TASK_PLURAL}.${GROUP}`);
    if (!permitted)
      return deny(`${caller.username} may not approve AgentTask ${where}: it asks for access in namespace ${target}, and approving that needs verb approve on ${AGENT_TASK_PLURAL}.${GROUP} in ${target} as well`);
  }
  return allow();
}
