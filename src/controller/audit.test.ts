// The audit trail: keyed Event names, a line that is always written, one Event per transition.
import { describe, expect, it } from '@jest/globals';
import type { AgentTask } from '../api/index.js';
import { createLogger } from '../telemetry/logger.js';
import { AuditTrail, auditEventName } from './audit.js';
import { FakeClock, FakeCluster, taskFixture } from './fakes.test-support.js';

const KEY = Buffer.alloc(32, 1);

function setup() {
  const lines: string[] = [];
  const cluster = new FakeCluster();
  const clock = new FakeClock();
  const audit = new AuditTrail(createLogger('info', { write: (line: string) => void lines.push(line) }), cluster, KEY, clock);
  const auditLines = () => lines.map((l) => JSON.parse(l) as { audit?: boolean; to?: string; msg: string }).filter((l) => l.audit);
  return { cluster, clock, audit, lines, auditLines };
}

const granted = (task: AgentTask, at: string): AgentTask => ({
  ...task,
  status: { phase: 'Granted', reason: 'PolicyAllowed', message: 'ok', conditions: [{ type: 'Ready', status: 'True', reason: 'PolicyAllowed', message: 'ok', lastTransitionTime: at }] },
});

describe('audit trail', () => {
  it('names Events with the key: nothing about the name can be told from the task alone (audit finding 8)', () => {
    const task = taskFixture('t');
    const name = auditEventName(task, 'Granted', KEY);
    expect(name).toMatch(/^t\.[0-9a-f]{24}$/);
    expect(name).not.toContain((task.metadata.uid ?? '').slice(0, 8));
    expect(auditEventName(task, 'Granted', Buffer.alloc(32, 2))).not.toBe(name);
    expect(auditEventName(task, 'Revoked', KEY)).not.toBe(name);
  });

  it('writes the audit line even when an Event under its name is not taskgrant\'s, and says so', async () => {
    const { cluster, audit, auditLines, lines } = setup();
    const task = taskFixture('t');
    cluster.eventNames.set(auditEventName(task, 'Granted', KEY), { uid: 'someone-else', ours: false });
    await audit.record({ task, from: 'Pending', status: { phase: 'Granted', reason: 'PolicyAllowed', message: 'ok' } });
    expect(auditLines().map((l) => l.to)).toEqual(['Granted']);
    expect(lines.join('')).toMatch(/not taskgrant's; the audit line is the record/);
  });

  it('after a restart, completes a transition left unaudited and repeats none that was recorded', async () => {
    const { cluster, clock, audit, auditLines } = setup();
    const at = new Date(clock.now()).toISOString();
    const recorded = granted(taskFixture('recorded'), at);
    const unaudited = granted(taskFixture('unaudited'), at);
    await cluster.recordEvent(recorded, 'Normal', 'PolicyAllowed', 'ok', auditEventName(recorded, 'Granted', KEY));
    await audit.ensureRecorded(recorded);
    await audit.ensureRecorded(unaudited);
    expect(auditLines().map((l) => l.to)).toEqual(['Granted']);
    expect(cluster.eventNames.get(auditEventName(unaudited, 'Granted', KEY))).toEqual({ uid: unaudited.metadata.uid, ours: true });
    // Asked once per transition: a second reconcile of the same phase writes nothing.
    await audit.ensureRecorded(unaudited);
    expect(auditLines()).toHaveLength(1);
  });
});
