// Wires the caches to the work queue: every event that could change what a task should hold
// enqueues that task; timers enqueue it at its expiry; a sweep removes objects whose task is
// gone (leftovers of a crash between two writes).
import { ANNOTATION_REVOKE, LABEL_TASK, LABEL_TASK_UID, isLive, isTerminal, type AgentTask } from '../api/index.js';
import type { KubeCluster } from '../kube/cluster.js';
import type { KubeObject } from '../kube/informer.js';
import type { Logger } from '../telemetry/logger.js';
import type { Metrics } from '../telemetry/metrics.js';
import { WorkQueue } from './queue.js';
import { Reconciler, taskKey, type ReconcilerDeps } from './reconciler.js';

export interface ControllerOptions {
  cluster: KubeCluster;
  logger: Logger;
  metrics: Metrics;
  workers: number;
  /** Orphan sweep and gauge refresh period. */
  sweepIntervalMs: number;
  reconciler: Omit<ReconcilerDeps, 'view' | 'writer' | 'requeueAfter' | 'observedAt' | 'logger' | 'metrics'>;
}

export class TaskController {
  private readonly queue: WorkQueue;
  private readonly reconciler: Reconciler;
  private readonly observed = new Map<string, number>();
  private sweepTimer?: NodeJS.Timeout;
  private running = false;

  constructor(private readonly options: ControllerOptions) {
    const { cluster, logger, metrics } = options;
    this.queue = new WorkQueue((key) => this.reconciler.reconcile(key), {
      workers: options.workers,
      // An eighth of the workers (at least one) free for revocations whatever grants are running.
      urgentReserve: Math.max(1, Math.floor(options.workers / 8)),
      // Bounded retries that still come back soon: a revocation waiting on a retry is access held.
      maxDelayMs: 10_000,
      onDepth: (depth) => metrics.queueDepth.set(depth),
      onError: (key, err, retryInMs) => logger.warn({ err, key, retryInMs }, 'reconcile failed, retrying'),
    });
    this.reconciler = new Reconciler({
      ...options.reconciler,
      view: cluster,
      writer: cluster,
      logger,
      metrics,
      requeueAfter: (key, ms, urgent) => this.queue.addAfter(key, ms, urgent),
      observedAt: (key) => this.observed.get(key),
    });
    cluster.tasks.on((event, task, old) => this.onTask(event, task, old));
    cluster.pods.on((event, pod, old) => {
      const name = pod.metadata.labels?.[LABEL_TASK];
      if (!name || !pod.metadata.namespace) return;
      const key = `${pod.metadata.namespace}/${name}`;
      // A pod ending (or going) may end the grant: that reconcile goes ahead of any grant.
      const mayRevoke = event === 'delete' || pod.status?.phase !== old?.status?.phase || (pod.metadata.deletionTimestamp && !old?.metadata.deletionTimestamp);
      if (mayRevoke) this.observe(key);
      this.enqueue(key, Boolean(mayRevoke));
    });
    cluster.approvals.on((_event, approval) => this.enqueue(`${approval.metadata.namespace}/${approval.spec?.task ?? ''}`));
    const onManaged = (event: string, object: KubeObject) => {
      const uid = object.metadata.labels?.[LABEL_TASK_UID];
      const task = uid ? this.taskByUid(uid) : undefined;
      if (task) this.enqueue(taskKey(task));
      else if (event !== 'delete' && this.running) void this.sweep();
    };
    cluster.serviceAccounts.on(onManaged);
    cluster.roles.on(onManaged);
    cluster.roleBindings.on(onManaged);
  }

  private onTask(event: string, task: AgentTask, old: AgentTask | undefined): void {
    const key = taskKey(task);
    if (event === 'delete') {
      this.observed.delete(key);
      this.queue.cancel(key);
      this.options.reconciler.audit.forget(task.metadata.uid ?? '');
      // Normally the finalizer revoked everything before the task could go. If someone stripped
      // the finalizer, the task is gone and nothing is left to reconcile: sweep its objects now
      // rather than at the next periodic sweep (30 s by default).
      if (this.running) void this.sweep();
    } else if (
      (task.metadata.deletionTimestamp && !old?.metadata.deletionTimestamp) ||
      (task.metadata.annotations?.[ANNOTATION_REVOKE] !== undefined && old?.metadata.annotations?.[ANNOTATION_REVOKE] === undefined)
    ) {
      this.observe(key);
    }
    // Deletions, revocations and expiries go ahead of grants.
    const ending = event === 'delete' || endsNow(task, this.options.reconciler.clock.now());
    this.enqueue(key, ending);
    // Children follow their parent: a parent's grant or revocation decides theirs.
    for (const child of this.options.cluster.childrenOf(task.metadata.namespace ?? '', task.metadata.name)) this.enqueue(taskKey(child), ending);
  }

  private observe(key: string): void {
    if (!this.observed.has(key)) this.observed.set(key, this.options.reconciler.clock.now());
  }

  private enqueue(key: string, urgent = false): void {
    if (this.running) this.queue.add(key, urgent);
  }

  private taskByUid(uid: string): AgentTask | undefined {
    return this.options.cluster.taskByUid(uid);
  }

  /** Starts reconciling. Caches must be synced (KubeCluster.start resolved). */
  start(): void {
    this.running = true;
    this.queue.start();
    // What ended while the operator was away (deleted, revoked, expired) is reconciled first.
    const now = this.options.reconciler.clock.now();
    for (const task of this.options.cluster.allTasks()) this.queue.add(taskKey(task), endsNow(task, now));
    void this.sweep();
    this.sweepTimer = setInterval(() => void this.sweep(), this.options.sweepIntervalMs);
    this.sweepTimer.unref();
  }

  async stop(): Promise<void> {
    this.running = false;
    clearInterval(this.sweepTimer);
    await this.queue.stop();
  }

  /** Re-decides every task that is not final (a new policy set may allow or end it). */
  onPolicyReload(): void {
    for (const task of this.options.cluster.allTasks()) if (!isTerminal(task.status?.phase)) this.enqueue(taskKey(task));
  }

  /** Resolves when the queue has nothing to do (tests and benchmarks). */
  idle(): Promise<void> {
    return this.queue.idle();
  }

  private sweeping = false;

  private async sweep(): Promise<void> {
    if (this.sweeping) return;
    this.sweeping = true;
    const { cluster, logger, metrics } = this.options;
    try {
      const live = new Set(cluster.allTasks().map((t) => t.metadata.uid));
      metrics.activeGrants.set(cluster.allTasks().filter((t) => isLive(t.status?.phase)).length);
      for (const uid of cluster.managedTaskUids()) {
        if (live.has(uid)) continue;
        const leftovers = [
          ...cluster.roleBindingsOfTask(uid).map((o) => ['RoleBinding', o] as const),
          ...cluster.rolesOfTask(uid).map((o) => ['Role', o] as const),
          ...cluster.serviceAccountsOfTask(uid).map((o) => ['ServiceAccount', o] as const),
        ];
        for (const [kind, o] of leftovers) {
          logger.info({ kind, namespace: o.metadata.namespace, name: o.metadata.name, taskUid: uid }, 'deleting object of a task that no longer exists');
          await cluster.delete(kind, o.metadata.namespace ?? '', o.metadata.name);
        }
      }
      const { ledger, settings, clock } = this.options.reconciler;
      const pruned = await ledger.prune(clock.now(), settings.reissueWindowMs);
      if (pruned > 0) logger.info({ pruned }, 'deleted grant ledgers in which nothing counts any more');
    } catch (err) {
      logger.warn({ err }, 'orphan sweep failed; will retry');
    } finally {
      this.sweeping = false;
    }
  }
}

/** A task whose next reconcile is a revocation or a deletion: it goes ahead of grants. */
function endsNow(task: AgentTask, now: number): boolean {
  if (task.metadata.deletionTimestamp || task.metadata.annotations?.[ANNOTATION_REVOKE] !== undefined) return true;
  const expiresAt = Date.parse(task.status?.grant?.expiresAt ?? '');
  return isLive(task.status?.phase) && Number.isFinite(expiresAt) && expiresAt <= now;
}
