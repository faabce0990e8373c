// The receipt signing keys as a Secret in the operator namespace, so every replica signs and
// publishes from the same ring and a restart keeps verifying the receipts already issued. The
// ring's format belongs to the receipts service (src/receipts/keys.ts); this file only moves the
// document, with the resourceVersion it was read at so concurrent writers never overwrite each
// other (the receipts' SigningKeyStore port).
import { LABEL_MANAGED_BY, MANAGED_BY, type SaveResult, type StoredKeys } from '../api/index.js';
import { isStatus, paths, type KubeApi } from './api.js';
import type { SecretObject } from './objects.js';

export const SIGNING_KEYS_SECRET = 'taskgrant-signing-keys';
export const SIGNING_KEYS_DATA_KEY = 'keys.json';



export class SecretSigningKeyStore {
  constructor(
    private readonly api: KubeApi,
    private readonly namespace: string,
    readonly name = SIGNING_KEYS_SECRET,
  ) {}

  /** The stored document; '' when the Secret exists without it; undefined when there is no Secret. */
  async load(): Promise<StoredKeys | undefined> {
    const secret = await this.api.find<SecretObject>(paths.secret(this.namespace, this.name)).catch((err: unknown) => {
      throw new Error(`reading Secret ${this.namespace}/${this.name}`, { cause: err });
    });
    if (!secret) return undefined;
    const data = secret.data?.[SIGNING_KEYS_DATA_KEY];
    return { document: data ? Buffer.from(data, 'base64').toString('utf8') : '', resourceVersion: secret.metadata.resourceVersion ?? '' };
  }

  /**
   * Creates the Secret (no resourceVersion) or replaces it if still at `resourceVersion`.
   * `conflict` when someone else created, changed or deleted it since it was read.
   */
  async save(document: string, resourceVersion?: string): Promise<SaveResult> {
    const body: SecretObject = {
      apiVersion: 'v1',
      kind: 'Secret',
      type: 'Opaque',
      metadata: {
        name: this.name,
        namespace: this.namespace,
        labels: { [LABEL_MANAGED_BY]: MANAGED_BY, 'app.kubernetes.io/component': 'receipt-signing-keys' },
        ...(resourceVersion ? { resourceVersion } : {}),
      },
      data: { [SIGNING_KEYS_DATA_KEY]: Buffer.from(document, 'utf8').toString('base64') },
    };
    try {
      const saved = resourceVersion
        ? await this.api.replace<SecretObject>(paths.secret(this.namespace, this.name), body)
        : await this.api.create<SecretObject>(paths.secrets(this.namespace), body);
      return { type: 'saved', resourceVersion: saved.metadata.resourceVersion ?? '' };
    } catch (err) {
      // 404 on replace: deleted meanwhile; the caller re-reads, finds nothing and creates.
      if (isStatus(err, 409) || (resourceVersion && isStatus(err, 404))) return { type: 'conflict' };
      throw new Error(`writing Secret ${this.namespace}/${this.name}`, { cause: err });
    }
  }
}
