// The chart as rendered: helm lint, helm template with default and non-default values (each
// output checked by the API server through a server-side dry run), and the values schema refusing
// bad values with a message that names them.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import * as k8s from '@kubernetes/client-node';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { loadConfig } from '../../src/config.js';
import { parseManifests } from '../../src/kube/manifests.js';
import { Metrics } from '../../src/telemetry/metrics.js';
import { WEBHOOK_ROUTES } from '../../src/webhook/index.js';
import { adminConfig, createNamespace } from '../harness/kube.js';
import { repoRoot } from '../harness/paths.js';
import { chartDir, find, helm, helmOk, render, serverDryRun, valuesFile, type Manifest } from './helm.js';

const RELEASE = 'tgrender';
const FULLNAME = 'tgrender-taskgrant';
const root = repoRoot();

/** Kinds whose CRDs (cert-manager, prometheus-operator) the local control plane does not have. */
const foreignGroups = ['cert-manager.io/', 'monitoring.coreos.com/'];
const foreign = (o: Manifest) => foreignGroups.some((g) => (o.apiVersion ?? '').startsWith(g));

interface Rule {
  apiGroups?: string[];
  resources?: string[];
  verbs: string[];
  resourceNames?: string[];
}
interface Webhook {
  name: string;
  clientConfig: { url?: string; service?: { name: string; namespace: string; path: string; port: number } };
  rules: Array<{ apiGroups: string[]; operations: string[]; resources: string[] }>;
  sideEffects: string;
  failurePolicy: string;
  timeoutSeconds: number;
  admissionReviewVersions: string[];
  namespaceSelector?: { matchExpressions: Array<{ key: string; operator: string; values: string[] }> };
  objectSelector?: { matchExpressions: Array<{ key: string; operator: string }> };
}

const rulesOf = (o: Manifest) => (o as unknown as { rules: Rule[] }).rules;
const webhooksOf = (o: Manifest) => (o as unknown as { webhooks: Webhook[] }).webhooks;

let admin: k8s.KubeConfig;
let ns: string;

beforeAll(async () => {
  admin = adminConfig();
  ns = await createNamespace(admin, 'tgrender');
});

afterAll(async () => {
  if (ns) await admin.makeApiClient(k8s.CoreV1Api).deleteNamespace({ name: ns });
});

describe('helm lint', () => {
  it('passes in strict mode', async () => {
    const result = await helm(['lint', chartDir, '--strict']);
    expect({ code: result.code, out: result.stdout + result.stderr }).toMatchObject({ code: 0 });
  });
});

describe('helm template with default values', () => {
  let objects: Manifest[];
  beforeAll(async () => {
    objects = await render(RELEASE, ns);
  });

  it('renders objects the API server accepts', async () => {
    expect(objects.filter(foreign)).toEqual([]);
    expect(await serverDryRun(admin, objects)).toEqual([]);
  });

  it('runs two hardened replicas with the operator flags, probes and resources', () => {
    const deployment = find(objects, 'Deployment', FULLNAME) as unknown as { spec: { replicas: number; template: { spec: k8s.V1PodSpec } } };
    expect(deployment.spec.replicas).toBe(2);
    const pod = deployment.spec.template.spec;
    const container = pod.containers[0]!;
    expect(container.args).toEqual([
      '--namespace=$(POD_NAMESPACE)',
      '--policy-dir=/etc/taskgrant/policies',
      '--health-host=0.0.0.0',
      '--health-port=8080',
      '--webhook-host=0.0.0.0',
      '--webhook-port=9443',
      '--leader-elect',
      '--lease-name=taskgrant-controller',
      '--log-level=info',
      '--reissue-window=1h',
      '--retention=24h',
      '--cert-mode=self-managed',
      '--tls-dir=/etc/taskgrant/tls',
      `--webhook-service=${FULLNAME}-webhook`,
      `--webhook-config-name=${FULLNAME}`,
      // helm template knows no API server: without MutatingAdmissionPolicy the webhook admits task pods.
      '--admission-mode=webhook',
    ]);
    expect(container.env).toContainEqual({ name: 'POD_NAMESPACE', valueFrom: { fieldRef: { fieldPath: 'metadata.namespace' } } });
    expect(container.livenessProbe?.httpGet).toMatchObject({ path: '/healthz', port: 'http' });
    expect(container.readinessProbe?.httpGet).toMatchObject({ path: '/readyz', port: 'http' });
    expect(container.ports).toEqual(expect.arrayContaining([expect.objectContaining({ name: 'http', containerPort: 8080 }), expect.objectContaining({ name: 'webhook', containerPort: 9443 })]));
    expect(container.resources?.requests).toBeDefined();
    expect(container.resources?.limits).toBeDefined();
    expect(pod.securityContext).toMatchObject({ runAsNonRoot: true, seccompProfile: { type: 'RuntimeDefault' } });
    expect(container.securityContext).toMatchObject({ allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: { drop: ['ALL'] } });
    expect(pod.automountServiceAccountToken).toBe(true);
    expect(pod.serviceAccountName).toBe(FULLNAME);
    expect(container.volumeMounts).toEqual(expect.arrayContaining([expect.objectContaining({ mountPath: '/tmp' }), expect.objectContaining({ mountPath: '/etc/taskgrant/policies', readOnly: true })]));
    expect(pod.volumes).toContainEqual({ name: 'policies', configMap: { name: `${FULLNAME}-policies` } });
  });

  it('puts the webhooks behind the Service, port 443 to 9443, plus metrics on 8080', () => {
    const service = find(objects, 'Service', `${FULLNAME}-webhook`) as unknown as { spec: k8s.V1ServiceSpec };
    expect(service.spec.ports).toEqual([
      { name: 'webhook', port: 443, targetPort: 'webhook', protocol: 'TCP' },
      { name: 'http-metrics', port: 8080, targetPort: 'http', protocol: 'TCP' },
    ]);
    for (const webhook of [...webhooksOf(find(objects, 'MutatingWebhookConfiguration', FULLNAME)), ...webhooksOf(find(objects, 'ValidatingWebhookConfiguration', FULLNAME))]) {
      expect(webhook.clientConfig.service).toMatchObject({ name: `${FULLNAME}-webhook`, namespace: ns, port: 443 });
    }
    expect(find(objects, 'PodDisruptionBudget', FULLNAME)).toMatchObject({ spec: { minAvailable: 1 } });
    expect(objects.filter((o) => o.kind === 'NetworkPolicy' || o.kind === 'ServiceMonitor')).toEqual([]);
  });

  it('registers exactly the webhook routes the operator serves, failing closed; pods never in its own namespace, tasks and approvals in every one', () => {
    const mutating = webhooksOf(find(objects, 'MutatingWebhookConfiguration', FULLNAME));
    const validating = webhooksOf(find(objects, 'ValidatingWebhookConfiguration', FULLNAME));
    const rendered = [...mutating.map((w) => ({ type: 'mutating', w })), ...validating.map((w) => ({ type: 'validating', w }))];
    expect(rendered.map((r) => r.w.name).sort()).toEqual(WEBHOOK_ROUTES.map((r) => `${r.handler}.taskgrant.io`).sort());
    for (const route of WEBHOOK_ROUTES) {
      const { type, w } = rendered.find((r) => r.w.name === `${route.handler}.taskgrant.io`)!;
      expect({ handler: route.handler, type, path: w.clientConfig.service?.path, sideEffects: w.sideEffects, rules: w.rules }).toEqual({
        handler: route.handler,
        type: route.type,
        path: route.path,
        sideEffects: route.sideEffects,
        rules: [{ apiGroups: [route.apiGroup], apiVersions: ['*'], operations: [...route.operations], resources: [route.resource], scope: 'Namespaced' }],
      });
      expect(w).toMatchObject({ failurePolicy: 'Fail', timeoutSeconds: 5, admissionReviewVersions: ['v1'] });
      // Pod webhooks see task pods only; the identity guard covers every other pod.
      const podRoute = route.resource === 'pods';
      // An AgentTask or TaskApproval no webhook saw would carry whatever requester or approver it was written with.
      expect(w.namespaceSelector?.matchExpressions).toEqual(podRoute ? [{ key: 'kubernetes.io/metadata.name', operator: 'NotIn', values: [ns, 'kube-system'] }] : undefined);
      expect(w.objectSelector).toEqual(podRoute ? { matchExpressions: [{ key: 'taskgrant.io/task', operator: 'Exists' }] } : undefined);
    }
  });

  it('carries the identity guard of crds/taskgrant.io_identity-guard.yaml, renamed for the release', () => {
    const plain = parseManifests(readFileSync(join(root, 'crds', 'taskgrant.io_identity-guard.yaml'), 'utf8')) as Manifest[];
    const policy = find(objects, 'ValidatingAdmissionPolicy', `${FULLNAME}-identity-guard`);
    const binding = find(objects, 'ValidatingAdmissionPolicyBinding', `${FULLNAME}-identity-guard`);
    expect(policy.spec).toEqual(find(plain, 'ValidatingAdmissionPolicy').spec);
    expect(binding.spec).toEqual({ ...find(plain, 'ValidatingAdmissionPolicyBinding').spec, policyName: `${FULLNAME}-identity-guard` });
  });

  it('lets only the release\'s ServiceAccount write AgentTask status (the status guard, parameterised by the release)', () => {
    const binding = find(objects, 'ValidatingAdmissionPolicyBinding', `${FULLNAME}-status-guard`) as Manifest & { spec: { paramRef: Record<string, string> } };
    expect(binding.spec.paramRef).toEqual({ name: `${FULLNAME}-status-writer`, namespace: ns, parameterNotFoundAction: 'Deny' });
    expect((find(objects, 'ConfigMap', `${FULLNAME}-status-writer`) as Manifest & { data: Record<string, string> }).data).toEqual({ operator: `system:serviceaccount:${ns}:${FULLNAME}` });
    const plain = parseManifests(readFileSync(join(root, 'crds', 'taskgrant.io_status-guard.yaml'), 'utf8')) as Manifest[];
    expect(find(objects, 'ValidatingAdmissionPolicy', `${FULLNAME}-status-guard`).spec).toEqual(find(plain, 'ValidatingAdmissionPolicy').spec);
  });

  it('mounts the default policies verbatim, unlabelled, and labels the policy settings for the operator to load', () => {
    const defaults = find(objects, 'ConfigMap', `${FULLNAME}-policies`) as Manifest & { data: Record<string, string> };
    const files = readdirSync(join(root, 'policies')).filter((f) => f.endsWith('.cedar') || f.endsWith('.cedarschema'));
    expect(Object.keys(defaults.data).sort()).toEqual(files.sort());
    for (const file of files) expect({ file, text: defaults.data[file] }).toEqual({ file, text: readFileSync(join(root, 'policies', file), 'utf8') });
    expect(defaults.metadata?.labels?.['taskgrant.io/policy']).toBeUndefined();

    const settings = find(objects, 'ConfigMap', `${FULLNAME}-policy-settings`) as Manifest & { data: Record<string, string> };
    expect(settings.metadata?.labels?.['taskgrant.io/policy']).toBe('true');
    expect(settings.data['chart-settings.cedar']).toMatch(/@id\("chart-max-ttl"\)\s*forbid \(principal, action, resource\)\s*when \{ context\.ttlSeconds > 14400 \};/);
    expect(settings.data['chart-settings.cedar']).toMatch(/@id\("chart-max-grants-per-window"\)\s*forbid \(principal, action, resource\)\s*when \{ context\.recentGrants >= 20 \};/);
    expect(objects.find((o) => o.metadata?.name === `${FULLNAME}-extra-policies`)).toBeUndefined();
  });

  it('never grants the operator a wildcard, escalate, impersonate or bind', () => {
    const roles = objects.filter((o) => o.kind === 'ClusterRole' || o.kind === 'Role');
    expect(roles.map((r) => `${r.kind}/${r.metadata?.name}`).sort()).toEqual([`ClusterRole/${FULLNAME}`, `ClusterRole/${FULLNAME}-grantable`, `Role/${FULLNAME}`]);
    for (const rule of roles.flatMap(rulesOf)) {
      expect([...(rule.apiGroups ?? []), ...(rule.resources ?? []), ...rule.verbs, ...(rule.resourceNames ?? [])].filter((v) => v.includes('*'))).toEqual([]);
      expect(rule.verbs.filter((v) => ['escalate', 'impersonate', 'bind'].includes(v))).toEqual([]);
    }
    // The default ceiling is read-only.
    expect(new Set(rulesOf(find(objects, 'ClusterRole', `${FULLNAME}-grantable`)).flatMap((r) => r.verbs))).toEqual(new Set(['get', 'list', 'watch']));
  });
});

const CLIENT_CA = '-----BEGIN CERTIFICATE-----\nMIIBfake\n-----END CERTIFICATE-----';

describe('helm template where the API server serves MutatingAdmissionPolicy (admissionMode policy)', () => {
  let objects: Manifest[];
  beforeAll(async () => {
    const out = await helmOk(['template', RELEASE, chartDir, '--namespace', ns, '--api-versions', 'admissionregistration.k8s.io/v1/MutatingAdmissionPolicy']);
    objects = parseManifests(out) as Manifest[];
  });

  it('admits task pods by policy: the pod policies of crds/policy-mode/, renamed for the release, and no pod webhooks', () => {
    const source = parseManifests(readFileSync(join(repoRoot(), 'crds', 'policy-mode', 'taskgrant.io_task-pods.yaml'), 'utf8'));
    for (const object of source) {
      const name = `${FULLNAME}-${(object.metadata?.name ?? '').replace(/^taskgrant-/, '')}`;
      const rendered = find(objects, object.kind ?? '', name) as Manifest & { spec: Record<string, unknown> };
      const expected = { ...(object as unknown as { spec: Record<string, unknown> }).spec, ...(object.kind?.endsWith('Binding') ? { policyName: name } : {}) };
      expect(rendered.spec).toEqual(expected);
    }
    const webhooks = [...webhooksOf(find(objects, 'MutatingWebhookConfiguration', FULLNAME)), ...webhooksOf(find(objects, 'ValidatingWebhookConfiguration', FULLNAME))];
    expect(webhooks.map((w) => w.name).sort()).toEqual(WEBHOOK_ROUTES.filter((r) => r.resource !== 'pods').map((r) => `${r.handler}.taskgrant.io`).sort());
    const deployment = find(objects, 'Deployment') as { spec: { template: { spec: { containers: Array<{ args: string[] }> } } } };
    expect(deployment.spec.template.spec.containers[0]?.args).toContain('--admission-mode=policy');
  });

  it('falls back to the webhook where the API server does not serve it (Kubernetes 1.35)', async () => {
    const older = parseManifests(await helmOk(['template', RELEASE, chartDir, '--namespace', ns])) as Manifest[];
    expect(older.some((o) => o.kind === 'MutatingAdmissionPolicy')).toBe(false);
    const deployment = find(older, 'Deployment') as { spec: { template: { spec: { containers: Array<{ args: string[] }> } } } };
    expect(deployment.spec.template.spec.containers[0]?.args).toContain('--admission-mode=webhook');
  });
});

describe('helm template with non-default values', () => {
  const custom = {
    certMode: 'cert-manager',
    webhook: { url: 'https://127.0.0.1:19443', excludedNamespaces: ['legacy'], clientCA: CLIENT_CA },
    replicaCount: 3,
    logLevel: 'debug',
    leaderElection: { leaseName: 'tg-leader' },
    policy: { reissueWindow: '30m', maxGrantsPerWindow: 5, maxTTL: '45m' },
    extraPolicies: {
      'team-a.cedar': '// team-a reads deployments\n@id("team-a-read-deployments")\npermit (principal, action == Action::"get", resource)\nwhen { principal.namespace == "team-a" && resource.resource == "deployments" };\n',
    },
    grantableCeiling: [
      { apiGroups: [''], resources: ['pods', 'pods/log'], verbs: ['get', 'list'] },
      { apiGroups: ['apps'], resources: ['deployments/scale'], verbs: ['get', 'update', 'patch'], resourceNames: ['web'] },
    ],
    bindableClusterRoles: ['view'],
    networkPolicy: { enabled: true },
    serviceMonitor: { enabled: true, labels: { release: 'prometheus' } },
    prometheusRule: { enabled: true, labels: { release: 'prometheus' } },
    grafanaDashboard: { enabled: true },
    authorization: { enabled: true, tlsSecret: 'taskgrant-authz-tls' },
  };
  let objects: Manifest[];
  beforeAll(async () => {
    objects = await render(RELEASE, ns, custom);
  });

  it('ships alerts and a dashboard that read only metrics the operator exports', async () => {
    const exported = new Set((await new Metrics().registry.getMetricsAsJSON()).map((m) => m.name));
    const named = (expr: string) => [...expr.matchAll(/taskgrant_[a-z_]+/g)].map((m) => m[0].replace(/_(bucket|sum|count)$/, ''));
    const rules = (find(objects, 'PrometheusRule') as { spec: { groups: Array<{ rules: Array<{ alert: string; expr: string; labels: { severity: string }; annotations: { summary: string } }> }> } }).spec.groups.flatMap((g) => g.rules);
    expect(rules.map((r) => r.alert)).toEqual(expect.arrayContaining(['TaskgrantRevocationSlow', 'TaskgrantReconcileFailing', 'TaskgrantGrantsFailing', 'TaskgrantWebhookErrors', 'TaskgrantPolicyReloadRefused', 'TaskgrantNoLeader', 'TaskgrantCertificateExpiring']));
    for (const rule of rules) {
      expect({ alert: rule.alert, unknown: named(rule.expr).filter((n) => !exported.has(n)) }).toEqual({ alert: rule.alert, unknown: [] });
      expect(['warning', 'critical']).toContain(rule.labels.severity);
      expect(rule.annotations.summary.length).toBeGreaterThan(0);
    }
    const dashboard = find(objects, 'ConfigMap', `${FULLNAME}-dashboard`) as { metadata: { labels: Record<string, string> }; data: Record<string, string> };
    expect(dashboard.metadata.labels['grafana_dashboard']).toBe('1');
    const panels = (JSON.parse(dashboard.data['taskgrant.json'] ?? '{}') as { panels: Array<{ title: string; targets: Array<{ expr: string }> }> }).panels;
    expect(panels.length).toBeGreaterThan(8);
    for (const panel of panels) for (const target of panel.targets) expect({ panel: panel.title, unknown: named(target.expr).filter((n) => !exported.has(n)) }).toEqual({ panel: panel.title, unknown: [] });
  });

  it('serves the request-time authorizer on its own port, with the TLS Secret the API server trusts', () => {
    const deployment = find(objects, 'Deployment') as { spec: { template: { spec: { containers: Array<{ args: string[]; ports: Array<{ name: string; containerPort: number }>; volumeMounts: Array<{ name: string; mountPath: string }> }>; volumes: Array<{ name: string; secret?: { secretName: string } }> } } } };
    const pod = deployment.spec.template.spec;
    const operator = pod.containers[0]!;
    expect(operator.args).toEqual(expect.arrayContaining(['--authorizer', '--authz-host=0.0.0.0', '--authz-port=9444', '--authz-tls-dir=/etc/taskgrant/authz-tls']));
    expect(operator.ports).toContainEqual({ name: 'authz', containerPort: 9444, protocol: 'TCP' });
    expect(operator.volumeMounts).toContainEqual(expect.objectContaining({ name: 'authz-tls', mountPath: '/etc/taskgrant/authz-tls' }));
    expect(pod.volumes).toContainEqual({ name: 'authz-tls', secret: { secretName: 'taskgrant-authz-tls' } });
    const service = find(objects, 'Service') as { spec: { ports: Array<{ name: string; port: number }> } };
    expect(service.spec.ports).toContainEqual(expect.objectContaining({ name: 'authz', port: 9444, targetPort: 'authz' }));
    // Each flag the chart passes is one the operator parses.
    expect(() => loadConfig(['node', 'taskgrant', ...operator.args], {})).not.toThrow();
  });

  it('mounts the API server client CA and points the operator at it', () => {
    expect(find(objects, 'ConfigMap', `${FULLNAME}-webhook-client-ca`)).toMatchObject({ data: { 'ca.crt': `${CLIENT_CA}\n` } });
    const deployment = find(objects, 'Deployment') as { spec: { template: { spec: { containers: Array<{ args: string[]; volumeMounts: Array<{ name: string; mountPath: string }> }> } } } };
    const operator = deployment.spec.template.spec.containers[0]!;
    expect(operator.args).toContain('--webhook-client-ca=/etc/taskgrant/webhook-client-ca/ca.crt');
    expect(operator.volumeMounts).toContainEqual(expect.objectContaining({ name: 'webhook-client-ca', mountPath: '/etc/taskgrant/webhook-client-ca' }));
  });

  it('renders cert-manager and ServiceMonitor objects, and everything else is accepted by the API server', async () => {
    expect(objects.filter(foreign).map((o) => o.kind).sort()).toEqual(['Certificate', 'Issuer', 'PrometheusRule', 'ServiceMonitor']);
    expect(find(objects, 'Certificate')).toMatchObject({ spec: { secretName: `${FULLNAME}-webhook-tls`, dnsNames: [`${FULLNAME}-webhook.${ns}.svc`, `${FULLNAME}-webhook.${ns}.svc.cluster.local`], issuerRef: { kind: 'Issuer', name: `${FULLNAME}-selfsigned` } } });
    expect(find(objects, 'ServiceMonitor')).toMatchObject({ metadata: { labels: { release: 'prometheus' } }, spec: { endpoints: [{ port: 'http-metrics', path: '/metrics' }] } });
    expect(await serverDryRun(admin, objects.filter((o) => !foreign(o)))).toEqual([]);
  });

  it('points the webhooks at webhook.url, with cert-manager injecting the CA', () => {
    for (const kind of ['MutatingWebhookConfiguration', 'ValidatingWebhookConfiguration']) {
      const config = find(objects, kind, FULLNAME);
      expect(config.metadata?.annotations).toEqual({ 'cert-manager.io/inject-ca-from': `${ns}/${FULLNAME}-webhook` });
      for (const w of webhooksOf(config)) {
        expect(w.clientConfig).toEqual({ url: `https://127.0.0.1:19443/${w.name.split('.')[0]!.replace('-', '/')}` });
        // The exclusions apply to the pod webhooks only.
        expect(w.namespaceSelector?.matchExpressions[0]!.values).toEqual(w.name.endsWith('-pods.taskgrant.io') ? [ns, 'kube-system', 'legacy'] : undefined);
      }
    }
  });

  it('mounts the cert-manager Secret and passes the values to the operator', () => {
    const deployment = find(objects, 'Deployment', FULLNAME) as unknown as { spec: { replicas: number; template: { spec: k8s.V1PodSpec } } };
    const pod = deployment.spec.template.spec;
    expect(deployment.spec.replicas).toBe(3);
    expect(pod.containers[0]!.args).toEqual(expect.arrayContaining(['--cert-mode=cert-manager', '--log-level=debug', '--reissue-window=30m', '--lease-name=tg-leader']));
    expect(pod.containers[0]!.volumeMounts).toContainEqual({ name: 'tls', mountPath: '/etc/taskgrant/tls', readOnly: true });
    expect(pod.volumes).toContainEqual({ name: 'tls', secret: { secretName: `${FULLNAME}-webhook-tls` } });
  });

  it('renders the custom ceiling and bindable ClusterRoles, and drops the webhook-configuration rule cert-manager makes unnecessary', () => {
    expect(rulesOf(find(objects, 'ClusterRole', `${FULLNAME}-grantable`))).toEqual([
      { apiGroups: [''], resources: ['pods', 'pods/log'], verbs: ['get', 'list'] },
      { apiGroups: ['apps'], resources: ['deployments/scale'], verbs: ['get', 'update', 'patch'], resourceNames: ['web'] },
      { apiGroups: ['rbac.authorization.k8s.io'], resources: ['clusterroles'], verbs: ['bind'], resourceNames: ['view'] },
    ]);
    expect(rulesOf(find(objects, 'ClusterRole', FULLNAME)).filter((r) => r.apiGroups?.includes('admissionregistration.k8s.io'))).toEqual([]);
    expect(rulesOf(find(objects, 'Role', FULLNAME))).toContainEqual({ apiGroups: ['coordination.k8s.io'], resources: ['leases'], resourceNames: ['tg-leader'], verbs: ['get', 'update'] });
  });

  it('renders the extra policies and the policy settings as labelled ConfigMaps', () => {
    const extra = find(objects, 'ConfigMap', `${FULLNAME}-extra-policies`) as Manifest & { data: Record<string, string> };
    expect(extra.metadata?.labels?.['taskgrant.io/policy']).toBe('true');
    expect(extra.data).toEqual(custom.extraPolicies);
    const settings = (find(objects, 'ConfigMap', `${FULLNAME}-policy-settings`) as Manifest & { data: Record<string, string> }).data['chart-settings.cedar'];
    expect(settings).toMatch(/context\.ttlSeconds > 2700 \}/);
    expect(settings).toMatch(/context\.recentGrants >= 5 \}/);
  });

  it('renders a NetworkPolicy admitting only the webhook, authorizer and metrics ports', () => {
    const policy = find(objects, 'NetworkPolicy', FULLNAME) as unknown as { spec: { policyTypes: string[]; ingress: Array<{ ports: Array<{ port: number }> }> } };
    expect(policy.spec.policyTypes).toEqual(['Ingress']);
    expect(policy.spec.ingress.flatMap((i) => i.ports.map((p) => p.port))).toEqual([9443, 9444, 8080]);
  });

  it('renders no PodDisruptionBudget for a single replica (it would block every drain)', async () => {
    const single = await render(RELEASE, ns, { replicaCount: 1 });
    expect(single.filter((o) => o.kind === 'PodDisruptionBudget')).toEqual([]);
  });
});

describe('values.schema.json', () => {
  const refused: Array<[string, Record<string, unknown>, RegExp]> = [
    ['an unknown certMode', { certMode: 'bogus' }, /at '\/certMode': value must be one of 'self-managed', 'cert-manager'/],
    ['an unknown log level', { logLevel: 'loud' }, /at '\/logLevel': value must be one of 'fatal', 'error', 'warn', 'info', 'debug', 'trace'/],
    ['a wildcard verb in the ceiling', { grantableCeiling: [{ apiGroups: [''], resources: ['pods'], verbs: ['*'] }] }, /at '\/grantableCeiling\/0\/verbs\/0': value must be one of 'get'/],
    ['a wildcard resource in the ceiling', { grantableCeiling: [{ apiGroups: [''], resources: ['*'], verbs: ['get'] }] }, /at '\/grantableCeiling\/0\/resources\/0': '\*' does not match pattern/],
    ['a wildcard subresource in the ceiling', { grantableCeiling: [{ apiGroups: [''], resources: ['pods/*'], verbs: ['get'] }] }, /at '\/grantableCeiling\/0\/resources\/0': 'pods\/\*' does not match pattern/],
    ['a wildcard apiGroup in the ceiling', { grantableCeiling: [{ apiGroups: ['*'], resources: ['pods'], verbs: ['get'] }] }, /at '\/grantableCeiling\/0\/apiGroups\/0': '\*' does not match pattern/],
    ['escalate in the ceiling', { grantableCeiling: [{ apiGroups: ['rbac.authorization.k8s.io'], resources: ['roles'], verbs: ['escalate'] }] }, /at '\/grantableCeiling\/0\/verbs\/0': value must be one of/],
    ['impersonate in the ceiling', { grantableCeiling: [{ apiGroups: [''], resources: ['users'], verbs: ['impersonate'] }] }, /at '\/grantableCeiling\/0\/verbs\/0': value must be one of/],
    ['bind in the ceiling', { grantableCeiling: [{ apiGroups: ['rbac.authorization.k8s.io'], resources: ['clusterroles'], verbs: ['bind'] }] }, /at '\/grantableCeiling\/0\/verbs\/0': value must be one of/],
    ['a ceiling rule without verbs', { grantableCeiling: [{ apiGroups: [''], resources: ['pods'] }] }, /at '\/grantableCeiling\/0': missing property 'verbs'/],
    ['a maxTTL in days', { policy: { reissueWindow: '1h', maxGrantsPerWindow: 20, maxTTL: '1d' } }, /at '\/policy\/maxTTL': '1d' does not match pattern/],
    ['a maxTTL over 24h', { policy: { reissueWindow: '1h', maxGrantsPerWindow: 20, maxTTL: '25h' } }, /at '\/policy\/maxTTL': '25h' does not match pattern/],
    ['a non-https webhook.url', { webhook: { url: 'http://127.0.0.1:9443' } }, /at '\/webhook\/url': 'http:\/\/127\.0\.0\.1:9443' does not match pattern/],
    ['a webhook.url with a path', { webhook: { url: 'https://127.0.0.1:9443/mutate' } }, /at '\/webhook\/url'/],
    // Helm's validator reports a propertyNames failure under an unrelated path; the name is right.
    ['an extra policy not named *.cedar', { extraPolicies: { 'team-a.txt': 'permit (principal, action, resource);' } }, /invalid propertyName 'team-a\.txt'[\s\S]*does not match pattern/],
    ['a replica count that is not a number', { replicaCount: 'two' }, /at '\/replicaCount': got string, want integer/],
    ['a misspelt value', { replicas: 2 }, /additional properties 'replicas' not allowed/],
    ['the authorizer without its TLS Secret', { authorization: { enabled: true } }, /at '\/authorization\/tlsSecret'|tlsSecret/],
  ];

  it.each(refused)('refuses %s, naming the value', async (_what, values, message) => {
    const result = await helm(['template', RELEASE, chartDir, '--namespace', ns, '-f', valuesFile(values)]);
    expect(result.code).not.toBe(0);
    expect(result.stderr).toMatch(/values don't meet the specifications of the schema/);
    expect(result.stderr).toMatch(message);
  });

  it('refuses the authorizer without webhook.clientCA: nobody else may spend a task\'s budget', async () => {
    const result = await helm(['template', RELEASE, chartDir, '--namespace', ns, '-f', valuesFile({ authorization: { enabled: true, tlsSecret: 'authz-tls' } })]);
    expect(result.code).not.toBe(0);
    expect(result.stderr).toMatch(/authorization.enabled needs webhook.clientCA/);
  });

  it('still refuses a wildcard in the ceiling when schema validation is skipped', async () => {
    const values = valuesFile({ grantableCeiling: [{ apiGroups: [''], resources: ['secrets'], verbs: ['*'] }] });
    const result = await helm(['template', RELEASE, chartDir, '--namespace', ns, '--skip-schema-validation', '-f', values]);
    expect(result.code).not.toBe(0);
    expect(result.stderr).toMatch(/grantableCeiling\[0\]\.verbs contains "\*": wildcards are never grantable/);
  });

  it('refuses a release whose ServiceAccount would look like a task identity (tg-*)', async () => {
    const result = await helm(['template', 'tg', chartDir, '--namespace', ns]);
    expect(result.code).not.toBe(0);
    expect(result.stderr).toMatch(/would start with "tg-" \(tg-taskgrant\), which taskgrant reserves for task ServiceAccounts/);
    await helmOk(['template', 'tg', chartDir, '--namespace', ns, '--set', 'fullnameOverride=taskgrant']);
  });

  it('renders the uninstall hook: the operator image and ServiceAccount revoke every live task, and wait', async () => {
    const objects = await render(RELEASE, ns);
    const hook = find(objects, 'Job') as Manifest & { spec: { template: { spec: k8s.V1PodSpec } } };
    expect(hook.metadata?.annotations?.['helm.sh/hook']).toBe('pre-delete');
    const pod = hook.spec.template.spec;
    expect(pod.serviceAccountName).toBe(find(objects, 'ServiceAccount').metadata?.name);
    expect([...(pod.containers[0]?.command ?? []), ...(pod.containers[0]?.args ?? [])]).toEqual(['node', 'dist/src/cli/main.js', 'revoke', '--all', '--all-namespaces', '--reason', `taskgrant release ${RELEASE} uninstalled`, '--wait', '2m']);
    expect((await render(RELEASE, ns, { uninstall: { revokeLiveTasks: false } })).filter((o) => o.kind === 'Job')).toEqual([]);
  });

  it('accepts values.yaml as shipped', async () => {
    await helmOk(['template', RELEASE, chartDir, '--namespace', ns, '-f', join(chartDir, 'values.yaml')]);
  });
});
