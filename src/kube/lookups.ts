// The cluster lookups the webhook and the receipt endpoints need, over the operator's informer
// caches: the ports they declare (TaskByServiceAccount, PodLookup, the pods holding a task's
// slots, ServiceAccount ownership), over the shapes in src/api. Synchronous on purpose: an
// admission answer or a token exchange never waits on a list call.
import { ANNOTATION_POD_SLOT, LABEL_TASK, LABEL_TASK_UID, holdsGrant, type AgentTask, type PodFacts } from '../api/index.js';
import type { KubeCluster } from './cluster.js';
import type { PodObject } from './objects.js';


type Caches = Pick<KubeCluster, 'task' | 'managedServiceAccount' | 'pods' | 'podsOfTask'>;

/** A cached pod as the facts the webhook, the receipts and the controller decide on. */
export function podFacts(pod: PodObject): PodFacts {
  return {
    ...(pod.metadata.uid ? { uid: pod.metadata.uid } : {}),
    ...(pod.spec?.serviceAccountName ? { serviceAccountName: pod.spec.serviceAccountName } : {}),
    labels: pod.metadata.labels ?? {},
    annotations: pod.metadata.annotations ?? {},
    ...(pod.status?.phase ? { phase: pod.status.phase } : {}),
    terminating: pod.metadata.deletionTimestamp !== undefined && pod.metadata.deletionTimestamp !== null,
  };
}

/**
 * The maxPods slots a task's pods hold now, each by the claim it was admitted under (its
 * `taskgrant.io/slot` annotation) or else its name.
 */
export function heldSlots(cluster: Pick<Caches, 'podsOfTask'>, namespace: string, taskName: string, taskUid: string): string[] {
  return cluster
    .podsOfTask(namespace, taskName)
    .filter((p) => holdsGrant(podFacts(p), taskUid))
    .map((p) => p.metadata.annotations?.[ANNOTATION_POD_SLOT] ?? p.metadata.name);
}

/** Whether a ServiceAccount is taskgrant's, and whose task it is. */
export class ManagedServiceAccounts {
  constructor(private readonly cluster: Pick<Caches, 'managedServiceAccount'>) {}

  isManaged(namespace: string, name: string): boolean {
    return this.cluster.managedServiceAccount(namespace, name) !== undefined;
  }

  taskOf(namespace: string, name: string): string | undefined {
    return this.cluster.managedServiceAccount(namespace, name)?.metadata.labels?.[LABEL_TASK];
  }
}

/** The task a managed ServiceAccount belongs to: its `taskgrant.io/task` label, confirmed by uid. */
export class TaskOfServiceAccount {
  constructor(private readonly cluster: Pick<Caches, 'task' | 'managedServiceAccount'>) {}

  find(namespace: string, serviceAccount: string): AgentTask | undefined {
    const sa = this.cluster.managedServiceAccount(namespace, serviceAccount);
    const taskName = sa?.metadata.labels?.[LABEL_TASK];
    if (!sa || !taskName) return undefined;
    const task = this.cluster.task(namespace, taskName);
    // A recreated task of the same name owns a different ServiceAccount (the uid is in its name and label).
    if (!task?.metadata.uid || sa.metadata.labels?.[LABEL_TASK_UID] !== task.metadata.uid) return undefined;
    return task;
  }
}

/** Task pods from the pod informer cache (which holds only pods labelled `taskgrant.io/task`). */
export class TaskPods {
  constructor(private readonly cluster: Pick<Caches, 'pods'>) {}

  get(namespace: string, name: string): PodFacts | undefined {
    const pod = this.cluster.pods.get(namespace, name);
    return pod ? podFacts(pod) : undefined;
  }
}
