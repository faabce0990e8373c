// The cluster as the operator sees it: informer caches for AgentTasks, TaskApprovals, task
// pods and the objects it manages (reads never hit the API server), and the writes it makes,
// each written through to the caches so the next reconcile sees its own effects.
import { hostname } from 'node:os';
import {
  LABEL_MANAGED_BY,
  LABEL_NAMESPACE_SENSITIVITY,
  LABEL_POLICY,
  LABEL_TASK,
  LABEL_TASK_LIVE,
  LABEL_TASK_UID,
  MANAGED_BY,
  RISK_CONFIGMAP,
  readRiskLevel,
  type AgentTask,
  type AgentTaskStatus,
  type RiskReading,
  type TaskApproval,
  type TaskUsage,
} from '../api/index.js';
import type { Logger } from '../telemetry/logger.js';
import type { Metrics } from '../telemetry/metrics.js';
import { KubeApi, isAlreadyExists, isStatus, paths } from './api.js';
import type { KubeConfig } from './client.js';
import { Informer, type InformerSettings, type KubeObject } from './informer.js';
import { LABEL_LEDGER } from './ledger.js';
import type { ConfigMapObject, ManagedKind, PodObject, RoleBindingObject, RoleObject, ServiceAccountObject } from './objects.js';
import { transportOf } from './rest.js';
import type { Transport } from './transport.js';

type TaskObject = AgentTask & KubeObject;
type ApprovalObject = TaskApproval & KubeObject;

const BY_TASK_UID = 'taskUid';
const BY_TASK = 'task';
const BY_NAME = 'name';
const BY_UID = 'uid';
const BY_PARENT = 'parent';
const REPORTING_COMPONENT = 'taskgrant.io/controller';

interface ClusterSettings {
  logger: Logger;
  metrics: Metrics;
  /** The operator's namespace: its ledger ConfigMaps are cached too. */
  operatorNamespace: string;
  /** Informer tuning (tests shorten the resync and stall windows). */
  informer?: Pick<InformerSettings, 'resyncMs' | 'stallMs' | 'watchTimeoutSeconds' | 'writeHoldMs'>;
}

/** The cluster through a Transport (tests pass a fake), or over https with a kubeconfig. */
export type KubeClusterOptions = ClusterSettings & ({ transport: Transport } | { kc: KubeConfig });

export class KubeCluster {
  readonly api: KubeApi;
  readonly tasks: Informer<TaskObject>;
  readonly approvals: Informer<ApprovalObject>;
  readonly pods: Informer<PodObject>;
  readonly serviceAccounts: Informer<ServiceAccountObject>;
  readonly roles: Informer<RoleObject>;
  readonly roleBindings: Informer<RoleBindingObject>;
  readonly ledgers: Informer<ConfigMapObject>;
  /** Only namespaces whose data owner set a sensitivity floor. */
  readonly namespaces: Informer<KubeObject>;
  /**
   * The operator namespace's labelled policy ConfigMaps. Not started with the rest: policy sync
   * starts it, so policies load while the other caches fill.
   */
  readonly policyConfigMaps: Informer<ConfigMapObject>;
  /** The risk level ConfigMap (taskgrant-risk) of the operator namespace, alone. */
  readonly risk: Informer<ConfigMapObject>;
  private readonly logger: Logger;
  private readonly instance = `${hostname()}-${process.pid}`;

  constructor(options: KubeClusterOptions) {
    const { logger, metrics } = options;
    const transport = transportOf('transport' in options ? options.transport : options.kc);
    this.api = new KubeApi(transport);
    this.logger = logger;
    const base = { transport, logger, metrics, ...options.informer };
    const managed = `${LABEL_MANAGED_BY}=${MANAGED_BY}`;
    this.tasks = new Informer<TaskObject>({ ...base, path: paths.agentTasks(), resource: 'agenttasks' });
    this.approvals = new Informer<ApprovalObject>({ ...base, path: paths.taskApprovals(), resource: 'taskapprovals' });
    this.pods = new Informer<PodObject>({ ...base, path: paths.pods(), resource: 'pods', labelSelector: LABEL_TASK });
    this.serviceAccounts = new Informer<ServiceAccountObject>({ ...base, path: paths.serviceAccounts(), resource: 'serviceaccounts', labelSelector: managed });
    this.roles = new Informer<RoleObject>({ ...base, path: paths.roles(), resource: 'roles', labelSelector: managed });
    this.roleBindings = new Informer<RoleBindingObject>({ ...base, path: paths.roleBindings(), resource: 'rolebindings', labelSelector: managed });
    this.ledgers = new Informer<ConfigMapObject>({ ...base, path: paths.configMaps(options.operatorNamespace), resource: 'ledgers', labelSelector: `${LABEL_LEDGER}=true` });
    this.namespaces = new Informer<KubeObject>({ ...base, path: paths.namespaces(), resource: 'namespaces', labelSelector: LABEL_NAMESPACE_SENSITIVITY });
    this.policyConfigMaps = new Informer<ConfigMapObject>({ ...base, path: paths.configMaps(options.operatorNamespace), resource: 'configmaps', labelSelector: `${LABEL_POLICY}=true` });
    this.risk = new Informer<ConfigMapObject>({ ...base, path: paths.configMaps(options.operatorNamespace), resource: 'risk', fieldSelector: `metadata.name=${RISK_CONFIGMAP}` });
    const byUid = (o: KubeObject) => (o.metadata.labels?.[LABEL_TASK_UID] ? [o.metadata.labels[LABEL_TASK_UID]] : []);
    for (const informer of [this.serviceAccounts, this.roles, this.roleBindings] as unknown as Array<Informer<KubeObject>>) informer.addIndex(BY_TASK_UID, byUid);
    this.pods.addIndex(BY_TASK, (p) => (p.metadata.labels?.[LABEL_TASK] ? [`${p.metadata.namespace}/${p.metadata.labels[LABEL_TASK]}`] : []));
    this.approvals.addIndex(BY_TASK, (a) => [`${a.metadata.namespace}/${a.spec?.task ?? ''}`]);
    // The event path looks tasks up by uid and children by parent: indexes, not scans of every task.
    this.tasks.addIndex(BY_UID, (t) => (t.metadata.uid ? [t.metadata.uid] : []));
    this.tasks.addIndex(BY_PARENT, (t) => (t.spec?.parentTask ? [`${t.metadata.namespace}/${t.spec.parentTask}`] : []));
    this.serviceAccounts.addIndex(BY_NAME, (sa) => [`${sa.metadata.namespace}/${sa.metadata.name}`]);
  }

  private get informers(): Array<Informer<KubeObject>> {
    return [this.tasks, this.approvals, this.pods, this.serviceAccounts, this.roles, this.roleBindings, this.ledgers, this.namespaces, this.risk] as unknown as Array<Informer<KubeObject>>;
  }

  async start(): Promise<void> {
    await Promise.all(this.informers.map((i) => i.start()));
  }

  async stop(): Promise<void> {
    await Promise.all(this.informers.map((i) => i.stop()));
  }

  get synced(): boolean {
    return this.informers.every((i) => i.isSynced);
  }

  // ---- read side (ClusterView) ----------------------------------------------------------------

  task(namespace: string, name: string): AgentTask | undefined {
    return this.tasks.get(namespace, name);
  }

  allTasks(): AgentTask[] {
    return this.tasks.list();
  }

  /** The cluster's risk level now (normal without the ConfigMap). */
  riskLevel(): RiskReading {
    return readRiskLevel(this.risk.list()[0]?.data);
  }

  taskByUid(uid: string): AgentTask | undefined {
    return this.tasks.byIndex(BY_UID, uid)[0];
  }

  /** Tasks naming `namespace/name` as their parent. */
  childrenOf(namespace: string, name: string): AgentTask[] {
    return this.tasks.byIndex(BY_PARENT, `${namespace}/${name}`);
  }

  approvalsOf(namespace: string, taskName: string): TaskApproval[] {
    return this.approvals.byIndex(BY_TASK, `${namespace}/${taskName}`);
  }

  podsOfTask(namespace: string, taskName: string): PodObject[] {
    return this.pods.byIndex(BY_TASK, `${namespace}/${taskName}`);
  }

  serviceAccountsOfTask(taskUid: string): ServiceAccountObject[] {
    return this.serviceAccounts.byIndex(BY_TASK_UID, taskUid);
  }

  rolesOfTask(taskUid: string): RoleObject[] {
    return this.roles.byIndex(BY_TASK_UID, taskUid);
  }

  roleBindingsOfTask(taskUid: string): RoleBindingObject[] {
    return this.roleBindings.byIndex(BY_TASK_UID, taskUid);
  }

  /** Task uids that managed objects point at (the orphan sweep compares them with live tasks). */
  managedTaskUids(): Set<string> {
    return new Set([this.serviceAccounts, this.roles, this.roleBindings].flatMap((i) => (i as unknown as Informer<KubeObject>).indexValues(BY_TASK_UID)));
  }

  namespaceSensitivity(namespace: string): string | undefined {
    return this.namespaces.get(undefined, namespace)?.metadata.labels?.[LABEL_NAMESPACE_SENSITIVITY];
  }

  /** The managed ServiceAccount `namespace/name`, if taskgrant created it. */
  managedServiceAccount(namespace: string, name: string): ServiceAccountObject | undefined {
    return this.serviceAccounts.byIndex(BY_NAME, `${namespace}/${name}`)[0];
  }

  // ---- write side (ClusterWriter) -------------------------------------------------------------

  private informerOf(kind: ManagedKind): Informer<KubeObject> {
    switch (kind) {
      case 'ServiceAccount':
        return this.serviceAccounts as unknown as Informer<KubeObject>;
      case 'Role':
        return this.roles as unknown as Informer<KubeObject>;
      case 'RoleBinding':
        return this.roleBindings as unknown as Informer<KubeObject>;
    }
  }

  private collectionPath(kind: ManagedKind, namespace: string): string {
    switch (kind) {
      case 'ServiceAccount':
        return paths.serviceAccounts(namespace);
      case 'Role':
        return paths.roles(namespace);
      case 'RoleBinding':
        return paths.roleBindings(namespace);
    }
  }

  async create<T extends KubeObject>(kind: ManagedKind, object: T): Promise<T> {
    const namespace = object.metadata.namespace ?? '';
    const path = this.collectionPath(kind, namespace);
    try {
      const created = await this.api.create<T>(path, object);
      this.informerOf(kind).upsert(created);
      return created;
    } catch (err) {
      // Already there: ours from a retry after a crash or a lost response, or someone else's.
      // Either way the caller gets what exists, never a pretence that ours was written.
      if (!isAlreadyExists(err)) throw err;
      const existing = await this.api.get<T>(`${path}/${object.metadata.name}`);
      this.informerOf(kind).upsert(existing);
      return existing;
    }
  }

  async replace(kind: ManagedKind, object: KubeObject): Promise<void> {
    const path = `${this.collectionPath(kind, object.metadata.namespace ?? '')}/${object.metadata.name}`;
    const replaced = await this.api.replace<KubeObject>(path, object);
    this.informerOf(kind).upsert(replaced);
  }

  async delete(kind: ManagedKind, namespace: string, name: string): Promise<boolean> {
    const existed = await this.api.delete(`${this.collectionPath(kind, namespace)}/${name}`, { propagationPolicy: 'Background' });
    this.informerOf(kind).forget(namespace, name);
    return existed;
  }

  /**
   * Writes status.usage only if the task is still at the resourceVersion the counts were added
   * to (a 409 otherwise): another replica's counts are never overwritten.
   */
  async writeTaskUsage(task: AgentTask, usage: TaskUsage): Promise<AgentTask> {
    const path = `${paths.agentTask(task.metadata.namespace, task.metadata.name)}/status`;
    const updated = await this.api.patch<TaskObject>(path, { metadata: { resourceVersion: task.metadata.resourceVersion }, status: { usage } });
    this.tasks.upsert(updated);
    return updated;
  }

  async setTaskLiveLabel(task: AgentTask, live: boolean): Promise<AgentTask> {
    const updated = await this.api.patch<TaskObject>(paths.agentTask(task.metadata.namespace, task.metadata.name), { metadata: { labels: { [LABEL_TASK_LIVE]: live ? 'true' : null } } });
    this.tasks.upsert(updated);
    return updated;
  }

  async patchTaskStatus(task: AgentTask, status: AgentTaskStatus): Promise<AgentTask> {
    const updated = await this.api.patch<TaskObject>(`${paths.agentTask(task.metadata.namespace, task.metadata.name)}/status`, { status });
    this.tasks.upsert(updated);
    return updated;
  }

  /**
   * Replaces the finalizer list, guarded by resourceVersion so a concurrent edit is never lost.
   * On a conflict (our cached copy was stale) the same change — what `finalizers` adds to and
   * removes from the cached list — is applied once more to a freshly read task.
   */
  async setTaskFinalizers(task: AgentTask, finalizers: string[], live?: boolean): Promise<AgentTask> {
    const path = paths.agentTask(task.metadata.namespace, task.metadata.name);
    const labels = live === undefined ? {} : { labels: { [LABEL_TASK_LIVE]: live ? 'true' : null } };
    const patch = (t: AgentTask, list: string[]) => this.api.patch<TaskObject>(path, { metadata: { finalizers: list, resourceVersion: t.metadata.resourceVersion, ...labels } });
    let updated: TaskObject;
    try {
      updated = await patch(task, finalizers);
    } catch (err) {
      if (!isStatus(err, 409)) throw err;
      const fresh = await this.api.get<TaskObject>(path);
      this.tasks.upsert(fresh);
      const before = task.metadata.finalizers ?? [];
      const added = finalizers.filter((f) => !before.includes(f));
      const removed = before.filter((f) => !finalizers.includes(f));
      const current = fresh.metadata.finalizers ?? [];
      updated = await patch(fresh, [...current.filter((f) => !removed.includes(f)), ...added.filter((f) => !current.includes(f))]);
    }
    this.tasks.upsert(updated);
    return updated;
  }

  async recordEvent(task: AgentTask, type: 'Normal' | 'Warning', reason: string, message: string, name: string): Promise<boolean> {
    try {
      await this.createEvent(task, type, reason, message, name);
      return true;
    } catch (err) {
      if (isAlreadyExists(err)) return false;
      throw err;
    }
  }

  /** A Warning Event on a policy ConfigMap the engine refused; a failure is logged, never thrown. */
  async reportPolicyRejection(cm: { metadata: { name: string; namespace?: string; uid?: string } }, message: string): Promise<void> {
    const namespace = cm.metadata.namespace ?? '';
    try {
      await this.postEvent(
        { generateName: `${cm.metadata.name}.`, namespace },
        { apiVersion: 'v1', kind: 'ConfigMap', name: cm.metadata.name, namespace, uid: cm.metadata.uid },
        'Warning',
        'PolicyRejected',
        message,
      );
    } catch (err) {
      this.logger.warn({ err }, 'recording the policy rejection event failed');
    }
  }

  async deleteTask(task: AgentTask): Promise<boolean> {
    try {
      const deleted = await this.api.delete(paths.agentTask(task.metadata.namespace, task.metadata.name), { apiVersion: 'v1', kind: 'DeleteOptions', preconditions: { uid: task.metadata.uid } });
      if (deleted) this.tasks.forget(task.metadata.namespace, task.metadata.name);
      return deleted;
    } catch (err) {
      // 409: the name now belongs to another task (the precondition held): not ours to delete.
      if (isStatus(err, 409)) return false;
      throw err;
    }
  }

  async deleteApproval(namespace: string, name: string): Promise<boolean> {
    return this.api.delete(`${paths.taskApprovals(namespace)}/${name}`);
  }

  async auditEventOwner(task: AgentTask, name: string): Promise<'missing' | 'ours' | 'foreign'> {
    const event = await this.api.find<{ involvedObject?: { uid?: string }; reportingComponent?: string }>(paths.event(task.metadata.namespace, name));
    if (!event) return 'missing';
    return event.involvedObject?.uid === task.metadata.uid && event.reportingComponent === REPORTING_COMPONENT ? 'ours' : 'foreign';
  }

  private async createEvent(task: AgentTask, type: string, reason: string, message: string, name: string): Promise<void> {
    const { namespace, uid } = task.metadata;
    await this.postEvent({ name, namespace }, { apiVersion: task.apiVersion, kind: task.kind, name: task.metadata.name, namespace, uid }, type, reason, message);
  }

  /** One Event about `involvedObject`, as taskgrant's controller reports it. */
  private async postEvent(metadata: { name?: string; generateName?: string; namespace: string }, involvedObject: Record<string, unknown>, type: string, reason: string, message: string): Promise<void> {
    const now = new Date().toISOString();
    await this.api.create(paths.events(metadata.namespace), {
      apiVersion: 'v1',
      kind: 'Event',
      metadata,
      involvedObject,
      reason: reason.slice(0, 128),
      message: message.slice(0, 1024),
      type,
      source: { component: 'taskgrant' },
      reportingComponent: REPORTING_COMPONENT,
      reportingInstance: this.instance.slice(0, 128),
      firstTimestamp: now,
      lastTimestamp: now,
      count: 1,
    });
  }
}
