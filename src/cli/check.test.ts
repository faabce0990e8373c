// `check` end to end in-process, on fixture files and the real default policies in policies/.
import { describe, expect, it } from '@jest/globals';
import { readdirSync, readFileSync } from 'node:fs';
import { copyFile, mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { run } from './run.js';

const here = dirname(fileURLToPath(import.meta.url));
const fixtures = join(here, 'fixtures');
const policies = join(here, '..', '..', 'policies');

async function check(args: string[], stdin?: string) {
  let stdout = '';
  let stderr = '';
  const code = await run(['check', '--policy-dir', policies, ...args], {
    stdout: (s) => (stdout += s),
    stderr: (s) => (stderr += s),
    ...(stdin !== undefined ? { readStdin: async () => stdin } : {}),
  });
  return { code, stdout, stderr };
}

const fixture = (name: string) => join(fixtures, name);

describe('kubectl taskgrant check', () => {
  it('exits 0 and prints ALLOW with the determining policy for a task the defaults allow', async () => {
    const r = await check(['-f', fixture('allowed.yaml')]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/team-a\/summarize-errors\s+ALLOW\s+permit-read-own-namespace/);
    expect(r.stdout).toContain(`1 task checked against ${defaultPolicyCount()} policies`);
    expect(r.stderr).toBe('');
  });

  it('exits 1 for a task that needs approval, and 0 for the same task with --approved', async () => {
    const r = await check(['-f', fixture('awaiting-approval.yaml')]);
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/team-a\/read-db-secret\s+APPROVAL REQUIRED\s+forbid-sensitive-resources-unapproved\s+get secrets "db" in team-a needs approval/);
    const approved = await check(['-f', fixture('awaiting-approval.yaml'), '--approved']);
    expect(approved.code).toBe(0);
    expect(approved.stdout).toMatch(/read-db-secret\s+ALLOW\s+permit-approved/);
  });

  it('exits 1 when one task of a multi-document file is denied, naming the forbid', async () => {
    const r = await check(['-f', fixture('denied.yaml')]);
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/team-a\/list-configmaps\s+ALLOW/);
    expect(r.stdout).toMatch(/team-a\/become-admin\s+DENY\s+forbid-escalation-verbs\s+impersonate users in team-a is not allowed/);
    // No approval lifts a guardrail.
    expect((await check(['-f', fixture('denied.yaml'), '--approved'])).code).toBe(1);
  });

  it('applies the rate limit from --recent-grants', async () => {
    const r = await check(['-f', fixture('allowed.yaml'), '--recent-grants', '20']);
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/DENY\s+forbid-grant-rate/);
    expect((await check(['-f', fixture('allowed.yaml'), '--recent-grants', 'many'])).code).toBe(2);
  });

  it('exits 2 on a file that is not valid YAML', async () => {
    const r = await check(['-f', fixture('malformed.yaml')]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^Error: .*malformed\.yaml: invalid YAML: /m);
    expect(r.stderr).not.toMatch(/\n\s+at /);
  });

  it('exits 2 on a task the CRD would refuse, and still reports the valid ones', async () => {
    const r = await check(['-f', fixture('invalid-task.yaml'), '-f', fixture('allowed.yaml')]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`invalid-task.yaml (agenttask "everything"): spec.intent.permissions[0].verbs must not contain '*'`);
    expect(r.stdout).toMatch(/summarize-errors\s+ALLOW/);
  });

  it('exits 2 on a missing file and on a file with no AgentTask in it', async () => {
    const missing = await check(['-f', fixture('nope.yaml')]);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/nope\.yaml: ENOENT/);
    const empty = await check(['-f', '-'], 'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n');
    expect(empty.code).toBe(2);
    expect(empty.stderr).toContain('no AgentTask found');
  });

  it('exits 2 when the policy directory does not exist', async () => {
    const r = await check(['-f', fixture('allowed.yaml'), '--policy-dir', join(fixtures, 'no-such-dir')]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^Error: the policies in .*no-such-dir failed to load: reading the Cedar schema/);
  });

  it('exits 2 when a policy in the directory does not validate against the schema', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'tg-policies-'));
    await copyFile(join(policies, 'schema.cedarschema'), join(dir, 'schema.cedarschema'));
    await copyFile(join(policies, 'baseline.cedar'), join(dir, 'baseline.cedar'));
    await writeFile(join(dir, 'typo.cedar'), '@id("typo")\npermit (principal, action, resource) when { context.aproved };\n');
    const r = await check(['-f', fixture('allowed.yaml'), '--policy-dir', dir]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/failed to load: .*aproved/);
    expect(r.stdout).toBe('');
  });

  it('reads stdin with -f -, defaults a missing namespace from -n, and prints JSON with -o json', async () => {
    const manifest = `kind: AgentTask\napiVersion: taskgrant.io/v1alpha1\nmetadata: {name: t}\nspec:\n  agent: a\n  intent:\n    objective: o\n    permissions: [{apiGroups: [""], resources: [pods], verbs: [get]}]\n`;
    const r = await check(['-f', '-', '-n', 'team-x', '-o', 'json'], manifest);
    expect(r.code).toBe(0);
    const report = JSON.parse(r.stdout) as { results: Array<{ namespace: string; result: string; permissions: Array<{ permission: string }> }>; errors: string[] };
    expect(report.errors).toEqual([]);
    expect(report.results).toMatchObject([{ namespace: 'team-x', result: 'allow', permissions: [{ permission: 'get pods in team-x' }] }]);
  });

  it('checks every manifest of a directory, skipping other kinds', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'tg-manifests-'));
    await copyFile(fixture('allowed.yaml'), join(dir, 'a.yaml'));
    await copyFile(fixture('awaiting-approval.yaml'), join(dir, 'b.yml'));
    await writeFile(join(dir, 'c.yaml'), 'apiVersion: v1\nkind: Namespace\nmetadata: {name: team-a}\n');
    await writeFile(join(dir, 'notes.txt'), 'not a manifest');
    const r = await check(['-f', dir]);
    expect(r.code).toBe(1);
    expect(r.stdout).toContain('2 tasks checked');
  });
});

/** Every @id in the default policy files: the number `check` reports loading. */
function defaultPolicyCount(): number {
  return readdirSync('policies')
    .filter((f) => f.endsWith('.cedar') && !f.endsWith('.runtime.cedar'))
    .reduce((n, f) => n + (readFileSync(join('policies', f), 'utf8').match(/^@id\(/gm) ?? []).length, 0);
}
