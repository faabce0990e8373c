// The Helm chart carries copies of files whose source of truth lives elsewhere in the repository
// (Helm can only read files inside the chart). A copy that drifts means the chart installs other
// CRDs, policies or identity guard than `make run` and the tests use: these tests fail first.
// `bash hack/sync-chart.sh` refreshes the copies.
import { describe, expect, it } from '@jest/globals';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';

const root = join(import.meta.dirname, '..', '..');
const chart = join(root, 'charts', 'taskgrant');
const bytes = (...path: string[]) => readFileSync(join(...path));
const kindOf = (path: string) => parseAllDocuments(readFileSync(path, 'utf8')).map((d) => (d.toJS() as { kind?: string } | null)?.kind);

describe('chart copies', () => {
  it('crds/ holds every CustomResourceDefinition of the top-level crds/, byte for byte, and nothing else', () => {
    const topLevel = readdirSync(join(root, 'crds')).filter((f) => f.endsWith('.yaml')).filter((f) => kindOf(join(root, 'crds', f)).every((k) => k === 'CustomResourceDefinition'));
    expect(topLevel.length).toBeGreaterThan(0);
    expect(readdirSync(join(chart, 'crds')).sort()).toEqual(topLevel.sort());
    for (const file of topLevel) expect({ file, same: bytes(chart, 'crds', file).equals(bytes(root, 'crds', file)) }).toEqual({ file, same: true });
  });

  it('files/identity-guard.yaml is crds/taskgrant.io_identity-guard.yaml', () => {
    expect(bytes(chart, 'files', 'identity-guard.yaml').equals(bytes(root, 'crds', 'taskgrant.io_identity-guard.yaml'))).toBe(true);
    expect(kindOf(join(root, 'crds', 'taskgrant.io_identity-guard.yaml'))).toEqual(['ValidatingAdmissionPolicy', 'ValidatingAdmissionPolicyBinding']);
  });

  it.each(['token-guard', 'status-guard', 'risk-guard'])('files/%s.yaml is crds/taskgrant.io_%s.yaml', (guard) => {
    expect(bytes(chart, 'files', `${guard}.yaml`).equals(bytes(root, 'crds', `taskgrant.io_${guard}.yaml`))).toBe(true);
    expect(kindOf(join(root, 'crds', `taskgrant.io_${guard}.yaml`))).toEqual(['ValidatingAdmissionPolicy', 'ValidatingAdmissionPolicyBinding']);
  });

  it('files/task-pods-policy.yaml is crds/policy-mode/taskgrant.io_task-pods.yaml', () => {
    expect(bytes(chart, 'files', 'task-pods-policy.yaml').equals(bytes(root, 'crds', 'policy-mode', 'taskgrant.io_task-pods.yaml'))).toBe(true);
    expect(kindOf(join(root, 'crds', 'policy-mode', 'taskgrant.io_task-pods.yaml'))).toEqual([
      'MutatingAdmissionPolicy',
      'MutatingAdmissionPolicyBinding',
      'ValidatingAdmissionPolicy',
      'ValidatingAdmissionPolicyBinding',
      'ValidatingAdmissionPolicy',
      'ValidatingAdmissionPolicyBinding',
    ]);
  });

  it('files/policies/ is the default policy set of policies/, byte for byte', () => {
    const defaults = readdirSync(join(root, 'policies')).filter((f) => f.endsWith('.cedar') || f.endsWith('.cedarschema'));
    expect(defaults).toContain('runtime.cedarschema');
    expect(defaults).toContain('schema.cedarschema');
    expect(readdirSync(join(chart, 'files', 'policies')).sort()).toEqual(defaults.sort());
    for (const file of defaults) expect({ file, same: bytes(chart, 'files', 'policies', file).equals(bytes(root, 'policies', file)) }).toEqual({ file, same: true });
  });
});
