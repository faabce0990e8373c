// The README walkthrough's files, as written, on the real node: examples/agenttask.yaml with
// examples/task-pod.yaml, and examples/agenttask-job.yaml with examples/task-job.yaml. Only the
// namespace (one per suite) and the test node's toleration are added.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import * as k8s from '@kubernetes/client-node';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import type { AgentTask } from '../../src/api/index.js';
import { eventually } from '../harness/kube.js';
import { repoRoot } from '../harness/paths.js';
import { testNodeToleration } from '../harness/real-pods.js';
import { startOperatorSuite, type OperatorSuite } from '../harness/suite.js';

let suite: OperatorSuite<['walk']>;
let ns: string;

beforeAll(async () => {
  suite = await startOperatorSuite(['walk']);
  [ns] = suite.namespaces;
}, 120_000);

afterAll(async () => {
  await suite?.operator.stop();
});

function example<T>(file: string): T & { metadata: { name: string; namespace?: string } } {
  const object = parse(readFileSync(join(repoRoot(), 'examples', file), 'utf8')) as T & { metadata: { name: string; namespace?: string } };
  object.metadata.namespace = ns;
  return object;
}

async function applyTask(file: string): Promise<AgentTask> {
  const task = example<AgentTask>(file);
  await suite.tasks.custom.createNamespacedCustomObject({ group: 'taskgrant.io', version: 'v1alpha1', namespace: ns, plural: 'agenttasks', body: task });
  return suite.tasks.waitForPhase(ns, task.metadata.name, 'Granted', 30_000);
}

describe('the walkthrough examples', () => {
  it('examples/agenttask.yaml + examples/task-pod.yaml: the demo agent reports, the task completes', async () => {
    const task = await applyTask('agenttask.yaml');
    const pod = example<k8s.V1Pod>('task-pod.yaml');
    pod.spec = { ...pod.spec!, tolerations: [testNodeToleration] };
    await suite.tasks.core.createNamespacedPod({ namespace: ns, body: pod });
    const done = await suite.tasks.waitForPhase(ns, task.metadata.name, 'Completed', 90_000);
    expect(done.status?.reason).toBe('PodSucceeded');
    const log = await suite.tasks.core.readNamespacedPodLog({ namespace: ns, name: pod.metadata.name });
    expect(log).toContain(`whoami: system:serviceaccount:${ns}:${task.status?.grant?.serviceAccount}`);
    expect(log).toMatch(new RegExp(`^allowed: GET /api/v1/namespaces/${ns}/pods -> 200 OK$`, 'm'));
    expect(log).toMatch(new RegExp(`^forbidden: GET /api/v1/namespaces/${ns}/secrets -> 403 Forbidden$`, 'm'));
  });

  it('examples/agenttask-job.yaml + examples/task-job.yaml: the Job completes and so does the task', async () => {
    const task = await applyTask('agenttask-job.yaml');
    const job = example<k8s.V1Job>('task-job.yaml');
    const template = job.spec!.template;
    template.spec = { ...template.spec!, tolerations: [testNodeToleration] };
    // The example names its own namespace in the calls it makes; the suite runs in another one.
    for (const env of template.spec.containers[0]?.env ?? []) env.value = env.value?.replace('/namespaces/default/', `/namespaces/${ns}/`);
    const batch = suite.admin.makeApiClient(k8s.BatchV1Api);
    await batch.createNamespacedJob({ namespace: ns, body: job });
    const done = await suite.tasks.waitForPhase(ns, task.metadata.name, 'Completed', 90_000);
    expect(done.status?.reason).toBe('PodSucceeded');
    const pods = await eventually(async () => {
      const list = await suite.tasks.core.listNamespacedPod({ namespace: ns, labelSelector: `batch.kubernetes.io/job-name=${job.metadata.name}` });
      return list.items.length > 0 ? list.items : undefined;
    }, 'the Job pod');
    const log = await suite.tasks.core.readNamespacedPodLog({ namespace: ns, name: pods[0]?.metadata?.name ?? '' });
    expect(log).toMatch(new RegExp(`^allowed: GET /apis/apps/v1/namespaces/${ns}/deployments -> 200 OK$`, 'm'));
    expect(log).toMatch(new RegExp(`^forbidden: GET /api/v1/namespaces/${ns}/pods -> 403 Forbidden$`, 'm'));
  });
});
