// Small helpers the integration suites share: clients for the admin and for a bearer token,
// unique namespaces, polling.
import * as k8s from '@kubernetes/client-node';

export function adminConfig(): k8s.KubeConfig {
  const path = process.env.TASKGRANT_TEST_KUBECONFIG;
  if (!path) throw new Error('TASKGRANT_TEST_KUBECONFIG is not set (jest globalSetup starts the control plane)');
  const kc = new k8s.KubeConfig();
  kc.loadFromFile(path);
  return kc;
}

/** A kubeconfig that authenticates with `token` only: what a task pod would hold. */
export function tokenConfig(admin: k8s.KubeConfig, token: string): k8s.KubeConfig {
  const cluster = admin.getCurrentCluster();
  if (!cluster) throw new Error('kubeconfig has no current cluster');
  const kc = new k8s.KubeConfig();
  kc.loadFromClusterAndUser({ ...cluster, name: 'token-cluster' }, { name: 'token-user', token });
  return kc;
}

let counter = 0;
export function uniqueName(prefix: string): string {
  counter += 1;
  return `${prefix}-${Date.now().toString(36)}-${counter}`;
}

export async function createNamespace(kc: k8s.KubeConfig, prefix = 'it'): Promise<string> {
  const core = kc.makeApiClient(k8s.CoreV1Api);
  const name = uniqueName(prefix);
  await core.createNamespace({ body: { metadata: { name } } });
  return name;
}

export async function eventually<T>(check: () => Promise<T | undefined | false>, what: string, timeoutMs = 15_000, intervalMs = 50): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  while (Date.now() < deadline) {
    try {
      const value = await check();
      if (value !== undefined && value !== false) return value;
    } catch (err) {
      lastError = err;
    }
    await new Promise((r) => setTimeout(r, intervalMs));
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`, { cause: lastError });
}

/** The HTTP status of a failed API call (ApiException.code), or 0 when it was not an API error. */
export function statusOf(err: unknown): number {
  return typeof err === 'object' && err !== null && 'code' in err && typeof err.code === 'number' ? err.code : 0;
}

/** Runs `call` and returns the HTTP status it failed with, or 200 when it succeeded. */
export async function statusOfCall(call: () => Promise<unknown>): Promise<number> {
  try {
    await call();
    return 200;
  } catch (err) {
    const code = statusOf(err);
    if (code === 0) throw err;
    return code;
  }
}

/** The message the API server gave for a refused call. */
export async function refusalMessage(call: () => Promise<unknown>): Promise<string> {
  try {
    await call();
  } catch (err) {
    const body = typeof err === 'object' && err !== null && 'body' in err ? err.body : undefined;
    const text = typeof body === 'string' ? body : JSON.stringify(body);
    try {
      const status = JSON.parse(text) as { message?: string };
      return status.message ?? text;
    } catch {
      return text;
    }
  }
  throw new Error('the call was expected to be refused but succeeded');
}
