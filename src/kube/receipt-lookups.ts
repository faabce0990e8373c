// The cluster lookups the receipt endpoints need, over the operator's informer caches
// (structurally the webhook's TaskByServiceAccount and PodLookup; src/kube cannot import it).
import { LABEL_TASK, LABEL_TASK_UID, type AgentTask } from '../api/index.js';
import type { KubeCluster } from './cluster.js';

export interface TaskPodFacts {
  uid?: string;
  serviceAccountName?: string;
  labels: Record<string, string>;
  annotations: Record<string, string>;
  phase?: string;
  terminating: boolean;
}

type Caches = Pick<KubeCluster, 'task' | 'managedServiceAccount' | 'pods'>;

/** The task a managed ServiceAccount belongs to: its `taskgrant.io/task` label, confirmed by uid. */
export class TaskOfServiceAccount {
  constructor(private readonly cluster: Caches) {}

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
  constructor(private readonly cluster: Caches) {}

  get(namespace: string, name: string): TaskPodFacts | undefined {
    const pod = this.cluster.pods.get(namespace, name);
    if (!pod) return undefined;
    return {
      ...(pod.metadata.uid ? { uid: pod.metadata.uid } : {}),
      ...(pod.spec?.serviceAccountName ? { serviceAccountName: pod.spec.serviceAccountName } : {}),
      labels: pod.metadata.labels ?? {},
      annotations: pod.metadata.annotations ?? {},
      ...(pod.status?.phase ? { phase: pod.status.phase } : {}),
      terminating: pod.metadata.deletionTimestamp !== undefined && pod.metadata.deletionTimestamp !== null,
    };
  }
}
