// The kubectl plugin against the real control plane and an in-process operator (with its
// admission webhook): run in-process for most cases, and once as a real executable, by path and
// through kubectl's plugin lookup.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type * as k8s from '@kubernetes/client-node';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { delimiter, dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { run } from '../src/cli/run.js';
import { createNamespace, eventually, tokenConfig, uniqueName } from './harness/kube.js';
import type { TestOperator } from './harness/operator.js';
import { startOperatorSuite } from './harness/suite.js';
import { repoRoot } from './harness/paths.js';
import { type TaskHelper, intentOf, readPods } from './harness/tasks.js';

const exec = promisify(execFile);

let admin: k8s.KubeConfig;
let tasks: TaskHelper;
let operator: TestOperator;
let ns: string;
let adminKubeconfig: string;
/** A kubeconfig (bearer token) for a person allowed to approve in `ns`, who did not create the tasks. */
let approver: { kubeconfig: string; username: string; token: string };

const readSecrets = { apiGroups: [''], resources: ['secrets'], verbs: ['get'] };

async function cli(kubeconfig: string, ...argv: string[]) {
  let stdout = '';
  let stderr = '';
  const code = await run(['--kubeconfig', kubeconfig, ...argv], { stdout: (s) => (stdout += s), stderr: (s) => (stderr += s) });
  return { code, stdout, stderr };
}

const asAdmin = (...argv: string[]) => cli(adminKubeconfig, ...argv);

/** A ServiceAccount with `rules` in `ns`, and a kubeconfig file holding a token for it. */
async function userKubeconfig(name: string, rules: k8s.V1PolicyRule[]) {
  await tasks.core.createNamespacedServiceAccount({ namespace: ns, body: { metadata: { name } } });
  await tasks.rbac.createNamespacedRole({ namespace: ns, body: { metadata: { name }, rules } });
  await tasks.rbac.createNamespacedRoleBinding({
    namespace: ns,
    body: { metadata: { name }, roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name }, subjects: [{ kind: 'ServiceAccount', name, namespace: ns }] },
  });
  const token = (await tasks.core.createNamespacedServiceAccountToken({ name, namespace: ns, body: { spec: { audiences: [], expirationSeconds: 3600 } } })).status?.token ?? '';
  const dir = await mkdtemp(join(tmpdir(), 'tg-cli-'));
  const kubeconfig = join(dir, 'kubeconfig');
  await writeFile(kubeconfig, tokenConfig(admin, token).exportConfig(), { mode: 0o600 });
  return { kubeconfig, username: `system:serviceaccount:${ns}:${name}`, token };
}

beforeAll(async () => {
  adminKubeconfig = process.env.TASKGRANT_TEST_KUBECONFIG ?? '';
  ({ admin, tasks, operator, namespaces: [ns] } = await startOperatorSuite(['cli']));
  approver = await userKubeconfig('erin', [
    { apiGroups: ['taskgrant.io'], resources: ['agenttasks'], verbs: ['get', 'list', 'approve'] },
    { apiGroups: ['taskgrant.io'], resources: ['taskapprovals'], verbs: ['create', 'get', 'list'] },
  ]);
});

afterAll(async () => {
  await operator?.stop();
});

describe('list', () => {
  it('shows a granted task with its remaining TTL and permissions, and -o json parses', async () => {
    const name = uniqueName('list');
    await tasks.create(ns, name, { intent: intentOf(readPods, { apiGroups: [''], resources: ['pods/log'], verbs: ['get'] }) });
    await tasks.waitForPhase(ns, name, 'Granted');

    const table = await asAdmin('list', '-n', ns);
    expect(table.code).toBe(0);
    const lines = table.stdout.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^NAME\s+AGENT\s+PHASE\s+REMAINING\s+PERMISSIONS\s+REASON\s+AGE$/);
    const row = lines.find((l) => l.startsWith(`${name} `));
    expect(row).toMatch(new RegExp(`^${name}\\s+log-summarizer\\s+Granted\\s+(14m\\d+s|15m)\\s+get,list pods; get pods/log\\s+PolicyAllowed\\s+\\d+s$`));
    // Columns line up: PHASE starts where its header does.
    expect(row?.indexOf('Granted')).toBe(lines[0]?.indexOf('PHASE'));

    const all = await asAdmin('list', '-A');
    expect(all.stdout.split('\n')[0]).toMatch(/^NAMESPACE\s+NAME\s+AGENT/);
    expect(all.stdout).toMatch(new RegExp(`^${ns}\\s+${name}\\s+log-summarizer\\s+Granted`, 'm'));

    const json = await asAdmin('list', '-n', ns, '-o', 'json');
    expect(json.code).toBe(0);
    const list = JSON.parse(json.stdout) as { kind: string; items: Array<{ metadata: { name: string }; status?: { phase?: string } }> };
    expect(list.kind).toBe('List');
    expect(list.items.find((t) => t.metadata.name === name)?.status?.phase).toBe('Granted');
  });

  it('says so on stderr when a namespace has no tasks', async () => {
    const empty = await createNamespace(admin, 'cli-empty');
    const r = await asAdmin('list', '-n', empty);
    expect(r).toEqual({ code: 0, stdout: '', stderr: `No resources found in ${empty} namespace.\n` });
  });
});

describe('explain', () => {
  it('shows intent, the decision with the Cedar text of its policy, the grant objects and a timeline', async () => {
    const name = uniqueName('explain');
    await tasks.create(ns, name, { intent: intentOf(readPods) });
    const task = await tasks.waitForPhase(ns, name, 'Granted');
    const grant = task.status?.grant;

    // Events are written just after the status; wait until the timeline has the grant in it.
    const r = await eventually(async () => {
      const out = await asAdmin('explain', name, '-n', ns, '--operator-namespace', operator.config.namespace);
      return out.stdout.includes('PolicyAllowed   ') ? out : undefined;
    }, 'the Granted event in the timeline');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^Name:\s+/);
    expect(r.stdout).toMatch(/Objective:\s+Summarize error logs for INC-1234/);
    expect(r.stdout).toMatch(/Requester:\n\s+User:\s+\S+/);
    expect(r.stdout).toMatch(/Phase:\s+Granted \(PolicyAllowed\)/);
    // The harness runs the webhook mode and, on its API server, the request-time authorizer.
    expect(r.stdout).toMatch(/Enforcement:\s+task pods admitted by the webhook; every request decided by taskgrant, then RBAC/);
    expect(r.stdout).toMatch(/Allowed:\s+true/);
    expect(r.stdout).toMatch(/permit-read-own-namespace\s+\(file:.*baseline\.cedar\)/);
    expect(r.stdout).toContain('@id("permit-read-own-namespace")');
    expect(r.stdout).toContain('context.ttlSeconds <= 3600');
    expect(r.stdout).toMatch(new RegExp(`ServiceAccount\\s+${ns}\\s+${grant?.serviceAccount}`));
    expect(r.stdout).toMatch(new RegExp(`Role\\s+${ns}\\s+${grant?.role}\\s+get,list pods`));
    expect(r.stdout).toMatch(new RegExp(`RoleBinding\\s+${ns}\\s+${grant?.roleBinding}`));
    expect(r.stdout).toMatch(/Expires:\s+\S+ \(in (14m\d+s|15m)\)/);
    expect(r.stdout).toMatch(/Timeline:\n\s+TIME\s+TYPE\s+REASON\s+MESSAGE\n[^\n]*Normal\s+PolicyAllowed/);
    expect(r.stderr).toBe('');

    const json = await asAdmin('explain', name, '-n', ns, '-o', 'json', '--operator-namespace', operator.config.namespace);
    const report = JSON.parse(json.stdout) as {
      decision: { determiningPolicies: Array<{ id: string; text?: string }> };
      grantObjects: Array<{ kind: string; name: string }>;
      timeline: Array<{ reason: string }>;
    };
    expect(report.decision.determiningPolicies).toEqual([expect.objectContaining({ id: 'permit-read-own-namespace', text: expect.stringContaining('permit (') })]);
    expect(report.grantObjects.map((o) => o.kind).sort()).toEqual(['Role', 'RoleBinding', 'ServiceAccount']);
    expect(report.timeline.map((e) => e.reason)).toContain('PolicyAllowed');

    const yaml = await asAdmin('explain', name, '-n', ns, '-o', 'yaml', '--operator-namespace', operator.config.namespace);
    expect(yaml.stdout).toMatch(/^task:\n {2}namespace: /);
  });

  it('shows the text of a determining policy that lives in a labelled ConfigMap', async () => {
    const id = 'permit-cli-test-configmap-writes';
    await tasks.core.createNamespacedConfigMap({
      namespace: operator.config.namespace,
      body: {
        metadata: { name: 'cli-extra', labels: { 'taskgrant.io/policy': 'true' } },
        data: { 'writes.cedar': `// Lets agents of the CLI test namespace write ConfigMaps.\n@id("${id}")\npermit (principal, action == Action::"create", resource)\nwhen { resource.resource == "configmaps" && resource.namespace == "${ns}" };\n` },
      },
    });
    await eventually(async () => operator.engine.policyIds().includes(id), 'the ConfigMap policy to load');
    const name = uniqueName('cm');
    await tasks.create(ns, name, { intent: intentOf({ apiGroups: [''], resources: ['configmaps'], verbs: ['create'] }) });
    await tasks.waitForPhase(ns, name, 'Granted');
    const r = await asAdmin('explain', name, '-n', ns, '--operator-namespace', operator.config.namespace);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`${id}  (configmap:${operator.config.namespace}/cli-extra#writes.cedar)`);
    expect(r.stdout).toContain('Lets agents of the CLI test namespace write ConfigMaps.');
    expect(r.stdout).toContain(`Policy text from: `);
    expect(r.stdout).toContain(`configmaps ${operator.config.namespace}/cli-extra`);
  });
});

describe('approve, deny, revoke', () => {
  it('approve moves an AwaitingApproval task to Granted, stamped with the approver', async () => {
    const name = uniqueName('approve');
    const created = await tasks.create(ns, name, { intent: intentOf(readSecrets) });
    await tasks.waitForPhase(ns, name, 'AwaitingApproval');

    const r = await cli(approver.kubeconfig, 'approve', name, '-n', ns, '--reason', 'on-call approved INC-1234', '--uid', created.metadata.uid ?? '');
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(new RegExp(`^taskapproval\\.taskgrant\\.io/${name}-approve-[a-z0-9]{5} created: Approve agenttask ${ns}/${name} \\(uid ${created.metadata.uid}\\): "on-call approved INC-1234"\\n$`));
    expect(r.stdout).not.toContain(approver.token);

    const granted = await tasks.waitForPhase(ns, name, 'Granted');
    expect(granted.status?.approval).toMatchObject({ username: approver.username, reason: 'on-call approved INC-1234' });

    const explained = await asAdmin('explain', name, '-n', ns, '--operator-namespace', operator.config.namespace);
    expect(explained.stdout).toMatch(new RegExp(`${name}-approve-[a-z0-9]{5}\\s+Approve\\s+${approver.username.replace(/[.]/g, '\\.')}\\s+on-call approved INC-1234\\s+matches`));
    expect(explained.stdout).toContain('permit-approved');
  });

  it('approve by the task\'s own requester is refused by the admission webhook, with its message', async () => {
    const name = uniqueName('self');
    const own = await tasks.create(ns, name, { intent: intentOf(readSecrets) });
    await tasks.waitForPhase(ns, name, 'AwaitingApproval');
    const r = await asAdmin('approve', name, '-n', ns, '--reason', 'approving my own task', '--uid', own.metadata.uid ?? '');
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^Error: admission webhook .*cannot approve it[^\n]*\n$/);
  });

  it('approve refuses a task that is already granted, pointing at revoke', async () => {
    const name = uniqueName('late');
    await tasks.create(ns, name, { intent: intentOf(readPods) });
    await tasks.waitForPhase(ns, name, 'Granted');
    const r = await cli(approver.kubeconfig, 'approve', name, '-n', ns, '--reason', 'too late');
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(`Error: agenttask "${name}" in namespace "${ns}" is Granted: approvals only decide Pending or AwaitingApproval tasks; to end its grant use "kubectl taskgrant revoke"\n`);
  });

  it('deny moves an AwaitingApproval task to Denied', async () => {
    const name = uniqueName('deny');
    const task = await tasks.create(ns, name, { intent: intentOf(readSecrets) });
    await tasks.waitForPhase(ns, name, 'AwaitingApproval');
    const r = await cli(approver.kubeconfig, 'deny', name, '-n', ns, '--reason', 'no secrets for this agent', '--uid', task.metadata.uid ?? '');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`created: Deny agenttask ${ns}/${name}`);
    const denied = await tasks.waitForPhase(ns, name, 'Denied');
    expect(denied.status?.reason).toBe('ApprovalDenied');
    expect(denied.status?.message).toContain('no secrets for this agent');
  });

  it('approve lands on the task the approver reviewed, never on one recreated under its name (audit finding 6)', async () => {
    const name = uniqueName('swap');
    const reviewed = await tasks.create(ns, name, { intent: intentOf(readSecrets) });
    await tasks.waitForPhase(ns, name, 'AwaitingApproval');
    await tasks.delete(ns, name);
    await eventually(async () => (await tasks.get(ns, name)) === undefined, 'the reviewed task to be gone');
    const swapped = await tasks.create(ns, name, { intent: intentOf({ apiGroups: [''], resources: ['secrets'], verbs: ['get', 'list'] }) });
    await tasks.waitForPhase(ns, name, 'AwaitingApproval');

    const stale = await cli(approver.kubeconfig, 'approve', name, '-n', ns, '--reason', 'looked fine', '--uid', reviewed.metadata.uid ?? '');
    expect(stale.code).toBe(1);
    expect(stale.stderr).toBe(`Error: agenttask "${name}" in namespace "${ns}" is not the one you reviewed: its uid is now ${swapped.metadata.uid} (it was deleted and recreated); review it again with "kubectl taskgrant explain"\n`);
    // No terminal here to confirm on, and no --uid: refused rather than guessed.
    const blind = await cli(approver.kubeconfig, 'approve', name, '-n', ns, '--reason', 'looked fine');
    expect(blind.code).toBe(1);
    expect(blind.stderr).toMatch(/^Error: no terminal to confirm on: pass --uid <uid>/);
    const approvals = (await tasks.custom.listNamespacedCustomObject({ group: 'taskgrant.io', version: 'v1alpha1', namespace: ns, plural: 'taskapprovals' })) as { items: { spec: { task: string } }[] };
    expect(approvals.items.filter((a) => a.spec.task === name)).toEqual([]);
    expect((await tasks.get(ns, name))?.status?.phase).toBe('AwaitingApproval');

    // On a terminal: the task's permissions are shown, and only a yes writes the approval.
    const asked: string[] = [];
    let stderr = '';
    const answer = (yes: boolean) => ({ stdout: () => undefined, stderr: (t: string) => (stderr += t), confirm: async (q: string) => (asked.push(q), yes) });
    expect(await run(['--kubeconfig', approver.kubeconfig, 'approve', name, '-n', ns, '--reason', 'looked fine'], answer(false))).toBe(1);
    expect(stderr).toContain(`agenttask "${name}" in namespace "${ns}" (uid ${swapped.metadata.uid}), agent log-summarizer, asks for:\n  get,list core/secrets in ${ns}\n`);
    expect(stderr).toContain('Error: not approved: nothing was written');
    expect(await run(['--kubeconfig', approver.kubeconfig, 'approve', name, '-n', ns, '--reason', 'looked fine'], answer(true))).toBe(0);
    expect(asked).toEqual(['approve it?', 'approve it?']);
    await tasks.waitForPhase(ns, name, 'Granted');
  });

  it('revoke ends a grant: the task is Revoked and its objects are gone', async () => {
    const name = uniqueName('revoke');
    await tasks.create(ns, name, { intent: intentOf(readPods) });
    const task = await tasks.waitForPhase(ns, name, 'Granted');
    const r = await asAdmin('revoke', name, '-n', ns, '--reason', 'incident closed');
    expect(r).toEqual({ code: 0, stdout: `agenttask.taskgrant.io/${name} revocation requested: "incident closed"\n`, stderr: '' });
    const revoked = await tasks.waitForPhase(ns, name, 'Revoked');
    expect(revoked.status?.reason).toBe('Manual');
    expect(revoked.metadata.annotations?.['taskgrant.io/revoke']).toBe('incident closed');
    await eventually(async () => (await tasks.grantObjects(task.metadata.uid ?? '')).length === 0, 'grant objects to be deleted');

    const listed = await asAdmin('list', '-n', ns);
    expect(listed.stdout).toMatch(new RegExp(`^${name}\\s+log-summarizer\\s+Revoked\\s+-\\s+get,list pods\\s+Manual`, 'm'));
    // The timeline keeps the order things happened in, and the grant section says nothing is left.
    const explained = await eventually(async () => {
      const out = await asAdmin('explain', name, '-n', ns, '--operator-namespace', operator.config.namespace);
      return /Warning\s+Manual/.test(out.stdout) ? out : undefined;
    }, 'the revocation event');
    expect(explained.stdout.indexOf('PolicyAllowed   ')).toBeLessThan(explained.stdout.search(/Warning\s+Manual/));
    expect(explained.stdout).toContain('no ServiceAccount, Role or RoleBinding of this task exists');
    expect(explained.stdout).toContain('Revoke requested:  "incident closed"');

    const again = await asAdmin('revoke', name, '-n', ns, '--reason', 'twice');
    expect(again).toEqual({ code: 0, stdout: '', stderr: `agenttask "${name}" in namespace "${ns}" is already Revoked; nothing to revoke\n` });
  });
});

describe('errors', () => {
  it.each([['explain'], ['approve', '--reason', 'x'], ['deny', '--reason', 'x'], ['revoke', '--reason', 'x']])('%s on a missing task exits 1 with one line', async (...args) => {
    const [verb, ...rest] = args;
    const r = await asAdmin(verb ?? '', 'no-such-task', '-n', ns, ...rest);
    expect(r).toEqual({ code: 1, stdout: '', stderr: `Error: agenttask "no-such-task" not found in namespace "${ns}"\n` });
  });

  it('passes on what the API server says when the caller may not read tasks', async () => {
    const nobody = await userKubeconfig('nobody', []);
    const r = await cli(nobody.kubeconfig, 'list', '-n', ns);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(`Error: agenttasks.taskgrant.io is forbidden: User "${nobody.username}" cannot list resource "agenttasks" in API group "taskgrant.io" in the namespace "${ns}"\n`);
  });
});

describe('the executable', () => {
  const root = repoRoot();
  const shim = join(root, 'bin', 'kubectl-taskgrant');
  // The shim runs the compiled CLI: `npx tsc -p tsconfig.build.json` must have run (as it does
  // before every integration run, for the harness).
  const env = { ...process.env, PATH: [join(root, 'bin'), dirname(process.execPath), process.env.PATH ?? ''].join(delimiter) };

  it('bin/kubectl-taskgrant runs the built CLI: --help, and a list against the cluster', async () => {
    expect(existsSync(join(root, 'dist', 'src', 'cli', 'main.js'))).toBe(true);
    const help = await exec(shim, ['--help'], { env });
    expect(help.stdout).toMatch(/^Usage: kubectl taskgrant/);
    for (const command of ['list', 'explain', 'approve', 'deny', 'revoke', 'check']) expect(help.stdout).toContain(`  ${command}`);

    const name = uniqueName('shim');
    await tasks.create(ns, name, { intent: intentOf(readPods) });
    await tasks.waitForPhase(ns, name, 'Granted');
    const listed = await exec(shim, ['list', '-n', ns, '--kubeconfig', adminKubeconfig], { env });
    expect(listed.stdout).toMatch(new RegExp(`^${name}\\s+log-summarizer\\s+Granted`, 'm'));

    const missing = await exec(shim, ['explain', 'no-such-task', '-n', ns, '--kubeconfig', adminKubeconfig], { env }).catch((err: { code: number; stderr: string }) => err);
    expect(missing).toMatchObject({ code: 1, stderr: `Error: agenttask "no-such-task" not found in namespace "${ns}"\n` });
  });

  it('`kubectl taskgrant` finds the plugin on PATH (when kubectl is installed)', async () => {
    const kubectl = await exec('sh', ['-c', 'command -v kubectl'], { env }).then(
      (r) => r.stdout.trim(),
      () => '',
    );
    if (kubectl === '') {
      console.warn('kubectl is not installed: the plugin lookup through kubectl is not checked');
      return;
    }
    const help = await exec(kubectl, ['taskgrant', '--help'], { env });
    expect(help.stdout).toMatch(/^Usage: kubectl taskgrant/);
    const listed = await exec(kubectl, ['taskgrant', 'list', '-n', ns, '--kubeconfig', adminKubeconfig], { env });
    expect(listed.stdout.split('\n')[0]).toMatch(/^NAME\s+AGENT\s+PHASE\s+REMAINING/);
  });
});
