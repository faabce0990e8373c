import { describe, expect, it } from '@jest/globals';
import type { AgentTask } from '../api/index.js';
import { buildRequests, tupleCount, type DecisionInput } from './request.js';

const task: AgentTask = {
  apiVersion: 'taskgrant.io/v1alpha1',
  kind: 'AgentTask',
  metadata: { name: 'summarize-errors', namespace: 'team-a' },
  spec: {
    agent: 'log-summarizer',
    ttl: '1h',
    requester: { username: 'alice' },
    intent: {
      objective: 'Summarize error logs for INC-1234',
      tools: ['kubectl-logs'],
      sensitivity: 'confidential',
      permissions: [
        { apiGroups: [''], resources: ['pods', 'pods/log'], verbs: ['get'] },
        { apiGroups: ['apps'], resources: ['deployments'], verbs: ['list'], resourceNames: ['web'], namespace: 'team-b' },
      ],
    },
  },
};
const input: DecisionInput = { task, approved: true, recentGrants: 3, recentGrantSeconds: 1800, delegationDepth: 1 };

describe('buildRequests', () => {
  it('builds one request per tuple with the contract ids and attributes', () => {
    const built = buildRequests(input);
    if (built.type !== 'requests') throw new Error(built.reason);
    expect(built.context).toEqual({
      objective: 'Summarize error logs for INC-1234',
      tools: ['kubectl-logs'],
      sensitivity: 'confidential',
      ttlSeconds: 3600,
      taskNamespace: 'team-a',
      delegationDepth: 1,
      approved: true,
      recentGrants: 3,
      recentGrantSeconds: 1800,
      risk: 'normal',
    });
    expect(built.requests.map((r) => [r.action.id, r.resource.id])).toEqual([
      ['get', 'team-a//pods/'],
      ['get', 'team-a//pods/log/'],
      ['list', 'team-b/apps/deployments/web'],
    ]);
    const last = built.requests[2]!;
    expect(last.principal).toEqual({ type: 'Agent', id: 'team-a/log-summarizer' });
    expect(last.entities).toEqual([
      { uid: { type: 'Agent', id: 'team-a/log-summarizer' }, attrs: { name: 'log-summarizer', namespace: 'team-a', requester: 'alice' } },
      { uid: { type: 'Resource', id: 'team-b/apps/deployments/web' }, attrs: { apiGroup: 'apps', resource: 'deployments', namespace: 'team-b', name: 'web' } },
    ]);
  });

  it('fills the defaults a task may omit', () => {
    const bare: AgentTask = { ...task, spec: { agent: 'a', intent: { objective: 'o', permissions: task.spec.intent.permissions } } };
    const built = buildRequests({ ...input, task: bare });
    if (built.type !== 'requests') throw new Error(built.reason);
    expect(built.context).toMatchObject({ tools: [], sensitivity: 'internal', ttlSeconds: 900 });
    expect(built.requests[0]?.entities[0]?.attrs.requester).toBe('');
  });

  it('rounds a fractional ttl up so it cannot slip under an integer limit', () => {
    const built = buildRequests({ ...input, task: { ...task, spec: { ...task.spec, ttl: '3600.2s' } } });
    expect(built.type === 'requests' && built.context.ttlSeconds).toBe(3601);
  });

  it('refuses input it cannot express faithfully', () => {
    expect(buildRequests({ ...input, task: { ...task, spec: { ...task.spec, ttl: '1y' } } })).toMatchObject({ type: 'invalid', reason: expect.stringContaining('spec.ttl') });
    expect(buildRequests({ ...input, recentGrants: 2 ** 60 })).toMatchObject({ type: 'invalid', reason: expect.stringContaining('recentGrants') });
  });

  it('counts tuples before expanding them', () => {
    expect(tupleCount(task)).toBe(3);
  });

  it("decides on the higher of the declared sensitivity and the namespaces' floor", () => {
    const context = (sensitivityFloor: string | undefined) => {
      const built = buildRequests({ ...input, ...(sensitivityFloor !== undefined ? { sensitivityFloor } : {}) });
      if (built.type !== 'requests') throw new Error(built.reason);
      return built.context['sensitivity'];
    };
    expect(context(undefined)).toBe('confidential');
    expect(context('public')).toBe('confidential');
    expect(context('restricted')).toBe('restricted');
    expect(context('not-a-level')).toBe('confidential');
  });
});
