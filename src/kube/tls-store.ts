// The webhook TLS bundle as a Secret in the operator namespace (every replica reads the same
// one). Writes carry the resourceVersion they read, so two replicas never both rotate.
import { LABEL_MANAGED_BY, MANAGED_BY, type StoredTls, type TlsBundle } from '../api/index.js';
import { paths, type KubeApi } from './api.js';
import type { SecretObject } from './objects.js';


const keys = { caCertPem: 'ca.crt', caKeyPem: 'ca.key', certPem: 'tls.crt', keyPem: 'tls.key', previousCaCertPem: 'previous-ca.crt' } as const;
const b64 = (s: string) => Buffer.from(s, 'utf8').toString('base64');
const unb64 = (s: string | undefined) => (s ? Buffer.from(s, 'base64').toString('utf8') : '');

export class SecretTlsStore {
  constructor(
    private readonly api: KubeApi,
    private readonly namespace: string,
    private readonly name = 'taskgrant-webhook-tls',
  ) {}

  async load(): Promise<StoredTls | undefined> {
    const secret = await this.api.find<SecretObject>(paths.secret(this.namespace, this.name)).catch((err: unknown) => {
      throw new Error(`reading Secret ${this.namespace}/${this.name}`, { cause: err });
    });
    if (!secret) return undefined;
    const d = secret.data ?? {};
    const bundle: TlsBundle = { caCertPem: unb64(d[keys.caCertPem]), caKeyPem: unb64(d[keys.caKeyPem]), certPem: unb64(d[keys.certPem]), keyPem: unb64(d[keys.keyPem]) };
    const previous = unb64(d[keys.previousCaCertPem]);
    if (previous) bundle.previousCaCertPem = previous;
    // A Secret someone emptied or truncated is treated as absent: the manager issues anew.
    if (!bundle.caCertPem || !bundle.caKeyPem || !bundle.certPem || !bundle.keyPem) return { bundle: { caCertPem: '', caKeyPem: '', certPem: '', keyPem: '' }, version: secret.metadata.resourceVersion ?? '' };
    return { bundle, version: secret.metadata.resourceVersion ?? '' };
  }

  async save(bundle: TlsBundle, version: string | undefined): Promise<StoredTls> {
    const data: Record<string, string> = { [keys.caCertPem]: b64(bundle.caCertPem), [keys.caKeyPem]: b64(bundle.caKeyPem), [keys.certPem]: b64(bundle.certPem), [keys.keyPem]: b64(bundle.keyPem) };
    if (bundle.previousCaCertPem) data[keys.previousCaCertPem] = b64(bundle.previousCaCertPem);
    const body: SecretObject = {
      apiVersion: 'v1',
      kind: 'Secret',
      type: 'Opaque',
      metadata: { name: this.name, namespace: this.namespace, labels: { [LABEL_MANAGED_BY]: MANAGED_BY }, ...(version ? { resourceVersion: version } : {}) },
      data,
    };
    const saved = version
      ? await this.api.replace<SecretObject>(paths.secret(this.namespace, this.name), body)
      : await this.api.create<SecretObject>(paths.secrets(this.namespace), body);
    return { bundle, version: saved.metadata.resourceVersion ?? '' };
  }
}
