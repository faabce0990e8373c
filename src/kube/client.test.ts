// Reading kubeconfigs without client-node: what is read here, what is handed on, and the token
// file a kubelet rotates.
import { afterEach, beforeEach, describe, expect, it } from '@jest/globals';
import { mkdtempSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import type { RequestOptions } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { fromKubeconfigFile, inClusterConfig, loadKubeConfig, StaticKubeConfig, type KubeConfig } from './client.js';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'tg-kubeconfig-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const b64 = (text: string) => Buffer.from(text).toString('base64');

function kubeconfig(user: Record<string, unknown>, cluster: Record<string, unknown> = { server: 'https://127.0.0.1:6443', 'certificate-authority-data': b64('CA PEM') }): string {
  const file = join(dir, 'config');
  writeFileSync(
    file,
    stringify({
      apiVersion: 'v1',
      kind: 'Config',
      'current-context': 'main',
      contexts: [
        { name: 'other', context: { cluster: 'other', user: 'other' } },
        { name: 'main', context: { cluster: 'c', user: 'u' } },
      ],
      clusters: [
        { name: 'other', cluster: { server: 'https://wrong:1' } },
        { name: 'c', cluster },
      ],
      users: [{ name: 'u', user }],
    }),
  );
  return file;
}

async function applied(kc: KubeConfig): Promise<RequestOptions> {
  const options: RequestOptions = { headers: { Accept: 'application/json' } };
  await kc.applyToHTTPSOptions(options);
  return options;
}

describe('fromKubeconfigFile', () => {
  it('reads the current context: server, CA and client certificate', async () => {
    const kc = fromKubeconfigFile(kubeconfig({ 'client-certificate-data': b64('CERT PEM'), 'client-key-data': b64('KEY PEM') }));
    expect(kc?.getCurrentCluster()).toEqual({ server: 'https://127.0.0.1:6443' });
    const options = await applied(kc!);
    expect(options).toMatchObject({ ca: 'CA PEM', cert: 'CERT PEM', key: 'KEY PEM' });
    expect(options.headers).toEqual({ Accept: 'application/json' });
  });

  it('reads certificate files relative to the kubeconfig, and honours tls-server-name and insecure-skip-tls-verify', async () => {
    writeFileSync(join(dir, 'ca.crt'), 'CA FROM FILE');
    const kc = fromKubeconfigFile(kubeconfig({ token: 'abc' }, { server: 'https://10.0.0.1', 'certificate-authority': 'ca.crt', 'tls-server-name': 'api.internal', 'insecure-skip-tls-verify': true }));
    expect(await applied(kc!)).toMatchObject({ ca: 'CA FROM FILE', servername: 'api.internal', rejectUnauthorized: false });
  });

  it('sends a bearer token', async () => {
    const options = await applied(fromKubeconfigFile(kubeconfig({ token: 'the-token' }))!);
    expect(options.headers).toEqual({ Accept: 'application/json', Authorization: 'Bearer the-token' });
  });

  it('hands exec and auth-provider users, and proxies, to client-node (undefined here)', () => {
    expect(fromKubeconfigFile(kubeconfig({ exec: { command: 'aws', apiVersion: 'client.authentication.k8s.io/v1' } }))).toBeUndefined();
    expect(fromKubeconfigFile(kubeconfig({ 'auth-provider': { name: 'oidc' } }))).toBeUndefined();
    expect(fromKubeconfigFile(kubeconfig({ token: 't' }, { server: 'https://x', 'proxy-url': 'http://proxy:3128' }))).toBeUndefined();
  });

  it('refuses a kubeconfig without a usable current context, naming the file', () => {
    const file = join(dir, 'broken');
    writeFileSync(file, stringify({ 'current-context': 'missing', contexts: [] }));
    expect(() => fromKubeconfigFile(file)).toThrow(`${file} has no current context`);
  });
});

describe('token files', () => {
  it('re-reads a rotated token file', async () => {
    const token = join(dir, 'token');
    writeFileSync(token, 'first\n');
    const kc = new StaticKubeConfig('https://x', {}, { type: 'tokenFile', path: token }, 0);
    expect((await applied(kc)).headers).toMatchObject({ Authorization: 'Bearer first' });
    writeFileSync(token, 'second\n');
    utimesSync(token, new Date(), new Date(Date.now() + 5_000)); // a distinct mtime, as a rotation has
    expect((await applied(kc)).headers).toMatchObject({ Authorization: 'Bearer second' });
  });

  it('in a pod: the service env vars, the mounted CA and token', async () => {
    writeFileSync(join(dir, 'token'), 'pod-token');
    writeFileSync(join(dir, 'ca.crt'), 'CLUSTER CA');
    const kc = inClusterConfig(dir, { KUBERNETES_SERVICE_HOST: 'fd00::1', KUBERNETES_SERVICE_PORT: '443' });
    expect(kc?.getCurrentCluster()).toEqual({ server: 'https://[fd00::1]:443' });
    const options = await applied(kc!);
    expect(options).toMatchObject({ ca: 'CLUSTER CA', headers: { Authorization: 'Bearer pod-token' } });
    expect(inClusterConfig(dir, {})).toBeUndefined();
  });
});

describe('loadKubeConfig', () => {
  it('uses client-node for what it does not read itself, with the same two methods', async () => {
    const kc = await loadKubeConfig(kubeconfig({ exec: { command: 'true', apiVersion: 'client.authentication.k8s.io/v1' } }));
    expect(kc).not.toBeInstanceOf(StaticKubeConfig);
    expect(kc.getCurrentCluster()?.server).toBe('https://127.0.0.1:6443');
  });

  it('reads a plain kubeconfig itself', async () => {
    expect(await loadKubeConfig(kubeconfig({ token: 't' }))).toBeInstanceOf(StaticKubeConfig);
  });
});
