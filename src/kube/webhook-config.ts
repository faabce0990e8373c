// Webhook configurations. The chart owns them in a cluster; `make run` and tests install them
// here, pointing at a URL (this process). In both cases the operator keeps their caBundle.
import { LABEL_MANAGED_BY, MANAGED_BY, type WebhookRouteSpec } from '../api/index.js';
import { isStatus, paths, type KubeApi } from './api.js';
import type { KubeConfig } from './client.js';
import { applyManifests } from './manifests.js';


export interface WebhookTarget {
  name: string;
  /** `https://127.0.0.1:9443` for a local process; undefined to use the Service. */
  url?: string;
  service?: { namespace: string; name: string; port: number };
  caBundlePem: string;
  /**
   * Namespaces whose pods never pass through the pod webhooks (the operator's own, kube-system),
   * so those pods start while the webhook is down. AgentTasks and TaskApprovals are stamped and
   * checked in every namespace: a task no webhook saw would carry whatever requester or approver
   * its author wrote.
   */
  excludedNamespaces: string[];
}

function webhook(route: WebhookRouteSpec, target: WebhookTarget): Record<string, unknown> {
  const label = route.objectSelectorLabelExists;
  return {
    name: `${route.handler}.taskgrant.io`,
    admissionReviewVersions: ['v1'],
    sideEffects: route.sideEffects,
    failurePolicy: 'Fail',
    timeoutSeconds: 5,
    matchPolicy: 'Equivalent',
    clientConfig: {
      ...(target.url ? { url: `${target.url}${route.path}` } : { service: { ...target.service, path: route.path } }),
      caBundle: Buffer.from(target.caBundlePem).toString('base64'),
    },
    rules: [{ apiGroups: [route.apiGroup], apiVersions: ['*'], operations: route.operations, resources: [route.resource], scope: 'Namespaced' }],
    ...(label
      ? {
          namespaceSelector: { matchExpressions: [{ key: 'kubernetes.io/metadata.name', operator: 'NotIn', values: target.excludedNamespaces }] },
          objectSelector: { matchExpressions: [{ key: label, operator: 'Exists' }] },
        }
      : {}),
    ...(route.type === 'mutating' ? { reinvocationPolicy: 'Never' } : {}),
  };
}

export function webhookConfigurations(routes: readonly WebhookRouteSpec[], target: WebhookTarget) {
  const metadata = { name: target.name, labels: { [LABEL_MANAGED_BY]: MANAGED_BY } };
  return [
    { apiVersion: 'admissionregistration.k8s.io/v1', kind: 'MutatingWebhookConfiguration', metadata, webhooks: routes.filter((r) => r.type === 'mutating').map((r) => webhook(r, target)) },
    { apiVersion: 'admissionregistration.k8s.io/v1', kind: 'ValidatingWebhookConfiguration', metadata, webhooks: routes.filter((r) => r.type === 'validating').map((r) => webhook(r, target)) },
  ];
}

export async function installWebhookConfigurations(kc: KubeConfig, routes: readonly WebhookRouteSpec[], target: WebhookTarget): Promise<void> {
  await applyManifests(kc, webhookConfigurations(routes, target));
}

/** Keeps the caBundle of every webhook in the named configurations equal to ours. */
export class CaBundleInjector {
  constructor(
    private readonly api: KubeApi,
    private readonly name: string,
  ) {}

  async inject(caBundlePem: string): Promise<void> {
    const caBundle = Buffer.from(caBundlePem).toString('base64');
    for (const path of [paths.mutatingWebhookConfiguration(this.name), paths.validatingWebhookConfiguration(this.name)]) {
      let config: { webhooks?: Array<{ clientConfig?: { caBundle?: string } }> };
      try {
        config = await this.api.get(path);
      } catch (err) {
        if (isStatus(err, 404)) continue; // not installed (yet): the chart or install mode creates it
        throw err;
      }
      const ops = (config.webhooks ?? []).flatMap((w, i) => (w.clientConfig?.caBundle === caBundle ? [] : [{ op: 'add', path: `/webhooks/${i}/clientConfig/caBundle`, value: caBundle }]));
      if (ops.length > 0) await this.api.patch(path, ops, 'json');
    }
  }
}
