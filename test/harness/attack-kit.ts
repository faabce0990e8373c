// Shared by the attack suites: a granted task, task pods, a working pod-bound token, and the
// check that a task holds nothing. Each suite passes its own cluster handles in.
import { expect } from '@jest/globals';
import type * as k8s from '@kubernetes/client-node';
import type { AgentTask } from '../../src/api/index.js';
import { eventually, statusOfCall, tokenConfig, uniqueName } from './kube.js';
import { type TaskHelper, intentOf, readPods } from './tasks.js';

export const group = 'taskgrant.io';
export const version = 'v1alpha1';
/** kube-apiserver's TokenSuccessCacheTTL: a deleted ServiceAccount's token may authenticate this long. */
export const API_SERVER_TOKEN_CACHE_MS = 10_000;

/** Every task gets its own agent: re-issuance limits count per agent, and these suites grant many. */
export const agentName = () => uniqueName('agent');

export function pod(name: string, labels: Record<string, string> = {}, spec: Partial<k8s.V1PodSpec> = {}, annotations: Record<string, string> = {}): k8s.V1Pod {
  return { metadata: { name, labels, annotations }, spec: { containers: [{ name: 'agent', image: 'registry.invalid/agent:1' }], ...spec } };
}

export interface AttackContext {
  admin: k8s.KubeConfig;
  tasks: TaskHelper;
  ns: string;
}

/** Helpers over the suite's handles, read when called (they are set in the suite's beforeAll). */
export function attackKit(ctx: () => AttackContext) {
  const createPod = (namespace: string, body: k8s.V1Pod) => ctx().tasks.core.createNamespacedPod({ namespace, body });
  const podExists = async (namespace: string, name: string) => (await statusOfCall(() => ctx().tasks.core.readNamespacedPod({ namespace, name }))) === 200;

  async function granted(name: string, spec: Partial<AgentTask['spec']> = {}): Promise<AgentTask> {
    const { tasks, ns } = ctx();
    await tasks.create(ns, name, { agent: agentName(), intent: intentOf(readPods), ...spec });
    return tasks.waitForPhase(ns, name, 'Granted');
  }

  /** A granted task whose pod the webhook admitted (from the label alone), and a working token bound to that pod. */
  async function admittedTaskToken(name: string, spec: Partial<AgentTask['spec']> = {}) {
    const { tasks, ns, admin } = ctx();
    const task = await granted(name, spec);
    const admitted = await createPod(ns, pod(`${name}-pod`, { 'taskgrant.io/task': name }));
    const serviceAccount = admitted.spec?.serviceAccountName ?? '';
    expect(serviceAccount).toBe(task.status?.grant?.serviceAccount);
    const token = await tasks.mintPodToken(ns, serviceAccount, admitted);
    const asTask = tasks.asToken(token);
    await eventually(async () => (await statusOfCall(() => asTask.listNamespacedPod({ namespace: ns }))) === 200, 'the task token to work');
    return { task, pod: admitted, serviceAccount, token, asTask, kc: tokenConfig(admin, token) };
  }

  async function expectNothingGranted(uid: string | undefined): Promise<void> {
    expect(await ctx().tasks.grantObjects(uid ?? '')).toEqual([]);
  }

  return { createPod, podExists, granted, admittedTaskToken, expectNothingGranted };
}
