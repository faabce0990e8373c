// taskgrant's demo agent: proves what a task identity can and cannot do, from inside its pod.
// It reads the token taskgrant projected ($TASKGRANT_TOKEN_FILE), asks the API server who it is
// (SelfSubjectReview), makes one call its task allows and one it does not, prints both outcomes
// and exits 0 (1 when DEMO_FAIL=1; 2 when it could not make its calls). It never prints the token.
//
//   DEMO_ALLOWED    the allowed call, "VERB PATH" (default: GET the pods of its namespace)
//   DEMO_FORBIDDEN  the call it should be refused (default: GET the secrets of its namespace)
//   DEMO_WAIT_FILE  wait for this file to appear before exiting, whatever happened (tests hold the pod with it)
//   DEMO_FAIL=1     exit 1 at the end, as a failed agent would
import { existsSync, readFileSync } from 'node:fs';
import { request } from 'node:https';
import { dirname, join } from 'node:path';

const env = process.env;
process.on('SIGTERM', () => process.exit(0));

class Refused extends Error {}

function call(target, method, path, body) {
  // Read each time: the kubelet rotates the token in place.
  const token = readFileSync(target.tokenFile, 'utf8').trim();
  const payload = body === undefined ? undefined : JSON.stringify(body);
  const headers = { authorization: `Bearer ${token}`, accept: 'application/json', ...(payload ? { 'content-type': 'application/json' } : {}) };
  return new Promise((resolve, reject) => {
    const req = request({ host: target.host, port: target.port, method, path, ca: target.ca, timeout: 10_000, headers }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d) => (text += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end(payload);
  });
}

function target() {
  const tokenFile = env.TASKGRANT_TOKEN_FILE;
  if (!tokenFile) throw new Refused('TASKGRANT_TOKEN_FILE is not set: is this pod labelled taskgrant.io/task=<task>?');
  const caFile = [join(dirname(tokenFile), 'ca.crt'), '/var/run/secrets/kubernetes.io/serviceaccount/ca.crt'].find((f) => existsSync(f));
  if (!caFile) throw new Refused('no cluster CA next to the token');
  if (!env.KUBERNETES_SERVICE_HOST) throw new Refused('KUBERNETES_SERVICE_HOST is not set');
  return { tokenFile, ca: readFileSync(caFile), host: env.KUBERNETES_SERVICE_HOST, port: env.KUBERNETES_SERVICE_PORT ?? '443' };
}

async function report() {
  const api = target();
  const review = await call(api, 'POST', '/apis/authentication.k8s.io/v1/selfsubjectreviews', { apiVersion: 'authentication.k8s.io/v1', kind: 'SelfSubjectReview' });
  if (review.status !== 201) throw new Refused(`SelfSubjectReview answered ${review.status}: ${review.text.slice(0, 200)}`);
  const user = JSON.parse(review.text).status?.userInfo ?? {};
  console.log(`whoami: ${user.username}`);
  const namespace = String(user.username ?? '').split(':')[2] || 'default';
  for (const [label, spec, fallback] of [
    ['allowed', env.DEMO_ALLOWED, `GET /api/v1/namespaces/${namespace}/pods`],
    ['forbidden', env.DEMO_FORBIDDEN, `GET /api/v1/namespaces/${namespace}/secrets`],
  ]) {
    const [method, path] = (spec || fallback).split(/\s+/);
    const res = await call(api, method, path);
    const reason = res.status < 300 ? 'OK' : (JSON.parse(res.text || '{}').reason ?? '');
    console.log(`${label}: ${method} ${path} -> ${res.status} ${reason}`);
  }
}

let code = env.DEMO_FAIL === '1' ? 1 : 0;
try {
  await report();
  console.log(code === 1 ? 'done: failing on purpose (DEMO_FAIL=1)' : 'done');
} catch (err) {
  console.error(`demo-agent: ${err instanceof Refused ? err.message : err}`);
  code = 2;
}
if (env.DEMO_WAIT_FILE) {
  while (!existsSync(env.DEMO_WAIT_FILE)) await new Promise((r) => setTimeout(r, 200));
}
process.exit(code);
