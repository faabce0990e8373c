// Proves the local control plane is a real one: TokenRequest tokens authenticate, RBAC decides
// what they may do, deleting the ServiceAccount kills them, and the garbage collector cascades.
import { beforeAll, describe, expect, it } from '@jest/globals';
import * as k8s from '@kubernetes/client-node';
import { adminConfig, createNamespace, eventually, statusOfCall, tokenConfig } from './harness/kube.js';

let admin: k8s.KubeConfig;
let core: k8s.CoreV1Api;
let rbac: k8s.RbacAuthorizationV1Api;
let authn: k8s.AuthenticationV1Api;
let ns: string;
let otherNs: string;

async function mintToken(namespace: string, serviceAccount: string): Promise<string> {
  const response = await core.createNamespacedServiceAccountToken({
    name: serviceAccount,
    namespace,
    body: { spec: { audiences: [], expirationSeconds: 600 } },
  });
  const token = response.status?.token;
  if (!token) throw new Error('TokenRequest returned no token');
  return token;
}

async function reviewToken(token: string): Promise<k8s.V1TokenReviewStatus | undefined> {
  const review = await authn.createTokenReview({ body: { spec: { token } } });
  return review.status;
}

beforeAll(async () => {
  admin = adminConfig();
  core = admin.makeApiClient(k8s.CoreV1Api);
  rbac = admin.makeApiClient(k8s.RbacAuthorizationV1Api);
  authn = admin.makeApiClient(k8s.AuthenticationV1Api);
  ns = await createNamespace(admin, 'cp');
  otherNs = await createNamespace(admin, 'cp-other');
});

describe('local control plane', () => {
  it('runs the serviceaccount controller (every namespace gets a default ServiceAccount)', async () => {
    await eventually(() => core.readNamespacedServiceAccount({ name: 'default', namespace: ns }).then(() => true), 'default ServiceAccount');
  });

  it('issues TokenRequest tokens that authenticate and are authorized only as RBAC says', async () => {
    await core.createNamespacedServiceAccount({ namespace: ns, body: { metadata: { name: 'reader' } } });
    await rbac.createNamespacedRole({
      namespace: ns,
      body: { metadata: { name: 'pod-reader' }, rules: [{ apiGroups: [''], resources: ['pods'], verbs: ['get', 'list'] }] },
    });
    await rbac.createNamespacedRoleBinding({
      namespace: ns,
      body: {
        metadata: { name: 'reader-pods' },
        roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'pod-reader' },
        subjects: [{ kind: 'ServiceAccount', name: 'reader', namespace: ns }],
      },
    });
    const token = await mintToken(ns, 'reader');

    const review = await reviewToken(token);
    expect(review?.authenticated).toBe(true);
    expect(review?.user?.username).toBe(`system:serviceaccount:${ns}:reader`);

    const asReader = tokenConfig(admin, token).makeApiClient(k8s.CoreV1Api);
    // RBAC is evaluated on every request; the binding may take a moment to reach the authorizer cache.
    await eventually(async () => (await statusOfCall(() => asReader.listNamespacedPod({ namespace: ns }))) === 200, 'granted list to succeed');
    expect(await statusOfCall(() => asReader.listNamespacedSecret({ namespace: ns }))).toBe(403);
    expect(await statusOfCall(() => asReader.listNamespacedPod({ namespace: otherNs }))).toBe(403);
    expect(await statusOfCall(() => asReader.deleteNamespacedPod({ name: 'anything', namespace: ns }))).toBe(403);
    expect(
      await statusOfCall(() =>
        asReader.createNamespacedPod({ namespace: ns, body: { metadata: { name: 'p' }, spec: { containers: [{ name: 'c', image: 'busybox' }] } } }),
      ),
    ).toBe(403);

    await core.deleteNamespacedServiceAccount({ name: 'reader', namespace: ns });
    await eventually(async () => (await reviewToken(token))?.authenticated !== true, 'token to stop authenticating');
    expect(await statusOfCall(() => asReader.listNamespacedPod({ namespace: ns }))).toBe(401);
  });

  it('carries out ownerReference cascades (garbage collector)', async () => {
    const owner = await core.createNamespacedConfigMap({ namespace: ns, body: { metadata: { name: 'owner' } } });
    await core.createNamespacedServiceAccount({
      namespace: ns,
      body: {
        metadata: {
          name: 'owned',
          ownerReferences: [{ apiVersion: 'v1', kind: 'ConfigMap', name: 'owner', uid: owner.metadata?.uid ?? '', blockOwnerDeletion: true }],
        },
      },
    });
    await core.deleteNamespacedConfigMap({ name: 'owner', namespace: ns });
    await eventually(async () => (await statusOfCall(() => core.readNamespacedServiceAccount({ name: 'owned', namespace: ns }))) === 404, 'owned ServiceAccount to be collected');
  });
});
