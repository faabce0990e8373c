import { describe, expect, it } from '@jest/globals';
import type { AgentTask, Phase } from '../api/index.js';
import { listRows } from './commands/list.js';
import { formatRule, formatSpan, formatTable, printable, remainingTtl, summarizePermissions } from './format.js';

const NOW = Date.parse('2025-06-01T12:00:00Z');

function task(overrides: { name?: string; namespace?: string; phase?: Phase; expiresAt?: string; permissions?: AgentTask['spec']['intent']['permissions'] } = {}): AgentTask {
  const namespace = overrides.namespace ?? 'team-a';
  return {
    apiVersion: 'taskgrant.io/v1alpha1',
    kind: 'AgentTask',
    metadata: { name: overrides.name ?? 'summarize', namespace, creationTimestamp: new Date(NOW - 5 * 60_000).toISOString() },
    spec: {
      agent: 'log-summarizer',
      intent: {
        objective: 'Summarize error logs',
        permissions: overrides.permissions ?? [
          { apiGroups: [''], resources: ['pods'], verbs: ['get', 'list'] },
          { apiGroups: [''], resources: ['pods/log'], verbs: ['get'] },
        ],
      },
    },
    ...(overrides.phase
      ? {
          status: {
            phase: overrides.phase,
            reason: 'PolicyAllowed',
            ...(overrides.expiresAt ? { grant: { serviceAccount: 'sa', role: 'r', roleBinding: 'rb', issuedAt: new Date(NOW).toISOString(), expiresAt: overrides.expiresAt } } : {}),
          },
        }
      : {}),
  };
}

describe('formatTable', () => {
  it('aligns every column on the widest cell, three spaces apart, with no trailing spaces', () => {
    const out = formatTable(['NAME', 'PHASE', 'REASON'], [
      ['a', 'Granted', 'PolicyAllowed'],
      ['much-longer-name', 'Denied', ''],
    ]);
    expect(out).toBe(['NAME               PHASE     REASON', 'a                  Granted   PolicyAllowed', 'much-longer-name   Denied', ''].join('\n'));
    const lines = out.trimEnd().split('\n');
    // PHASE starts in the same column on every line.
    expect(new Set(lines.map((l) => l.indexOf(l.includes('Granted') ? 'Granted' : l.includes('Denied') ? 'Denied' : 'PHASE')))).toEqual(new Set([19]));
  });

  it('measures characters, not UTF-16 units, and keeps a cell with a newline on its row', () => {
    const out = formatTable(['A', 'B'], [
      ['😀x', '1'],
      ['line\nbreak', '2'],
    ]);
    expect(out.split('\n')).toEqual(['A            B', '😀x           1', 'line break   2', '']);
  });
});

describe('formatSpan', () => {
  it.each([
    [0, '0s'],
    [-5_000, '0s'],
    [45_400, '45s'],
    [60_000, '1m'],
    [(14 * 60 + 32) * 1000, '14m32s'],
    [3_600_000, '1h'],
    [(3 * 3600 + 5 * 60 + 59) * 1000, '3h5m'],
    [50 * 3_600_000, '2d2h'],
  ])('%d ms reads %s', (ms, text) => {
    expect(formatSpan(ms)).toBe(text);
  });
});

describe('remainingTtl', () => {
  const expiresAt = new Date(NOW + (14 * 60 + 32) * 1000).toISOString();

  it('counts down to status.grant.expiresAt while the grant is live', () => {
    expect(remainingTtl(task({ phase: 'Granted', expiresAt }), NOW)).toBe('14m32s');
    expect(remainingTtl(task({ phase: 'Active', expiresAt }), NOW + 32_000)).toBe('14m');
  });

  it('is "-" when no grant is live, even if an expiry was recorded', () => {
    expect(remainingTtl(task({ phase: 'Revoked', expiresAt }), NOW)).toBe('-');
    expect(remainingTtl(task({ phase: 'AwaitingApproval' }), NOW)).toBe('-');
    expect(remainingTtl(task(), NOW)).toBe('-');
  });

  it('reads 0s for a live grant past its expiry that the operator has not swept yet', () => {
    expect(remainingTtl(task({ phase: 'Granted', expiresAt }), NOW + 3_600_000)).toBe('0s');
  });
});

describe('permission summary', () => {
  it('puts each rule on one line: verbs, then resources', () => {
    expect(summarizePermissions(task())).toBe('get,list pods; get pods/log');
  });

  it('qualifies non-core groups, lists resource names, and names a foreign namespace', () => {
    expect(
      summarizePermissions(
        task({
          permissions: [
            { apiGroups: ['apps'], resources: ['deployments', 'deployments/scale'], verbs: ['patch'] },
            { apiGroups: [''], resources: ['secrets'], verbs: ['get'], resourceNames: ['db', 'api'] },
            { apiGroups: [''], resources: ['configmaps'], verbs: ['list'], namespace: 'team-b' },
            { apiGroups: [''], resources: ['services'], verbs: ['get'], namespace: 'team-a' },
          ],
        }),
      ),
    ).toBe('patch deployments.apps,deployments.apps/scale; get secrets(db,api); list configmaps in team-b; get services');
  });

  it('formats a Role rule without repeating its own namespace', () => {
    expect(formatRule({ apiGroups: [''], resources: ['pods'], verbs: ['get'] }, 'team-a')).toBe('get pods');
  });
});

describe('list rows', () => {
  it('sorts by namespace then name and adds NAMESPACE only for -A', () => {
    const tasks = [task({ name: 'b', namespace: 'team-b' }), task({ name: 'z', phase: 'Granted', expiresAt: new Date(NOW + 600_000).toISOString() }), task({ name: 'a', namespace: 'team-b' })];
    const rows = listRows(tasks, NOW, true);
    expect(rows.map((r) => `${r[0]}/${r[1]}`)).toEqual(['team-a/z', 'team-b/a', 'team-b/b']);
    expect(rows[0]).toEqual(['team-a', 'z', 'log-summarizer', 'Granted', '10m', 'get,list pods; get pods/log', 'PolicyAllowed', '5m']);
    expect(listRows(tasks, NOW, false)[1]).toEqual(['a', 'log-summarizer', '-', '-', 'get,list pods; get pods/log', '-', '5m']);
  });
});

describe('printable', () => {
  it('shows terminal escapes, invisible and bidi-override characters as \\u escapes, and keeps the rest', () => {
    expect(printable('get pods\u001b[2K\rsecrets')).toBe('get pods\\u001B[2K\\u000Dsecrets');
    expect(printable('\u202egpa\u200b')).toBe('\\u202Egpa\\u200B');
    expect(printable('line one\n\tline two — ünïcode 🚀')).toBe('line one\n\tline two — ünïcode 🚀');
  });
});
