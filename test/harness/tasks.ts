// Task-level helpers for integration suites: create tasks and task pods, wait for phases,
// mint real tokens for a task's ServiceAccount and use them.
import * as k8s from '@kubernetes/client-node';
import type { AgentTask, AgentTaskSpec, Phase } from '../../src/api/index.js';
import { eventually, statusOf, tokenConfig } from './kube.js';

const group = 'taskgrant.io';
const version = 'v1alpha1';

export class TaskHelper {
  readonly custom: k8s.CustomObjectsApi;
  readonly core: k8s.CoreV1Api;
  readonly rbac: k8s.RbacAuthorizationV1Api;
  readonly authn: k8s.AuthenticationV1Api;
  readonly admission: k8s.AdmissionregistrationV1Api;

  constructor(readonly admin: k8s.KubeConfig) {
    this.custom = admin.makeApiClient(k8s.CustomObjectsApi);
    this.core = admin.makeApiClient(k8s.CoreV1Api);
    this.rbac = admin.makeApiClient(k8s.RbacAuthorizationV1Api);
    this.authn = admin.makeApiClient(k8s.AuthenticationV1Api);
    this.admission = admin.makeApiClient(k8s.AdmissionregistrationV1Api);
  }

  async create(namespace: string, name: string, spec: Partial<AgentTaskSpec> & Pick<AgentTaskSpec, 'intent'>, annotations?: Record<string, string>): Promise<AgentTask> {
    const body = {
      apiVersion: `${group}/${version}`,
      kind: 'AgentTask',
      metadata: { name, namespace, ...(annotations ? { annotations } : {}) },
      spec: { agent: 'log-summarizer', ...spec },
    };
    return (await this.custom.createNamespacedCustomObject({ group, version, namespace, plural: 'agenttasks', body })) as AgentTask;
  }

  async get(namespace: string, name: string): Promise<AgentTask | undefined> {
    try {
      return (await this.custom.getNamespacedCustomObject({ group, version, namespace, plural: 'agenttasks', name })) as AgentTask;
    } catch (err) {
      if (statusOf(err) === 404) return undefined;
      throw err;
    }
  }

  async waitForPhase(namespace: string, name: string, phases: Phase | Phase[], timeoutMs = 15_000): Promise<AgentTask> {
    const wanted = Array.isArray(phases) ? phases : [phases];
    let last: AgentTask | undefined;
    try {
      return await eventually(
        async () => {
          last = await this.get(namespace, name);
          return last?.status?.phase && wanted.includes(last.status.phase) ? last : undefined;
        },
        `task ${namespace}/${name} to reach ${wanted.join('|')}`,
        timeoutMs,
      );
    } catch (err) {
      throw new Error(`task ${namespace}/${name} is ${last?.status?.phase ?? 'without status'} (${last?.status?.reason ?? ''}: ${last?.status?.message ?? ''}), wanted ${wanted.join('|')}`, { cause: err });
    }
  }

  async annotate(namespace: string, name: string, annotations: Record<string, string>): Promise<void> {
    await this.custom.patchNamespacedCustomObject(
      { group, version, namespace, plural: 'agenttasks', name, body: { metadata: { annotations } } },
      k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch),
    );
  }

  async delete(namespace: string, name: string): Promise<void> {
    await this.custom.deleteNamespacedCustomObject({ group, version, namespace, plural: 'agenttasks', name });
  }

  /**
   * The pod the admission webhook would have produced for this task: the task's ServiceAccount,
   * its label, and the task-uid annotation.
   */
  async createTaskPod(task: AgentTask, name: string, extraLabels: Record<string, string> = {}): Promise<k8s.V1Pod> {
    const sa = task.status?.grant?.serviceAccount;
    if (!sa) throw new Error('task has no ServiceAccount yet');
    return this.core.createNamespacedPod({
      namespace: task.metadata.namespace,
      body: {
        metadata: {
          name,
          labels: { 'taskgrant.io/task': task.metadata.name, ...extraLabels },
          annotations: { 'taskgrant.io/task-uid': task.metadata.uid ?? '' },
        },
        spec: { serviceAccountName: sa, automountServiceAccountToken: false, containers: [{ name: 'agent', image: 'registry.invalid/agent:1' }] },
      },
    });
  }

  /** No kubelet here: tests move a pod through its lifecycle by writing its status. */
  async setPodPhase(namespace: string, name: string, phase: 'Running' | 'Succeeded' | 'Failed'): Promise<void> {
    await this.core.patchNamespacedPodStatus(
      { name, namespace, body: { status: { phase } } },
      k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch),
    );
  }

  /** A real TokenRequest token for the task's ServiceAccount, bound to the task pod. */
  async mintPodToken(namespace: string, serviceAccount: string, pod: k8s.V1Pod): Promise<string> {
    const res = await this.core.createNamespacedServiceAccountToken({
      name: serviceAccount,
      namespace,
      body: { spec: { audiences: [], expirationSeconds: 600, boundObjectRef: { apiVersion: 'v1', kind: 'Pod', name: pod.metadata?.name ?? '', uid: pod.metadata?.uid ?? '' } } },
    });
    const token = res.status?.token;
    if (!token) throw new Error('no token returned');
    return token;
  }

  async tokenAuthenticates(token: string): Promise<boolean> {
    const review = await this.authn.createTokenReview({ body: { spec: { token } } });
    return review.status?.authenticated === true;
  }

  asToken(token: string): k8s.CoreV1Api {
    return tokenConfig(this.admin, token).makeApiClient(k8s.CoreV1Api);
  }

  /** Every ServiceAccount, Role and RoleBinding carrying this task's uid, across namespaces. */
  async grantObjects(taskUid: string): Promise<string[]> {
    const selector = `taskgrant.io/task-uid=${taskUid}`;
    const [sas, roles, bindings] = await Promise.all([
      this.core.listServiceAccountForAllNamespaces({ labelSelector: selector }),
      this.rbac.listRoleForAllNamespaces({ labelSelector: selector }),
      this.rbac.listRoleBindingForAllNamespaces({ labelSelector: selector }),
    ]);
    return [
      ...sas.items.map((o) => `ServiceAccount ${o.metadata?.namespace}/${o.metadata?.name}`),
      ...roles.items.map((o) => `Role ${o.metadata?.namespace}/${o.metadata?.name}`),
      ...bindings.items.map((o) => `RoleBinding ${o.metadata?.namespace}/${o.metadata?.name}`),
    ];
  }
}

export const readPods = { apiGroups: [''], resources: ['pods'], verbs: ['get', 'list'] };
export const intentOf = (...permissions: Array<Record<string, unknown>>) => ({
  objective: 'Summarize error logs for INC-1234',
  tools: ['kubectl-logs'],
  permissions: permissions as unknown as AgentTaskSpec['intent']['permissions'],
});
