// The tasks the benchmarks ask for: one typical AgentTask for the in-process parts, and the REST
// path and body of the tasks the cluster parts create.
import type { AgentTask } from '../src/api/index.js';

export function typicalTask(name = 'bench', namespace = 'team-a'): AgentTask {
  return {
    apiVersion: 'taskgrant.io/v1alpha1',
    kind: 'AgentTask',
    metadata: { name, namespace, uid: '6f0c7e2a-1111-4222-8333-444455556666' },
    spec: {
      agent: 'log-summarizer',
      intent: { objective: 'Summarize error logs for INC-1234', tools: ['kubectl-logs'], sensitivity: 'internal', permissions: [{ apiGroups: [''], resources: ['pods', 'pods/log'], verbs: ['get', 'list'] }] },
      ttl: '15m',
      maxPods: 1,
    },
  };
}

export const taskPath = (ns: string, name = '') => `/apis/taskgrant.io/v1alpha1/namespaces/${ns}/agenttasks${name ? `/${name}` : ''}`;
export const permissions = [{ apiGroups: [''], resources: ['pods', 'pods/log'], verbs: ['get', 'list'] }];
export const taskBody = (name: string, agent: string, extra: Record<string, unknown> = {}) => ({
  apiVersion: 'taskgrant.io/v1alpha1',
  kind: 'AgentTask',
  metadata: { name },
  spec: { agent, intent: { objective: 'benchmark task', tools: ['kubectl-logs'], permissions }, ...extra },
});
