// The peer: a kubectl + shell script (bench/peer/kubectl-grant.sh, kubectl built from the same
// wrapper module as the control plane) making the same grant — ServiceAccount, Role, RoleBinding —
// and revoking it, binding first. Timed the way ours is: the grant from the request to the
// objects in place; the revocation as an agent using its token feels it (the first 403).
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { kubeAssets } from '../../test/harness/paths.js';
import { timeToRefusal } from '../agent.js';
import { namespace, type Env } from '../cluster.js';
import type { BenchContext, BenchPart } from '../part.js';
import { percentile, round } from '../stats.js';
import { permissions } from '../tasks.js';

/** The three objects of a grant, as the script gets them on stdin (JSON is YAML). */
function manifest(ns: string, name: string): string {
  const items = [
    { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name, namespace: ns }, automountServiceAccountToken: false },
    { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'Role', metadata: { name, namespace: ns }, rules: permissions },
    {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'RoleBinding',
      metadata: { name, namespace: ns },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name },
      subjects: [{ kind: 'ServiceAccount', name, namespace: ns }],
    },
  ];
  return JSON.stringify({ apiVersion: 'v1', kind: 'List', items });
}

async function benchPeer({ root, results, keep }: BenchContext, env: Env): Promise<void> {
  const ns = await namespace(env.client, 'bench-peer');
  // A discovery cache of its own, warmed by the first calls, as a script run often would have.
  const cacheDir = mkdtempSync(join(tmpdir(), 'taskgrant-peer-'));
  const script = (action: 'grant' | 'revoke', name: string, stdin = '') =>
    new Promise<void>((resolve, reject) => {
      const child = spawn('bash', [join(root, 'bench', 'peer', 'kubectl-grant.sh'), action, ns, name], {
        env: { ...process.env, KUBECTL: join(kubeAssets(), 'kubectl'), KUBECONFIG: env.kubeconfig, KUBECACHEDIR: cacheDir },
        stdio: ['pipe', 'ignore', 'pipe'],
      });
      let stderr = '';
      child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      child.on('error', reject);
      child.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`kubectl-grant.sh ${action} ${name} exited ${code}: ${stderr.slice(0, 300)}`))));
      child.stdin.end(stdin);
    });
  const grants: number[] = [];
  const revocations: number[] = [];
  try {
    const n = 30;
    for (let i = -3; i < n; i += 1) {
      const name = `peer-${i + 3}`;
      const start = performance.now();
      await script('grant', name, manifest(ns, name));
      const granted = performance.now() - start;
      const token = ((await env.client.must('POST', `/api/v1/namespaces/${ns}/serviceaccounts/${name}/token`, { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenRequest', spec: { expirationSeconds: 600 } })).status as { token: string }).token;
      const refusal = await timeToRefusal(env, ns, token, () => script('revoke', name), 403);
      if (i < 0) continue; // warm-up: the discovery cache
      grants.push(granted);
      revocations.push(refusal.ms);
    }
  } finally {
    rmSync(cacheDir, { recursive: true, force: true });
  }
  keep('peer.kubectl_grant', grants);
  keep('peer.kubectl_revoke_403', revocations);
  results.peer = {
    kubectl_n: grants.length,
    // Request to ServiceAccount, Role and RoleBinding in place: compare with grant.p50_ms.
    kubectl_grant_p50_ms: round(percentile(grants, 50)),
    // Revocation to an agent's first 403, RBAC alone: compare with revoke.used_token_403_p50_ms.
    kubectl_revoke_403_p50_ms: round(percentile(revocations, 50)),
  };
}

export const peerPart: BenchPart<Env> = { name: 'peer', title: 'peer: a kubectl script making the same grant and revocation', run: benchPeer };
