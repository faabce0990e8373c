// The audit key: 32 random bytes in a Secret of the operator namespace, shared by every replica
// and kept across restarts. Audit Event names are keyed with it (src/controller/audit.ts), so no
// one without it can name a transition's Event ahead of the operator and suppress its record.
import { randomBytes } from 'node:crypto';
import { LABEL_MANAGED_BY, MANAGED_BY } from '../api/index.js';
import { isAlreadyExists, paths, type KubeApi } from './api.js';
import type { SecretObject } from './objects.js';

export const AUDIT_KEY_SECRET = 'taskgrant-audit-key';
const DATA_KEY = 'key';
const KEY_BYTES = 32;

/** Reads the key, creating it on first start; two replicas racing both end with the one stored. */
export async function loadAuditKey(api: KubeApi, namespace: string): Promise<Buffer> {
  for (let attempt = 0; attempt < 3; attempt += 1) {
    const secret = await api.find<SecretObject>(paths.secret(namespace, AUDIT_KEY_SECRET));
    if (secret) {
      const key = Buffer.from(secret.data?.[DATA_KEY] ?? '', 'base64');
      if (key.length < KEY_BYTES) throw new Error(`Secret ${namespace}/${AUDIT_KEY_SECRET} holds no ${KEY_BYTES}-byte key; delete it and restart taskgrant to make a new one`);
      return key;
    }
    try {
      await api.create(paths.secrets(namespace), {
        apiVersion: 'v1',
        kind: 'Secret',
        type: 'Opaque',
        metadata: { name: AUDIT_KEY_SECRET, namespace, labels: { [LABEL_MANAGED_BY]: MANAGED_BY, 'app.kubernetes.io/component': 'audit-key' } },
        data: { [DATA_KEY]: randomBytes(KEY_BYTES).toString('base64') },
      });
    } catch (err) {
      if (!isAlreadyExists(err)) throw new Error(`creating Secret ${namespace}/${AUDIT_KEY_SECRET}`, { cause: err });
    }
  }
  throw new Error(`Secret ${namespace}/${AUDIT_KEY_SECRET} could not be read after it was created`);
}
