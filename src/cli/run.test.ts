// The command line itself, without a cluster: help, usage errors, error messages and exit codes.
import { describe, expect, it } from '@jest/globals';
import { dns1123Subdomain } from '../api/index.js';
import { approvalFor, approvalName } from './commands/approve.js';
import { sortEvents } from './commands/explain.js';
import { normalizeArgs, run } from './run.js';

async function cli(...argv: string[]) {
  let stdout = '';
  let stderr = '';
  const code = await run(argv, { stdout: (s) => (stdout += s), stderr: (s) => (stderr += s) });
  return { code, stdout, stderr };
}

describe('help and usage', () => {
  it.each([[['--help']], [['list', '--help']], [['explain', '-h']], [['help', 'check']]])('%j prints usage to stdout and exits 0', async (argv) => {
    const r = await cli(...argv);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^Usage: kubectl taskgrant/);
    expect(r.stderr).toBe('');
  });

  it('shows the global kubectl flags in every subcommand help', async () => {
    const r = await cli('approve', '--help');
    for (const flag of ['-n, --namespace', '-A, --all-namespaces', '-o, --output', '--kubeconfig', '--context', '--reason']) expect(r.stdout).toContain(flag);
  });

  it('refuses an unknown command with a suggestion, exit 2', async () => {
    const r = await cli('lst');
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^Error: unknown command 'lst'/);
    expect(r.stderr).toContain('list');
  });

  it('requires --reason for approve, deny and revoke', async () => {
    for (const verb of ['approve', 'deny', 'revoke']) {
      const r = await cli(verb, 'some-task');
      expect(r.code).toBe(2);
      expect(r.stderr).toContain("required option '--reason <reason>' not specified");
    }
  });

  it('refuses an output format it does not know', async () => {
    const r = await cli('list', '-o', 'wide');
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('Allowed choices are table, json, yaml');
  });

  it('refuses a task name that is not a DNS subdomain before contacting any cluster', async () => {
    const r = await cli('explain', 'Not/A/Name', '--kubeconfig', '/nonexistent');
    expect(r.code).toBe(2);
    expect(r.stderr).toBe('Error: "Not/A/Name" is not a valid AgentTask name (lowercase letters, digits, \'-\' and \'.\')\n');
  });
});

describe('errors', () => {
  it('prints one line with the cause, and no stack trace', async () => {
    const r = await cli('list', '--kubeconfig', '/nonexistent/kubeconfig');
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^Error: reading the kubeconfig \/nonexistent\/kubeconfig: ENOENT[^\n]*\n$/);
  });

  it('prints the stack and its causes with --v=debug', async () => {
    const r = await cli('list', '--kubeconfig', '/nonexistent/kubeconfig', '--v=debug');
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/reading the kubeconfig[\s\S]*\n\s+at [\s\S]*Caused by: [\s\S]*ENOENT/);
  });

  it('names the context that is missing from the kubeconfig', async () => {
    const { writeFile, mkdtemp } = await import('node:fs/promises');
    const { join } = await import('node:path');
    const { tmpdir } = await import('node:os');
    const dir = await mkdtemp(join(tmpdir(), 'tg-kc-'));
    const path = join(dir, 'config');
    await writeFile(
      path,
      'apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: "https://127.0.0.1:1"}}]\nusers: [{name: u, user: {}}]\ncontexts: [{name: x, context: {cluster: c, user: u}}]\ncurrent-context: x\n',
    );
    const r = await cli('list', '--kubeconfig', path, '--context', 'prod');
    expect(r.code).toBe(1);
    expect(r.stderr).toBe('Error: context "prod" not found in the kubeconfig\n');
    // The context exists but nothing listens there.
    const down = await cli('list', '--kubeconfig', path, '-n', 'team-a');
    expect(down.code).toBe(1);
    expect(down.stderr).toMatch(/^Error: cannot reach the Kubernetes API server: .*ECONNREFUSED 127\.0\.0\.1:1\n$/);
  });
});

describe('approval objects', () => {
  const task = {
    apiVersion: 'taskgrant.io/v1alpha1',
    kind: 'AgentTask' as const,
    metadata: { name: 'summarize', namespace: 'team-a', uid: 'uid-1' },
    spec: { agent: 'a', intent: { objective: 'o', permissions: [] } },
  };

  it('names the task, the decision and a random suffix, within the 253-character limit', () => {
    expect(approvalName('summarize', 'Approve', 'x7k2q')).toBe('summarize-approve-x7k2q');
    expect(approvalName('summarize', 'Deny')).toMatch(/^summarize-deny-[a-z0-9]{5}$/);
    const long = approvalName(`${'a'.repeat(240)}.b-c`, 'Approve');
    expect(long.length).toBeLessThanOrEqual(253);
    expect(dns1123Subdomain(long)).toBe(true);
    expect(approvalName('summarize', 'Approve')).not.toBe(approvalName('summarize', 'Approve'));
  });

  it('binds the approval to the uid read from the task', () => {
    expect(approvalFor(task, 'Approve', 'on-call ok', 'n')).toEqual({
      apiVersion: 'taskgrant.io/v1alpha1',
      kind: 'TaskApproval',
      metadata: { name: 'n', namespace: 'team-a' },
      spec: { task: 'summarize', taskUID: 'uid-1', decision: 'Approve', reason: 'on-call ok' },
    });
  });
});

describe('timeline order', () => {
  it('orders events by time, and events of the same second by resourceVersion', () => {
    const ev = (name: string, at: string, rv: string) => ({ metadata: { name, resourceVersion: rv }, lastTimestamp: at });
    const sorted = sortEvents([ev('c', '2025-06-01T12:00:02Z', '10'), ev('b', '2025-06-01T12:00:01Z', '9'), ev('a', '2025-06-01T12:00:01Z', '7')]);
    expect(sorted.map((e) => e.metadata.name)).toEqual(['a', 'b', 'c']);
  });
});

describe('kubectl flag habits', () => {
  it('accepts -x=value as kubectl does, leaving what follows -- alone', () => {
    expect(normalizeArgs(['list', '-n=team-a', '-o=json', '--context=x', '--', '-n=keep'])).toEqual(['list', '-n', 'team-a', '-o', 'json', '--context=x', '--', '-n=keep']);
  });

  it('applies -o=yaml to check', async () => {
    const r = await cli('check', '-o=yaml', '-f', '/nonexistent.yaml');
    expect(r.code).toBe(2);
    expect(r.stdout).toMatch(/^policyDir: \S*policies\n/);
  });
});
