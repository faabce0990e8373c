// The reconciler against in-memory fakes and the real default policies: revocation, retention and
// metrics (shared setup in reconciler.test-support.ts).
import { describe, expect, it } from '@jest/globals';
import { readFileSync } from 'node:fs';
import { PolicyEngine, readPolicyDir } from '../policy/index.js';
import { silentLogger } from '../telemetry/logger.js';
import { Metrics } from '../telemetry/metrics.js';
import { taskFixture } from './fakes.test-support.js';
import { approvedByAlice, engine, loadDefaultPolicies, setup, setupWith } from './reconciler.test-support.js';

loadDefaultPolicies();

describe('Reconciler: revocation', () => {
  it('expires at expiresAt: deletes binding, role, then account, writes Expired, drops the finalizer', async () => {
    const { cluster, run, clock, metrics } = setup();
    const granted = await run(cluster.put(taskFixture('ttl')));
    clock.ms = Date.parse(granted?.status?.grant?.expiresAt ?? '') + 100;
    cluster.writes.length = 0;
    const after = await run(cluster.task('team-a', 'ttl')!);
    // The terminal status with the binding's delete; the Role after the binding, the ServiceAccount last.
    expect(cluster.writes.slice(0, 2)).toEqual(expect.arrayContaining([expect.stringMatching(/^delete RoleBinding/), 'status Expired']));
    expect(cluster.writes.slice(2, 4)).toEqual([expect.stringMatching(/^delete Role /), expect.stringMatching(/^delete ServiceAccount/)]);
    expect(cluster.writes.slice(4)).toEqual(['finalizers []']);
    expect(after?.status?.reason).toBe('TTLExpired');
    expect((await metrics.revocations.get()).values.find((v) => v.labels.reason === 'TTLExpired')?.value).toBe(1);
  });

  it('in admission mode policy, sets the live label with the finalizer and removes both in one write', async () => {
    const { cluster, run, clock } = setupWith(engine, new Metrics(), 0, true);
    const granted = await run(cluster.put(taskFixture('labelled')));
    expect(cluster.writes.filter((w) => w.startsWith('finalizers') || w.startsWith('live'))).toEqual(['finalizers [taskgrant.io/revoke-grant] live label true']);
    expect(granted?.metadata.labels?.['taskgrant.io/live']).toBe('true');
    clock.ms = Date.parse(granted?.status?.grant?.expiresAt ?? '') + 100;
    cluster.writes.length = 0;
    const after = await run(cluster.task('team-a', 'labelled')!);
    expect(cluster.writes.filter((w) => w.startsWith('finalizers') || w.startsWith('live'))).toEqual(['finalizers [] live label false']);
    expect(after?.metadata.labels?.['taskgrant.io/live']).toBeUndefined();
  });

  it('keeps the finalizer when a delete beside the terminal status failed, and the retry removes the rest', async () => {
    const { cluster, run, clock } = setup();
    const granted = await run(cluster.put(taskFixture('half')));
    clock.ms = Date.parse(granted?.status?.grant?.expiresAt ?? '') + 100;
    cluster.failDeletesOf = 'ServiceAccount';
    await expect(run(cluster.task('team-a', 'half')!)).rejects.toThrow(/reconciling task team-a\/half/);
    const failed = cluster.task('team-a', 'half')!;
    expect(failed.status?.phase).toBe('Expired');
    expect(failed.metadata.finalizers).toEqual(['taskgrant.io/revoke-grant']);
    expect([...cluster.objects.values()].map((o) => o.kind)).toEqual(['ServiceAccount']);
    cluster.failDeletesOf = undefined;
    const after = await run(failed);
    expect(cluster.objects.size).toBe(0);
    expect(after?.metadata.finalizers ?? []).toEqual([]);
  });

  it('ends the task with its binding delete, but audits the end only once the binding is gone', async () => {
    const { cluster, run, clock } = setup();
    const granted = await run(cluster.put(taskFixture('bound')));
    clock.ms = Date.parse(granted?.status?.grant?.expiresAt ?? '') + 100;
    cluster.failDeletesOf = 'RoleBinding';
    await expect(run(cluster.task('team-a', 'bound')!)).rejects.toThrow(/reconciling task team-a\/bound/);
    const failed = cluster.task('team-a', 'bound')!;
    // The decision is recorded (the pod guard and the authorizer refuse on it)...
    expect(failed.status?.phase).toBe('Expired');
    // ...but not audited as an end while the binding stands, and nothing else is deleted before it.
    expect(cluster.events.map((e) => e.reason)).not.toContain('TTLExpired');
    expect([...cluster.objects.values()].map((o) => o.kind).sort()).toEqual(['Role', 'RoleBinding', 'ServiceAccount']);
    expect(failed.metadata.finalizers).toEqual(['taskgrant.io/revoke-grant']);
    // A retry that fails again does not audit it either.
    await expect(run(failed)).rejects.toThrow(/reconciling task team-a\/bound/);
    expect(cluster.events.map((e) => e.reason)).not.toContain('TTLExpired');
    cluster.failDeletesOf = undefined;
    const after = await run(failed);
    expect(cluster.objects.size).toBe(0);
    expect(cluster.events.map((e) => e.reason)).toContain('TTLExpired');
    expect(after?.metadata.finalizers ?? []).toEqual([]);
  });

  it('never leaves a terminal phase and removes anything found for a terminal task', async () => {
    const { cluster, run } = setup();
    const granted = await run(cluster.put(taskFixture('final')));
    const stuck = cluster.put({ ...granted!, status: { ...granted!.status, phase: 'Revoked', reason: 'Manual' } });
    const after = await run(stuck);
    expect(after?.status?.phase).toBe('Revoked');
    expect(cluster.objects.size).toBe(0);
  });

  it('revokes before releasing a deleted task', async () => {
    const { cluster, run } = setup();
    const granted = await run(cluster.put(taskFixture('bye')));
    cluster.put({ ...granted!, metadata: { ...granted!.metadata, deletionTimestamp: '2026-11-22T10:01:00Z' } });
    await run(cluster.task('team-a', 'bye')!);
    expect(cluster.objects.size).toBe(0);
    expect(cluster.task('team-a', 'bye')).toBeUndefined();
  });

  it('revokes, instead of recreating objects, when the namespace is being deleted', async () => {
    const { cluster, run } = setup();
    const granted = await run(cluster.put(taskFixture('ns-gone')));
    cluster.objects.clear(); // the namespace controller deleted them
    cluster.terminating = true;
    const after = await run(cluster.task('team-a', granted!.metadata.name)!);
    expect(after?.status?.phase).toBe('Revoked');
    expect(after?.status?.reason).toBe('NamespaceDeleted');
  });

  it('marks a task Failed with a reason when its spec is invalid', async () => {
    const { cluster, run } = setup();
    const after = await run(cluster.put(taskFixture('bad', { ttl: 'forever' })));
    expect(after?.status?.phase).toBe('Failed');
    expect(after?.status?.reason).toBe('InvalidSpec');
  });
});

describe('Reconciler: policy reloads', () => {
  it('re-decides a live task once under a new revision, writes nothing while it is still allowed, and revokes it when not', async () => {
    let revision = 'rev-1';
    let evaluations = 0;
    let allow = true;
    const policy = {
      ready: true,
      get revision() {
        return revision;
      },
      evaluate: (input: Parameters<typeof engine.evaluate>[0]) => {
        evaluations += 1;
        const decided = engine.evaluate(input);
        return allow ? { ...decided, revision } : { type: 'deny' as const, revision, reason: 'not any more', determiningPolicies: ['test'], errors: [], tuples: [], approvalWouldAllow: false };
      },
    };
    const { cluster, run } = setup(policy);
    const task = await run(cluster.put(taskFixture('reloaded')));
    expect(task?.status?.phase).toBe('Granted');
    revision = 'rev-2';
    const writes = cluster.writes.length;
    evaluations = 0;
    await run(cluster.task('team-a', 'reloaded')!);
    await run(cluster.task('team-a', 'reloaded')!);
    expect(evaluations).toBe(1); // re-decided once under rev-2, then remembered
    expect(cluster.writes.slice(writes)).toEqual([]);
    revision = 'rev-3';
    allow = false;
    const ended = await run(cluster.task('team-a', 'reloaded')!);
    expect(ended?.status?.phase).toBe('Revoked');
    expect(ended?.status?.reason).toBe('PolicyChanged');
  });
});

describe('Reconciler: retention', () => {
  it('deletes an ended task and its approvals once the retention period has passed, not before', async () => {
    const { cluster, run, clock, requeues, ledger } = setupWith(engine, new Metrics(), 60_000);
    const task = cluster.put(taskFixture('kept', { intent: { objective: 'x', permissions: [{ apiGroups: [''], resources: ['secrets'], verbs: ['get'] }] } }));
    cluster.approvals.push(approvedByAlice(task));
    await run(task);
    const granted = cluster.task('team-a', 'kept')!;
    cluster.put({ ...granted, metadata: { ...granted.metadata, annotations: { 'taskgrant.io/revoke': 'done' } } });
    expect((await run(cluster.task('team-a', 'kept')!))?.status?.phase).toBe('Revoked');
    // Within the period: kept, and looked at again when it ends.
    expect(await run(cluster.task('team-a', 'kept')!)).toBeDefined();
    expect(requeues.at(-1)).toEqual(['team-a/kept', 60_000]);
    clock.ms += 60_000;
    await run(cluster.task('team-a', 'kept')!);
    expect(cluster.task('team-a', 'kept')).toBeUndefined();
    expect(cluster.approvals).toEqual([]);
    // The agent's ledger keeps the grant: re-issuance limits do not reset with the task.
    expect((await ledger.entries('team-a', 'log-summarizer')).map((e) => e.uid)).toContain(task.metadata.uid);
  });

  it('keeps ended tasks for ever with retention 0, and never deletes a live one', async () => {
    const { cluster, run, clock } = setup();
    const task = cluster.put(taskFixture('forever'));
    await run(task);
    clock.ms += 365 * 24 * 3_600_000;
    const t = cluster.task('team-a', 'forever')!;
    expect((await run(t))?.status?.phase).toBe('Expired');
    expect(await run(cluster.task('team-a', 'forever')!)).toBeDefined();
  });
});

describe('Reconciler: metrics', () => {
  it('counts one policy evaluation per decision (the engine times it, not the reconciler too)', async () => {
    const metrics = new Metrics();
    const counted = new PolicyEngine({ schemaText: readFileSync('policies/schema.cedarschema', 'utf8'), logger: silentLogger(), metrics });
    expect(counted.load((await readPolicyDir('policies')).sources).type).toBe('loaded');
    const { cluster, run } = setupWith(counted, metrics);
    await run(cluster.put(taskFixture('counted')));
    const { values } = await metrics.policyEvaluationSeconds.get();
    expect(values.find((v) => v.metricName === 'taskgrant_policy_evaluation_seconds_count')?.value).toBe(1);
  });
});
