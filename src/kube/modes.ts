// Which modes the operator runs in, published where users (kubectl taskgrant explain) can read
// them: how task pods are admitted and whether the API server asks taskgrant at request time.
import { MODES_CONFIGMAP } from '../api/index.js';
import { isAlreadyExists, paths, type KubeApi } from './api.js';

export interface Modes {
  admission: 'policy' | 'webhook';
  authorization: 'request-time' | 'rbac-only';
}

export async function publishModes(api: KubeApi, namespace: string, modes: Modes): Promise<void> {
  const body = { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: MODES_CONFIGMAP, namespace }, data: { ...modes } };
  try {
    await api.create(paths.configMaps(namespace), body);
  } catch (err) {
    if (!isAlreadyExists(err)) throw err;
    await api.replace(`${paths.configMaps(namespace)}/${MODES_CONFIGMAP}`, body);
  }
}
