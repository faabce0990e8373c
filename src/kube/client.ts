// Loading credentials: an explicit kubeconfig path, else KUBECONFIG / ~/.kube/config, else the
// in-cluster ServiceAccount (client-node's loadFromDefault order).
import * as k8s from '@kubernetes/client-node';

export type { KubeConfig } from '@kubernetes/client-node';

export function loadKubeConfig(path?: string): k8s.KubeConfig {
  const kc = new k8s.KubeConfig();
  if (path) kc.loadFromFile(path);
  else kc.loadFromDefault();
  if (!kc.getCurrentCluster()) throw new Error('no Kubernetes cluster configured (set --kubeconfig or KUBECONFIG, or run in a pod)');
  return kc;
}

/** A kubeconfig for the same cluster that authenticates with a bearer token only. */
export function kubeConfigForToken(base: k8s.KubeConfig, token: string): k8s.KubeConfig {
  const cluster = base.getCurrentCluster();
  if (!cluster) throw new Error('kubeconfig has no current cluster');
  const kc = new k8s.KubeConfig();
  kc.loadFromClusterAndUser({ ...cluster, name: 'token-cluster' }, { name: 'token-user', token });
  return kc;
}
