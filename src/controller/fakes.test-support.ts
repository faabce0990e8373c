// In-memory stand-ins for the cluster and the ledger, for reconciler unit tests.
import { LABEL_TASK_LIVE, type AgentTask, type AgentTaskStatus, type Requester, type TaskApproval } from '../api/index.js';
import { KubeError } from '../kube/api.js';
import type { PodObject, RoleBindingObject, RoleObject, ServiceAccountObject } from '../kube/objects.js';
import type { ApproverCheck, Clock, ClusterView, ClusterWriter, GrantLedger, LedgerEntry, ManagedKind } from './ports.js';

type Managed = ServiceAccountObject | RoleObject | RoleBindingObject;

export class FakeCluster implements ClusterView, ClusterWriter {
  readonly tasks = new Map<string, AgentTask>();
  readonly approvals: TaskApproval[] = [];
  readonly pods: PodObject[] = [];
  readonly objects = new Map<string, { kind: ManagedKind; object: Managed }>();
  readonly events: Array<{ reason: string; type: string; message: string }> = [];
  readonly writes: string[] = [];
  /** Set to make deletes of this kind fail (a dropped connection). */
  failDeletesOf: ManagedKind | undefined;
  /** Set to make finalizer writes fail (a conflict, a dropped connection). */
  failFinalizerWrites = false;
  /** Set to make Role creation fail the way the API server refuses escalation. */
  refuseRoles = false;
  /** Set to make every create fail the way it does in a namespace being deleted. */
  terminating = false;
  /**
   * Set to check RoleBindings the way the API server does for a creator that may not `bind` (the
   * operator): against the rules of the Role it names, at the moment the request arrives, so a
   * binding whose Role is still being created is refused. Every create then takes a turn of the
   * event loop, as a round trip would.
   */
  checkBindingsAgainstRoles = false;
  /** Namespace -> its `taskgrant.io/sensitivity` label. */
  readonly sensitivityLabels = new Map<string, string>();
  private rv = 1;

  namespaceSensitivity(namespace: string) {
    return this.sensitivityLabels.get(namespace);
  }

  put(task: AgentTask): AgentTask {
    const stored = { ...task, metadata: { ...task.metadata, resourceVersion: String(this.rv++) } };
    this.tasks.set(`${task.metadata.namespace}/${task.metadata.name}`, stored);
    return stored;
  }

  task(namespace: string, name: string) {
    return this.tasks.get(`${namespace}/${name}`);
  }
  allTasks() {
    return [...this.tasks.values()];
  }
  approvalsOf(namespace: string, taskName: string) {
    return this.approvals.filter((a) => a.metadata.namespace === namespace && a.spec.task === taskName);
  }
  podsOfTask(namespace: string, taskName: string) {
    return this.pods.filter((p) => p.metadata.namespace === namespace && p.metadata.labels?.['taskgrant.io/task'] === taskName);
  }
  private ofKind<T extends Managed>(kind: ManagedKind, uid: string): T[] {
    return [...this.objects.values()].filter((o) => o.kind === kind && o.object.metadata.labels?.['taskgrant.io/task-uid'] === uid).map((o) => o.object as T);
  }
  serviceAccountsOfTask(uid: string) {
    return this.ofKind<ServiceAccountObject>('ServiceAccount', uid);
  }
  rolesOfTask(uid: string) {
    return this.ofKind<RoleObject>('Role', uid);
  }
  roleBindingsOfTask(uid: string) {
    return this.ofKind<RoleBindingObject>('RoleBinding', uid);
  }
  managedTaskUids() {
    return new Set([...this.objects.values()].map((o) => o.object.metadata.labels?.['taskgrant.io/task-uid'] ?? ''));
  }

  async create<T extends Managed>(kind: ManagedKind, object: T): Promise<T> {
    if (kind === 'Role' && this.refuseRoles) {
      // As the API server's escalation check: Forbidden, naming the resource, no cause.
      throw new KubeError(403, 'POST', `/apis/rbac.authorization.k8s.io/v1/namespaces/${object.metadata.namespace}/roles`, 'forbidden', 'Forbidden', { kind: 'roles', causes: [] });
    }
    if (this.terminating) {
      // As the API server's namespace lifecycle admission: Forbidden with a NamespaceTerminating cause.
      throw new KubeError(403, 'POST', `/api/v1/namespaces/${object.metadata.namespace}/${kind.toLowerCase()}s`, 'forbidden', 'Forbidden', { kind: `${kind.toLowerCase()}s`, causes: ['NamespaceTerminating'] });
    }
    if (this.checkBindingsAgainstRoles) {
      const roleRef = kind === 'RoleBinding' ? (object as RoleBindingObject).roleRef : undefined;
      if (roleRef && !this.objects.has(`Role/${object.metadata.namespace}/${roleRef.name}`)) {
        throw new KubeError(403, 'POST', `/apis/rbac.authorization.k8s.io/v1/namespaces/${object.metadata.namespace}/rolebindings`, `roles "${roleRef.name}" not found`, 'Forbidden', { kind: 'rolebindings', causes: [] });
      }
      await new Promise((resolve) => setImmediate(resolve));
    }
    const key = `${kind}/${object.metadata.namespace}/${object.metadata.name}`;
    // As the API server: a taken name is not overwritten (AlreadyExists), and the adapter reads back what is there.
    const existing = this.objects.get(key);
    if (existing) return structuredClone(existing.object) as T;
    this.writes.push(`create ${kind} ${object.metadata.namespace}/${object.metadata.name}`);
    this.objects.set(key, { kind, object: structuredClone(object) });
    return structuredClone(object);
  }
  async replace(kind: ManagedKind, object: Managed) {
    this.writes.push(`replace ${kind} ${object.metadata.namespace}/${object.metadata.name}`);
    this.objects.set(`${kind}/${object.metadata.namespace}/${object.metadata.name}`, { kind, object: structuredClone(object) });
  }
  async delete(kind: ManagedKind, namespace: string, name: string) {
    if (this.failDeletesOf === kind) throw new Error(`deleting ${kind} ${namespace}/${name}: connection reset`);
    const existed = this.objects.delete(`${kind}/${namespace}/${name}`);
    if (existed) this.writes.push(`delete ${kind} ${namespace}/${name}`);
    return existed;
  }
  async patchTaskStatus(task: AgentTask, status: AgentTaskStatus) {
    this.writes.push(`status ${status.phase}`);
    const current = this.task(task.metadata.namespace, task.metadata.name) ?? task;
    return this.put({ ...current, status });
  }
  async deleteTask(task: AgentTask) {
    const current = this.task(task.metadata.namespace, task.metadata.name);
    if (!current || current.metadata.uid !== task.metadata.uid) return false;
    this.writes.push(`delete AgentTask ${task.metadata.namespace}/${task.metadata.name}`);
    return this.tasks.delete(`${task.metadata.namespace}/${task.metadata.name}`);
  }
  async deleteApproval(namespace: string, name: string) {
    const i = this.approvals.findIndex((a) => a.metadata.namespace === namespace && a.metadata.name === name);
    if (i < 0) return false;
    this.approvals.splice(i, 1);
    this.writes.push(`delete TaskApproval ${namespace}/${name}`);
    return true;
  }
  async setTaskFinalizers(task: AgentTask, finalizers: string[], live?: boolean) {
    if (this.failFinalizerWrites) throw new Error('finalizer write lost');
    this.writes.push(`finalizers [${finalizers.join(',')}]${live === undefined ? '' : ` live label ${live}`}`);
    const current = this.task(task.metadata.namespace, task.metadata.name) ?? task;
    if (current.metadata.deletionTimestamp && finalizers.length === 0) {
      this.tasks.delete(`${task.metadata.namespace}/${task.metadata.name}`);
      return current;
    }
    const { [LABEL_TASK_LIVE]: _dropped, ...others } = current.metadata.labels ?? {};
    const labels = live === undefined ? current.metadata.labels : live ? { ...others, [LABEL_TASK_LIVE]: 'true' } : others;
    return this.put({ ...current, metadata: { ...current.metadata, finalizers, ...(labels ? { labels } : {}) } });
  }
  async setTaskLiveLabel(task: AgentTask, live: boolean) {
    this.writes.push(`live label ${live}`);
    const current = this.task(task.metadata.namespace, task.metadata.name) ?? task;
    const { [LABEL_TASK_LIVE]: _dropped, ...others } = current.metadata.labels ?? {};
    return this.put({ ...current, metadata: { ...current.metadata, labels: live ? { ...others, [LABEL_TASK_LIVE]: 'true' } : others } });
  }
  /** Event name -> the uid of the task it is about and whether taskgrant wrote it. */
  readonly eventNames = new Map<string, { uid: string; ours: boolean }>();
  async recordEvent(task: AgentTask, type: 'Normal' | 'Warning', reason: string, message: string, name: string) {
    if (this.eventNames.has(name)) return false;
    this.eventNames.set(name, { uid: task.metadata.uid ?? '', ours: true });
    this.events.push({ type, reason, message });
    return true;
  }
  async auditEventOwner(task: AgentTask, name: string) {
    const event = this.eventNames.get(name);
    if (!event) return 'missing' as const;
    return event.ours && event.uid === task.metadata.uid ? ('ours' as const) : ('foreign' as const);
  }
}

export class FakeLedger implements GrantLedger {
  readonly byAgent = new Map<string, LedgerEntry[]>();
  /** Set to make appends fail the way a lost write does (a conflict, a dropped connection). */
  failAppends = false;
  async entries(namespace: string, agent: string) {
    return [...(this.byAgent.get(`${namespace}/${agent}`) ?? [])];
  }
  async prune() {
    return 0;
  }
  async append(namespace: string, agent: string, entry: LedgerEntry) {
    if (this.failAppends) throw new Error('ledger write lost');
    const list = this.byAgent.get(`${namespace}/${agent}`) ?? [];
    if (!list.some((e) => e.uid === entry.uid)) list.push(entry);
    this.byAgent.set(`${namespace}/${agent}`, list);
  }
}

/** Approvers and the namespaces they may approve in ('*': all); everyone else may not. */
export class FakeApprovers implements ApproverCheck {
  readonly rights = new Map<string, Set<string>>([['alice', new Set(['*'])]]);
  readonly asked: string[] = [];
  async mayApprove(approver: Requester, namespace: string) {
    this.asked.push(`${approver.username ?? ''}@${namespace}`);
    const rights = this.rights.get(approver.username ?? '');
    return rights !== undefined && (rights.has('*') || rights.has(namespace));
  }
}

export class FakeClock implements Clock {
  constructor(public ms = Date.parse('2026-11-22T10:00:00Z')) {}
  now() {
    return this.ms;
  }
}

let uidCounter = 0;
export function taskFixture(name: string, spec: Partial<AgentTask['spec']> = {}, namespace = 'team-a'): AgentTask {
  uidCounter += 1;
  return {
    apiVersion: 'taskgrant.io/v1alpha1',
    kind: 'AgentTask',
    metadata: { name, namespace, uid: `0000${uidCounter.toString().padStart(4, '0')}-aaaa-4bbb-8ccc-dddddddddddd`, generation: 1, creationTimestamp: '2026-11-22T09:59:59Z' },
    spec: {
      agent: 'log-summarizer',
      intent: { objective: 'Summarize error logs', tools: ['kubectl-logs'], sensitivity: 'internal', permissions: [{ apiGroups: [''], resources: ['pods'], verbs: ['get', 'list'] }] },
      ttl: '15m',
      maxPods: 1,
      ...spec,
    },
  };
}
