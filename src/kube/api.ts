// Typed JSON calls over a Transport: one error type carrying the HTTP status, so callers can
// tell "already gone" (404) or "lost a race" (409) from a real failure.
import { transportOf, type Connection } from './rest.js';
import { statusMessage, type Transport } from './transport.js';

export class KubeError extends Error {
  constructor(
    readonly status: number,
    readonly method: string,
    readonly path: string,
    message: string,
    /** The Status reason, e.g. AlreadyExists or Conflict (both are 409). */
    readonly reason = '',
    /** The Status details: the kind of object refused and the types of its causes. */
    readonly details: StatusDetails = {},
  ) {
    super(`${method} ${path}: ${status} ${message}`);
    this.name = 'KubeError';
  }
}

/** A create refused because the object exists — not any other 409, such as a write conflict. */
export function isAlreadyExists(err: unknown): boolean {
  return err instanceof KubeError && err.status === 409 && err.reason === 'AlreadyExists';
}

export interface StatusDetails {
  /** The resource refused, e.g. `roles` (the API server puts the plural here). */
  kind?: string;
  /** `details.causes[].type`, e.g. NamespaceTerminating. */
  causes?: string[];
}

function statusReason(body: string): string {
  try {
    const status = JSON.parse(body) as { reason?: unknown };
    return typeof status.reason === 'string' ? status.reason : '';
  } catch {
    return '';
  }
}

function statusDetails(body: string): StatusDetails {
  try {
    const details = (JSON.parse(body) as { details?: { kind?: unknown; causes?: Array<{ type?: unknown }> } }).details;
    const causes = Array.isArray(details?.causes) ? details.causes.map((c) => c?.type).filter((t): t is string => typeof t === 'string') : [];
    return { ...(typeof details?.kind === 'string' ? { kind: details.kind } : {}), causes };
  } catch {
    return {};
  }
}

export function isStatus(err: unknown, status: number): boolean {
  return err instanceof KubeError && err.status === status;
}

export type PatchType = 'merge' | 'json' | 'strategic';
const patchContentType: Record<PatchType, string> = {
  merge: 'application/merge-patch+json',
  json: 'application/json-patch+json',
  strategic: 'application/strategic-merge-patch+json',
};

export class KubeApi {
  readonly transport: Transport;

  /** Over a Transport (tests pass a fake), or over https with a kubeconfig's credentials. */
  constructor(connection: Connection) {
    this.transport = transportOf(connection);
  }

  private async call<T>(method: string, path: string, body?: unknown, contentType?: string): Promise<T> {
    const res = await this.transport.request(method, path, body, contentType);
    if (res.status < 200 || res.status >= 300) throw new KubeError(res.status, method, path, statusMessage(res.body), statusReason(res.body), statusDetails(res.body));
    return JSON.parse(res.body) as T;
  }

  get<T>(path: string): Promise<T> {
    return this.call<T>('GET', path);
  }

  /** Reads; resolves undefined when the object does not exist. */
  async find<T>(path: string): Promise<T | undefined> {
    try {
      return await this.call<T>('GET', path);
    } catch (err) {
      if (isStatus(err, 404)) return undefined;
      throw err;
    }
  }

  create<T>(collectionPath: string, object: unknown): Promise<T> {
    return this.call<T>('POST', collectionPath, object);
  }

  replace<T>(path: string, object: unknown): Promise<T> {
    return this.call<T>('PUT', path, object);
  }

  patch<T>(path: string, patch: unknown, type: PatchType = 'merge'): Promise<T> {
    return this.call<T>('PATCH', path, patch, patchContentType[type]);
  }

  /** Deletes; resolves false when the object was already gone. */
  async delete(path: string, body?: unknown): Promise<boolean> {
    try {
      await this.call('DELETE', path, body);
      return true;
    } catch (err) {
      if (isStatus(err, 404)) return false;
      throw err;
    }
  }
}

/** REST paths of the resources taskgrant touches. */
export const paths = {
  agentTasks: (ns?: string) => (ns ? `/apis/taskgrant.io/v1alpha1/namespaces/${ns}/agenttasks` : '/apis/taskgrant.io/v1alpha1/agenttasks'),
  agentTask: (ns: string, name: string) => `/apis/taskgrant.io/v1alpha1/namespaces/${ns}/agenttasks/${name}`,
  taskApprovals: (ns?: string) => (ns ? `/apis/taskgrant.io/v1alpha1/namespaces/${ns}/taskapprovals` : '/apis/taskgrant.io/v1alpha1/taskapprovals'),
  serviceAccounts: (ns?: string) => (ns ? `/api/v1/namespaces/${ns}/serviceaccounts` : '/api/v1/serviceaccounts'),
  serviceAccount: (ns: string, name: string) => `/api/v1/namespaces/${ns}/serviceaccounts/${name}`,
  roles: (ns?: string) => (ns ? `/apis/rbac.authorization.k8s.io/v1/namespaces/${ns}/roles` : '/apis/rbac.authorization.k8s.io/v1/roles'),
  role: (ns: string, name: string) => `/apis/rbac.authorization.k8s.io/v1/namespaces/${ns}/roles/${name}`,
  roleBindings: (ns?: string) => (ns ? `/apis/rbac.authorization.k8s.io/v1/namespaces/${ns}/rolebindings` : '/apis/rbac.authorization.k8s.io/v1/rolebindings'),
  roleBinding: (ns: string, name: string) => `/apis/rbac.authorization.k8s.io/v1/namespaces/${ns}/rolebindings/${name}`,
  pods: (ns?: string) => (ns ? `/api/v1/namespaces/${ns}/pods` : '/api/v1/pods'),
  configMaps: (ns?: string) => (ns ? `/api/v1/namespaces/${ns}/configmaps` : '/api/v1/configmaps'),
  configMap: (ns: string, name: string) => `/api/v1/namespaces/${ns}/configmaps/${name}`,
  secrets: (ns: string) => `/api/v1/namespaces/${ns}/secrets`,
  secret: (ns: string, name: string) => `/api/v1/namespaces/${ns}/secrets/${name}`,
  events: (ns: string) => `/api/v1/namespaces/${ns}/events`,
  event: (ns: string, name: string) => `/api/v1/namespaces/${ns}/events/${name}`,
  namespaces: () => '/api/v1/namespaces',
  namespace: (name: string) => `/api/v1/namespaces/${name}`,
  tokenReviews: () => '/apis/authentication.k8s.io/v1/tokenreviews',
  subjectAccessReviews: () => '/apis/authorization.k8s.io/v1/subjectaccessreviews',
  leases: (ns: string) => `/apis/coordination.k8s.io/v1/namespaces/${ns}/leases`,
  lease: (ns: string, name: string) => `/apis/coordination.k8s.io/v1/namespaces/${ns}/leases/${name}`,
  mutatingWebhookConfiguration: (name: string) => `/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/${name}`,
  validatingWebhookConfiguration: (name: string) => `/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations/${name}`,
};
