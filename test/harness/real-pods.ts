// Helpers for suites whose pods really run on the local node (test/e2e, the chart suite): the
// demo agent's pod, waiting on what the kubelet reports, and reading what the kubelet mounted.
//
// The agent's own token is read where the kubelet put it (the node's pod volume directory on this
// machine), so a test can keep using exactly that token after the pod has ended.
import * as k8s from '@kubernetes/client-node';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { LABEL_TASK, TOKEN_VOLUME } from '../../src/api/index.js';
import { eventually, statusOfCall, tokenConfig } from './kube.js';
import { nodeLayout, testNodeTaint } from './node.js';
import { demoAgentImage } from './project-images.js';

/** The volume the demo agent waits on (DEMO_WAIT_FILE) when a test holds its pod. */
const HOLD_VOLUME = 'hold';
const HOLD_FILE = 'release';

/** Lets a pod onto the tainted test node. */
export const testNodeToleration: k8s.V1Toleration = { key: testNodeTaint.key, operator: 'Equal', value: testNodeTaint.value, effect: testNodeTaint.effect };

export interface AgentPodOptions {
  /** Wait for release() before exiting. */
  hold?: boolean;
  /** Exit 1 at the end (DEMO_FAIL=1). */
  fail?: boolean;
  env?: Record<string, string>;
}

/** The demo agent's pod spec for a task: the task label is all taskgrant needs. */
export function agentPodSpec(options: AgentPodOptions = {}): k8s.V1PodSpec {
  const env = { ...(options.hold ? { DEMO_WAIT_FILE: `/${HOLD_VOLUME}/${HOLD_FILE}` } : {}), ...(options.fail ? { DEMO_FAIL: '1' } : {}), ...options.env };
  return {
    restartPolicy: 'Never',
    tolerations: [testNodeToleration],
    securityContext: { runAsNonRoot: true, seccompProfile: { type: 'RuntimeDefault' } },
    containers: [
      {
        name: 'agent',
        image: demoAgentImage,
        imagePullPolicy: 'Never',
        env: Object.entries(env).map(([name, value]) => ({ name, value })),
        securityContext: { readOnlyRootFilesystem: true, allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] } },
        ...(options.hold ? { volumeMounts: [{ name: HOLD_VOLUME, mountPath: `/${HOLD_VOLUME}`, readOnly: true }] } : {}),
      },
    ],
    ...(options.hold ? { volumes: [{ name: HOLD_VOLUME, emptyDir: {} }] } : {}),
  };
}

export async function createAgentPod(core: k8s.CoreV1Api, namespace: string, name: string, task: string, options: AgentPodOptions = {}): Promise<k8s.V1Pod> {
  return core.createNamespacedPod({ namespace, body: { metadata: { name, labels: { [LABEL_TASK]: task } }, spec: agentPodSpec(options) } });
}

export async function waitForPodPhase(core: k8s.CoreV1Api, namespace: string, name: string, phases: string[], timeoutMs = 90_000): Promise<k8s.V1Pod> {
  let last: k8s.V1Pod | undefined;
  try {
    return await eventually(
      async () => {
        last = await core.readNamespacedPod({ namespace, name });
        return phases.includes(last.status?.phase ?? '') ? last : undefined;
      },
      `pod ${namespace}/${name} ${phases.join('|')}`,
      timeoutMs,
      250,
    );
  } catch (err) {
    const waiting = last?.status?.containerStatuses?.map((c) => c.state?.waiting?.reason ?? c.state?.terminated?.reason ?? 'running').join(',');
    throw new Error(`pod ${namespace}/${name} is ${last?.status?.phase ?? 'unknown'} (${waiting ?? 'no container status'}), wanted ${phases.join('|')}`, { cause: err });
  }
}

function podVolume(pod: k8s.V1Pod, plugin: string, volume: string): string {
  const uid = pod.metadata?.uid;
  if (!uid) throw new Error('pod has no uid');
  return join(nodeLayout.state, 'kubelet', 'pods', uid, 'volumes', plugin, volume);
}

/** The token file the kubelet mounted into the pod (path inside the token volume). */
export function mountedToken(pod: k8s.V1Pod, file = 'token'): string {
  const path = join(podVolume(pod, 'kubernetes.io~projected', TOKEN_VOLUME), file);
  if (!existsSync(path)) throw new Error(`the kubelet has not mounted ${path}`);
  return readFileSync(path, 'utf8').trim();
}

/** Lets a held agent finish (see AgentPodOptions.hold). */
export function release(pod: k8s.V1Pod): void {
  const dir = podVolume(pod, 'kubernetes.io~empty-dir', HOLD_VOLUME);
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, HOLD_FILE), 'go\n');
}

export interface TokenClaims {
  aud: string[];
  sub: string;
  iat: number;
  exp: number;
  'kubernetes.io'?: { namespace?: string; pod?: { name: string; uid: string }; serviceaccount?: { name: string } };
}

/** The JWT's claims, unverified: the API server verifies it when the token is used. */
export function claims(token: string): TokenClaims {
  const payload = token.split('.')[1];
  if (!payload) throw new Error('not a JWT');
  return JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as TokenClaims;
}

/** Waits for the demo agent to have printed both outcomes, and returns its log. */
export async function agentReport(core: k8s.CoreV1Api, namespace: string, name: string): Promise<string> {
  return eventually(
    async () => {
      const log = await core.readNamespacedPodLog({ namespace, name });
      return /^forbidden: /m.test(log) ? log : undefined;
    },
    `the demo agent's report in ${namespace}/${name}`,
    60_000,
    250,
  );
}

/**
 * Waits until `token` can no longer list pods in `namespace`, and returns how it was refused. The
 * API server may answer from its authentication cache for a few seconds (then RBAC refuses with
 * 403, the Role being gone) before the deleted ServiceAccount makes it 401.
 */
export async function refusedFromNowOn(admin: k8s.KubeConfig, token: string, namespace: string): Promise<number> {
  const asAgent = tokenConfig(admin, token).makeApiClient(k8s.CoreV1Api);
  return eventually(
    async () => {
      const status = await statusOfCall(() => asAgent.listNamespacedPod({ namespace }));
      return status !== 200 ? status : undefined;
    },
    'the agent token to be refused',
    30_000,
    200,
  );
}
