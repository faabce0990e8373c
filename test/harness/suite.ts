// What integration suites start with: the admin client, the task helper and namespaces of their
// own, plus a running in-process operator (startOperatorSuite) or the CRDs for the operator
// processes the suite spawns itself (startProcessSuite). Suites keep module-level bindings (their
// tests read them everywhere) and fill them from these in beforeAll.
import type * as k8s from '@kubernetes/client-node';
import { join } from 'node:path';
import type { Config } from '../../src/config.js';
import { installCrds } from '../../src/kube/manifests.js';
import { adminConfig, createNamespace } from './kube.js';
import { startTestOperator, type TestOperator } from './operator.js';
import { repoRoot } from './paths.js';
import { TaskHelper } from './tasks.js';

/** One new namespace per prefix asked for, in the same order. */
type Namespaces<Prefixes extends readonly string[]> = { [K in keyof Prefixes]: string };

export interface ProcessSuite<Prefixes extends readonly string[]> {
  admin: k8s.KubeConfig;
  tasks: TaskHelper;
  namespaces: Namespaces<Prefixes>;
}

export async function startProcessSuite<const Prefixes extends readonly string[]>(prefixes: Prefixes): Promise<ProcessSuite<Prefixes>> {
  const admin = adminConfig();
  await installCrds(admin, join(repoRoot(), 'crds'));
  const namespaces = await Promise.all(prefixes.map((prefix) => createNamespace(admin, prefix)));
  return { admin, tasks: new TaskHelper(admin), namespaces: namespaces as Namespaces<Prefixes> };
}

export interface OperatorSuite<Prefixes extends readonly string[]> {
  admin: k8s.KubeConfig;
  tasks: TaskHelper;
  operator: TestOperator;
  namespaces: Namespaces<Prefixes>;
}

export async function startOperatorSuite<const Prefixes extends readonly string[]>(prefixes: Prefixes, overrides: Partial<Config> = {}): Promise<OperatorSuite<Prefixes>> {
  const admin = adminConfig();
  const operator = await startTestOperator(overrides);
  try {
    const namespaces = await Promise.all(prefixes.map((prefix) => createNamespace(admin, prefix)));
    return { admin, tasks: new TaskHelper(admin), operator, namespaces: namespaces as Namespaces<Prefixes> };
  } catch (err) {
    // The suite never received the operator, so its afterAll cannot stop it.
    await operator.stop();
    throw err;
  }
}
