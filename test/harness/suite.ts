// What every suite that runs the operator in-process starts with: the admin client, the task
// helper, a running operator and namespaces of its own. Suites keep module-level bindings (their
// tests read them everywhere) and fill them from this in beforeAll; afterAll stops the operator.
import type * as k8s from '@kubernetes/client-node';
import type { Config } from '../../src/config.js';
import { adminConfig, createNamespace } from './kube.js';
import { startTestOperator, type TestOperator } from './operator.js';
import { TaskHelper } from './tasks.js';

export interface OperatorSuite<Prefixes extends readonly string[]> {
  admin: k8s.KubeConfig;
  tasks: TaskHelper;
  operator: TestOperator;
  /** One new namespace per prefix asked for, in the same order. */
  namespaces: { [K in keyof Prefixes]: string };
}

export async function startOperatorSuite<const Prefixes extends readonly string[]>(prefixes: Prefixes, overrides: Partial<Config> = {}): Promise<OperatorSuite<Prefixes>> {
  const admin = adminConfig();
  const operator = await startTestOperator(overrides);
  try {
    const namespaces = await Promise.all(prefixes.map((prefix) => createNamespace(admin, prefix)));
    return { admin, tasks: new TaskHelper(admin), operator, namespaces: namespaces as { [K in keyof Prefixes]: string } };
  } catch (err) {
    // The suite never received the operator, so its afterAll cannot stop it.
    await operator.stop();
    throw err;
  }
}
