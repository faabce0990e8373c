// What the kubectl plugin reads and writes, as one-shot JSON calls (no informers: a CLI run lives
// for one request or a handful). Credentials are resolved the way kubectl resolves them.
import * as k8s from '@kubernetes/client-node';
import { LABEL_POLICY, LABEL_TASK_UID, MODES_CONFIGMAP, type AgentTask, type TaskApproval } from '../api/index.js';
import { KubeApi, paths } from './api.js';
import type { KubeObject } from './informer.js';
import type { ConfigMapObject, ManagedKind, PolicyRuleObject, RoleBindingObject, RoleObject, ServiceAccountObject } from './objects.js';

export interface KubeconfigOptions {
  /** Path of a kubeconfig file; else KUBECONFIG, ~/.kube/config, then the in-cluster ServiceAccount. */
  kubeconfig?: string;
  /** A context of the kubeconfig to use instead of its current-context. */
  context?: string;
}

export interface CliConnection {
  client: TasksClient;
  /** The context's namespace, or `default`: where kubectl would look without `-n`. */
  namespace: string;
  server: string;
}

export function connect(options: KubeconfigOptions): CliConnection {
  const kc = new k8s.KubeConfig();
  try {
    if (options.kubeconfig) kc.loadFromFile(options.kubeconfig);
    else kc.loadFromDefault();
  } catch (cause) {
    throw new Error(`reading the kubeconfig ${options.kubeconfig ?? process.env.KUBECONFIG ?? '~/.kube/config'}`, { cause });
  }
  if (options.context) {
    if (!kc.getContextObject(options.context)) throw new Error(`context "${options.context}" not found in the kubeconfig`);
    kc.setCurrentContext(options.context);
  }
  const cluster = kc.getCurrentCluster();
  // Finding no kubeconfig and no ServiceAccount, client-node settles for http://localhost:8080 as
  // "loaded-context", then refuses plain HTTP at the first request: say what is missing instead.
  if (!options.kubeconfig && kc.getCurrentContext() === 'loaded-context' && cluster?.server === 'http://localhost:8080') {
    throw new Error('no kubeconfig found (pass --kubeconfig, set KUBECONFIG or create ~/.kube/config)');
  }
  if (!cluster) throw new Error('no Kubernetes cluster configured (set --kubeconfig, --context or KUBECONFIG)');
  const namespace = kc.getContextObject(kc.getCurrentContext())?.namespace || 'default';
  return { client: new TasksClient(new KubeApi(kc)), namespace, server: cluster.server };
}

export interface EventObject extends KubeObject {
  involvedObject?: { kind?: string; name?: string; namespace?: string; uid?: string };
  reason?: string;
  message?: string;
  type?: string;
  count?: number;
  firstTimestamp?: string | null;
  lastTimestamp?: string | null;
  eventTime?: string | null;
  source?: { component?: string };
  reportingComponent?: string;
}

export interface GrantObject {
  kind: ManagedKind;
  namespace: string;
  name: string;
  /** A Role's rules; a RoleBinding's role and subjects are implied by the grant's naming. */
  rules?: PolicyRuleObject[];
}

interface List<T> {
  items?: T[];
}

function query(params: Record<string, string | undefined>): string {
  const parts = Object.entries(params)
    .filter((e): e is [string, string] => e[1] !== undefined && e[1] !== '')
    .map(([k, v]) => `${k}=${encodeURIComponent(v)}`);
  return parts.length > 0 ? `?${parts.join('&')}` : '';
}

export class TasksClient {
  constructor(readonly api: KubeApi) {}

  /** Every AgentTask in `namespace`, or in all namespaces when it is undefined. */
  async listTasks(namespace: string | undefined, labelSelector?: string): Promise<AgentTask[]> {
    const list = await this.api.get<List<AgentTask>>(`${paths.agentTasks(namespace)}${query({ labelSelector })}`);
    return list.items ?? [];
  }

  /** The task, or undefined when it does not exist. */
  getTask(namespace: string, name: string): Promise<AgentTask | undefined> {
    return this.api.find<AgentTask>(paths.agentTask(namespace, encodeURIComponent(name)));
  }

  async annotateTask(namespace: string, name: string, annotations: Record<string, string>): Promise<AgentTask> {
    return this.api.patch<AgentTask>(paths.agentTask(namespace, encodeURIComponent(name)), { metadata: { annotations } }, 'merge');
  }

  async listApprovals(namespace: string): Promise<TaskApproval[]> {
    const list = await this.api.get<List<TaskApproval>>(paths.taskApprovals(namespace));
    return list.items ?? [];
  }

  async createApproval(approval: TaskApproval): Promise<TaskApproval> {
    return this.api.create<TaskApproval>(paths.taskApprovals(approval.metadata.namespace), approval);
  }

  /** Events about the object with this uid (any name it had), in its namespace. */
  async listEvents(namespace: string, uid: string): Promise<EventObject[]> {
    const list = await this.api.get<List<EventObject>>(`${paths.events(namespace)}${query({ fieldSelector: `involvedObject.uid=${uid}` })}`);
    return list.items ?? [];
  }

  /** The modes the operator published (kube/modes.ts), or undefined when it has not. */
  async readModes(operatorNamespace: string): Promise<Record<string, string> | undefined> {
    const cm = await this.api.find<ConfigMapObject>(`${paths.configMaps(operatorNamespace)}/${MODES_CONFIGMAP}`);
    return cm?.data;
  }

  /** The ConfigMaps whose `.cedar` keys the operator adds to its policy set. */
  async listPolicyConfigMaps(operatorNamespace: string): Promise<ConfigMapObject[]> {
    const list = await this.api.get<List<ConfigMapObject>>(`${paths.configMaps(operatorNamespace)}${query({ labelSelector: `${LABEL_POLICY}=true` })}`);
    return list.items ?? [];
  }

  /**
   * The ServiceAccount, Roles and RoleBindings labelled with the task's uid in `namespaces`.
   * Listed per namespace rather than cluster-wide so that a user who may only read their own
   * namespaces can still see their grant.
   */
  async listGrantObjects(namespaces: readonly string[], taskUid: string): Promise<GrantObject[]> {
    const q = query({ labelSelector: `${LABEL_TASK_UID}=${taskUid}` });
    const perNamespace = await Promise.all(
      [...new Set(namespaces)].sort().map(async (ns) => {
        const [sas, roles, bindings] = await Promise.all([
          this.api.get<List<ServiceAccountObject>>(`${paths.serviceAccounts(ns)}${q}`),
          this.api.get<List<RoleObject>>(`${paths.roles(ns)}${q}`),
          this.api.get<List<RoleBindingObject>>(`${paths.roleBindings(ns)}${q}`),
        ]);
        return [
          ...(sas.items ?? []).map((o): GrantObject => ({ kind: 'ServiceAccount', namespace: ns, name: o.metadata.name })),
          ...(roles.items ?? []).map((o): GrantObject => ({ kind: 'Role', namespace: ns, name: o.metadata.name, rules: o.rules ?? [] })),
          ...(bindings.items ?? []).map((o): GrantObject => ({ kind: 'RoleBinding', namespace: ns, name: o.metadata.name })),
        ];
      }),
    );
    return perNamespace.flat();
  }
}
