// `kubectl taskgrant explain TASK`: why a task has (or lacks) access — its intent, who asked, the
// Cedar decision with the text of the policies that determined it, the objects that hold the
// grant, the approvals, and the Events in order. Parts the caller may not read become warnings,
// so a user allowed to read only their tasks still gets an answer.
import { Command } from 'commander';
import { ANNOTATION_REVOKE, DEFAULT_SENSITIVITY, DEFAULT_TTL, targetNamespaces, type AgentTask, type ApproverStatus, type PermissionRule, type Requester, type TaskApproval } from '../../api/index.js';
import type { EventObject, GrantObject, TasksClient } from '../../kube/tasks-client.js';
import { configMapSources, type PolicySource } from '../../policy/index.js';
import type { CommandContext } from '../context.js';
import { NONE, age, formatFields, formatRule, formatStructured, formatTable, indent, qualifiedResource, remainingTtl } from '../format.js';
import { describeError } from '../io.js';
import { loadPolicies, resolvePolicyDir, type LoadedPolicies } from '../policies.js';

export const DEFAULT_OPERATOR_NAMESPACE = 'taskgrant-system';

export interface ExplainedPolicy {
  id: string;
  /** `file:policies/baseline.cedar` or `configmap:taskgrant-system/x#y.cedar`. */
  origin?: string;
  /** The policy with the comment above it; absent when no loaded source defines this id. */
  text?: string;
}

export interface ExplainedApproval {
  name: string;
  decision: string;
  approver?: string;
  reason?: string;
  createdAt?: string;
  taskUID: string;
  /** False for an approval of an earlier task of the same name: the operator ignores it. */
  matchesTask: boolean;
}

export interface TimelineEntry {
  time?: string;
  type?: string;
  reason?: string;
  message?: string;
  count?: number;
  source?: string;
}

export interface ExplainReport {
  task: {
    namespace: string;
    name: string;
    uid?: string;
    agent: string;
    phase?: string;
    reason?: string;
    message?: string;
    createdAt?: string;
    parentTask?: string;
    revokeRequested?: string;
    revokedAt?: string;
  };
  intent: { objective: string; tools: string[]; sensitivity: string; ttl: string; permissions: PermissionRule[] };
  requester?: Requester;
  decision?: { allowed: boolean; evaluatedAt: string; policyRevision: string; errors: string[]; determiningPolicies: ExplainedPolicy[] };
  approval?: ApproverStatus;
  grant?: { serviceAccount: string; role: string; roleBinding: string; namespaces: string[]; issuedAt: string; expiresAt: string; remaining: string; pods: string[] };
  /** What exists in the cluster now, found by the task-uid label (none once the task is over). */
  grantObjects?: GrantObject[];
  approvals?: ExplainedApproval[];
  timeline?: TimelineEntry[];
  policies: { dir: string; revision?: string; configMaps: string[] };
  warnings: string[];
}

interface Gathered {
  task: AgentTask;
  approvals?: TaskApproval[];
  events?: EventObject[];
  grantObjects?: GrantObject[];
  policies: LoadedPolicies;
  configMaps: string[];
  warnings: string[];
}

const time = (e: EventObject) => e.eventTime || e.lastTimestamp || e.firstTimestamp || (e.metadata.creationTimestamp as string | undefined) || '';

/**
 * Events oldest first. Event timestamps have one-second resolution, so events of the same second
 * are ordered by resourceVersion: the API server assigns it in write order (etcd's revision).
 */
export function sortEvents(events: readonly EventObject[]): EventObject[] {
  const rv = (e: EventObject) => {
    const n = Number(e.metadata.resourceVersion);
    return Number.isFinite(n) ? n : 0;
  };
  return [...events].sort((a, b) => Date.parse(time(a)) - Date.parse(time(b)) || rv(a) - rv(b));
}

export function buildReport(g: Gathered, now: number): ExplainReport {
  const { task } = g;
  const status = task.status;
  const decision = status?.decision;
  const policy = (id: string): ExplainedPolicy => {
    if (g.policies.type !== 'loaded') return { id };
    const loaded = g.policies.engine.policy(id);
    return loaded ? { id, origin: loaded.origin, text: loaded.text } : { id };
  };
  const grant = status?.grant;
  const revoke = task.metadata.annotations?.[ANNOTATION_REVOKE];
  return {
    task: {
      namespace: task.metadata.namespace,
      name: task.metadata.name,
      ...(task.metadata.uid ? { uid: task.metadata.uid } : {}),
      agent: task.spec.agent,
      ...(status?.phase ? { phase: status.phase } : {}),
      ...(status?.reason ? { reason: status.reason } : {}),
      ...(status?.message ? { message: status.message } : {}),
      ...(task.metadata.creationTimestamp ? { createdAt: task.metadata.creationTimestamp } : {}),
      ...(task.spec.parentTask ? { parentTask: task.spec.parentTask } : {}),
      ...(revoke !== undefined ? { revokeRequested: revoke } : {}),
      ...(status?.revokedAt ? { revokedAt: status.revokedAt } : {}),
    },
    intent: {
      objective: task.spec.intent.objective,
      tools: task.spec.intent.tools ?? [],
      sensitivity: task.spec.intent.sensitivity ?? DEFAULT_SENSITIVITY,
      ttl: task.spec.ttl ?? DEFAULT_TTL,
      permissions: task.spec.intent.permissions,
    },
    ...(task.spec.requester && Object.keys(task.spec.requester).length > 0 ? { requester: task.spec.requester } : {}),
    ...(decision
      ? {
          decision: {
            allowed: decision.allowed,
            evaluatedAt: decision.evaluatedAt,
            policyRevision: decision.policyRevision,
            errors: decision.errors ?? [],
            determiningPolicies: (decision.determiningPolicies ?? []).map(policy),
          },
        }
      : {}),
    ...(status?.approval ? { approval: status.approval } : {}),
    ...(grant
      ? {
          grant: {
            serviceAccount: grant.serviceAccount,
            role: grant.role,
            roleBinding: grant.roleBinding,
            namespaces: grant.namespaces ?? [task.metadata.namespace],
            issuedAt: grant.issuedAt,
            expiresAt: grant.expiresAt,
            remaining: remainingTtl(task, now),
            pods: grant.pods ?? [],
          },
        }
      : {}),
    ...(g.grantObjects ? { grantObjects: g.grantObjects } : {}),
    ...(g.approvals
      ? {
          approvals: g.approvals
            .filter((a) => a.spec.task === task.metadata.name)
            .sort((a, b) => (a.metadata.creationTimestamp ?? '').localeCompare(b.metadata.creationTimestamp ?? '') || a.metadata.name.localeCompare(b.metadata.name))
            .map((a) => ({
              name: a.metadata.name,
              decision: a.spec.decision,
              ...(a.spec.approver?.username ? { approver: a.spec.approver.username } : {}),
              ...(a.spec.reason ? { reason: a.spec.reason } : {}),
              ...(a.metadata.creationTimestamp ? { createdAt: a.metadata.creationTimestamp } : {}),
              taskUID: a.spec.taskUID,
              matchesTask: a.spec.taskUID === task.metadata.uid,
            })),
        }
      : {}),
    ...(g.events
      ? {
          timeline: sortEvents(g.events).map((e) => ({
            time: time(e),
            ...(e.type ? { type: e.type } : {}),
            ...(e.reason ? { reason: e.reason } : {}),
            ...(e.message ? { message: e.message } : {}),
            ...(e.count ? { count: e.count } : {}),
            ...(e.reportingComponent || e.source?.component ? { source: e.reportingComponent || e.source?.component } : {}),
          })),
        }
      : {}),
    policies: { dir: g.policies.dir, ...(g.policies.type === 'loaded' ? { revision: g.policies.revision } : {}), configMaps: g.configMaps },
    warnings: g.warnings,
  };
}

const orNone = (v: string | undefined) => (v === undefined || v === '' ? NONE : v);

function section(title: string, body: string): string {
  return `${title}:\n${body.endsWith('\n') || body === '' ? body : `${body}\n`}`;
}

export function renderReport(r: ExplainReport, now: number): string {
  const out: string[] = [];
  const t = r.task;
  out.push(
    formatFields([
      ['Name', t.name],
      ['Namespace', t.namespace],
      ['UID', orNone(t.uid)],
      ['Agent', t.agent],
      ['Phase', t.phase ? `${t.phase}${t.reason ? ` (${t.reason})` : ''}` : `${NONE} (not yet seen by the operator)`],
      ['Message', orNone(t.message)],
      ['Created', t.createdAt ? `${t.createdAt} (${age(t.createdAt, now)} ago)` : NONE],
      ...(t.parentTask ? ([['Parent task', t.parentTask]] as const) : []),
      ...(t.revokeRequested !== undefined ? ([['Revoke requested', JSON.stringify(t.revokeRequested)]] as const) : []),
      ...(t.revokedAt ? ([['Revoked at', t.revokedAt]] as const) : []),
    ]),
  );

  const i = r.intent;
  const perms = formatTable(
    ['VERBS', 'RESOURCES', 'NAMES', 'NAMESPACE'],
    i.permissions.map((p) => [
      p.verbs.join(','),
      p.apiGroups.flatMap((g) => p.resources.map((res) => qualifiedResource(g, res))).join(','),
      p.resourceNames && p.resourceNames.length > 0 ? p.resourceNames.join(',') : NONE,
      p.namespace || t.namespace,
    ]),
  );
  out.push(
    section(
      'Intent',
      formatFields(
        [
          ['Objective', i.objective],
          ['Tools', i.tools.length > 0 ? i.tools.join(', ') : NONE],
          ['Sensitivity', i.sensitivity],
          ['TTL', i.ttl],
          ['Permissions', ''],
        ],
        2,
      ) + indent(perms, 4),
    ),
  );

  const q = r.requester;
  out.push(
    section(
      'Requester',
      q
        ? formatFields(
            [
              ['User', orNone(q.username)],
              ['Groups', q.groups && q.groups.length > 0 ? q.groups.join(', ') : NONE],
              ...(q.podName ? ([['Pod', q.podName]] as const) : []),
            ],
            2,
          )
        : `  ${NONE} (not stamped: the admission webhook was not running when the task was created)\n`,
    ),
  );

  const d = r.decision;
  if (!d) out.push(section('Decision', `  ${NONE} (no decision recorded yet)\n`));
  else {
    const policies = d.determiningPolicies
      .map((p) => {
        const head = `  ${p.id}${p.origin ? `  (${p.origin})` : ''}\n`;
        const body = p.text ? indent(p.text.trimEnd(), 4) : `    (text not found in ${r.policies.dir} or the policy ConfigMaps: the operator may run a different policy set)`;
        return `${head}${body}\n`;
      })
      .join('\n');
    out.push(
      section(
        'Decision',
        formatFields(
          [
            ['Allowed', String(d.allowed)],
            ['Evaluated', d.evaluatedAt],
            ['Policy revision', d.policyRevision],
            ...(d.errors.length > 0 ? ([['Errors', d.errors.join('; ')]] as const) : []),
            ['Determining policies', d.determiningPolicies.length > 0 ? '' : NONE],
          ],
          2,
        ) + indent(policies, 2),
      ),
    );
  }

  if (r.approval) {
    const a = r.approval;
    out.push(
      section(
        'Approved by',
        formatFields(
          [
            ['User', orNone(a.username)],
            ['Reason', orNone(a.reason)],
            ['At', orNone(a.approvedAt)],
            ['TaskApproval', orNone(a.approval)],
          ],
          2,
        ),
      ),
    );
  }

  const g = r.grant;
  const objects = r.grantObjects;
  const objectTable =
    objects === undefined
      ? '  (not readable)\n'
      : objects.length === 0
        ? `  ${NONE} (no ServiceAccount, Role or RoleBinding of this task exists)\n`
        : indent(
            formatTable(
              ['KIND', 'NAMESPACE', 'NAME', 'RULES'],
              objects.map((o) => [
                o.kind,
                o.namespace,
                o.name,
                o.rules ? o.rules.map((rule) => formatRule({ ...rule, resourceNames: rule.resourceNames ?? [] }, o.namespace)).join('; ') || NONE : NONE,
              ]),
            ),
            4,
          );
  out.push(
    section(
      'Grant',
      (g
        ? formatFields(
            [
              ['ServiceAccount', `${t.namespace}/${g.serviceAccount}`],
              ['Namespaces', g.namespaces.join(', ')],
              ['Issued', g.issuedAt],
              ['Expires', `${g.expiresAt}${g.remaining !== NONE ? ` (in ${g.remaining})` : ''}`],
              ['Pods', g.pods.length > 0 ? g.pods.join(', ') : NONE],
              ['Objects', ''],
            ],
            2,
          )
        : formatFields([['Objects', '']], 2)) + objectTable,
    ),
  );

  const approvals = r.approvals;
  out.push(
    section(
      'Approvals',
      approvals === undefined
        ? '  (not readable)\n'
        : approvals.length === 0
          ? `  ${NONE}\n`
          : indent(
              formatTable(
                ['NAME', 'DECISION', 'APPROVER', 'REASON', 'TASK UID', 'AGE'],
                approvals.map((a) => [a.name, a.decision, a.approver ?? '(not stamped)', orNone(a.reason), a.matchesTask ? 'matches' : `stale (${a.taskUID})`, age(a.createdAt, now)]),
              ),
              2,
            ),
    ),
  );

  const timeline = r.timeline;
  out.push(
    section(
      'Timeline',
      timeline === undefined
        ? '  (not readable)\n'
        : timeline.length === 0
          ? `  ${NONE}\n`
          : indent(
              formatTable(
                ['TIME', 'TYPE', 'REASON', 'MESSAGE'],
                timeline.map((e) => [orNone(e.time), orNone(e.type), orNone(e.reason), `${e.message ?? ''}${e.count && e.count > 1 ? ` (x${e.count})` : ''}`]),
              ),
              2,
            ),
    ),
  );

  const sources = `${r.policies.dir}${r.policies.configMaps.length > 0 ? ` + configmaps ${r.policies.configMaps.join(', ')}` : ''}`;
  out.push(`Policy text from: ${sources}${r.policies.revision ? ` (local revision ${r.policies.revision})` : ''}\n`);
  return out.join('\n');
}

/** Runs `read`; a refusal (403, a missing CRD, a network error) becomes a warning and undefined. */
async function optional<T>(what: string, warnings: string[], read: () => Promise<T>): Promise<T | undefined> {
  try {
    return await read();
  } catch (err) {
    warnings.push(`could not read ${what}: ${describeError(err)}`);
    return undefined;
  }
}

/**
 * The policy set as the operator would assemble it: the directory plus the labelled ConfigMaps.
 * When that set does not load (the operator would keep its previous one), the directory alone is
 * still a good source for the text of the default policies.
 */
async function gatherPolicies(client: TasksClient, dir: string, operatorNamespace: string, warnings: string[]): Promise<{ policies: LoadedPolicies; configMaps: string[] }> {
  const maps = await optional(`policy ConfigMaps in namespace "${operatorNamespace}"`, warnings, () => client.listPolicyConfigMaps(operatorNamespace));
  const extra: PolicySource[] = (maps ?? []).flatMap((cm) => configMapSources(cm.metadata.namespace ?? operatorNamespace, cm.metadata.name, cm.data));
  const names = (maps ?? []).map((cm) => `${cm.metadata.namespace ?? operatorNamespace}/${cm.metadata.name}`).sort();
  if (extra.length > 0) {
    const combined = await loadPolicies(dir, extra);
    if (combined.type === 'loaded') return { policies: combined, configMaps: names };
    warnings.push(`the policies of ${dir} with the ConfigMaps did not load (${combined.errors.join('; ')}); showing ${dir} only`);
  }
  const local = await loadPolicies(dir);
  if (local.type === 'rejected') warnings.push(`the policies in ${dir} did not load, so policy text is not shown: ${local.errors.join('; ')}`);
  return { policies: local, configMaps: extra.length > 0 ? [] : names };
}

export function explainCommand(ctx: CommandContext): Command {
  return new Command('explain')
    .alias('describe')
    .description('Show why a task has or lacks access: intent, requester, decision with policy text, grant objects, approvals, timeline')
    .argument('<task>', 'name of the AgentTask')
    .option('--policy-dir <dir>', 'where to read the text of determining policies (default: ./policies if present, else the policies shipped with taskgrant)')
    .option('--operator-namespace <ns>', 'namespace of the operator, whose labelled ConfigMaps hold extra policies', DEFAULT_OPERATOR_NAMESPACE)
    .action(async (name: string, options: { policyDir?: string; operatorNamespace: string }) => {
      const { namespace, client, task } = await ctx.existingTask(name);
      const warnings: string[] = [];
      const uid = task.metadata.uid ?? '';
      const [approvals, events, grantObjects, policies] = await Promise.all([
        optional(`TaskApprovals in namespace "${namespace}"`, warnings, () => client.listApprovals(namespace)),
        uid ? optional(`Events in namespace "${namespace}"`, warnings, () => client.listEvents(namespace, uid)) : Promise.resolve(undefined),
        uid ? optional('the grant objects', warnings, () => client.listGrantObjects([namespace, ...targetNamespaces(task), ...(task.status?.grant?.namespaces ?? [])], uid)) : Promise.resolve(undefined),
        gatherPolicies(client, resolvePolicyDir(options.policyDir), options.operatorNamespace, warnings),
      ]);
      const report = buildReport(
        {
          task,
          ...(approvals ? { approvals } : {}),
          ...(events ? { events } : {}),
          ...(grantObjects ? { grantObjects } : {}),
          policies: policies.policies,
          configMaps: policies.configMaps,
          warnings,
        },
        ctx.now(),
      );
      const { output } = ctx.globals;
      if (output === 'table') {
        ctx.out(renderReport(report, ctx.now()));
        for (const w of warnings) ctx.err(`Warning: ${w}\n`);
      } else {
        ctx.out(formatStructured(output, report));
      }
    });
}
