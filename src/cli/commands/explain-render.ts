// The explain report as text: sections a reviewer reads top to bottom, every value they did not
// write printed safely (see format.ts).
import { NONE, age, formatFields, formatRule, formatTable, indent, qualifiedResource } from '../format.js';
import type { ExplainReport } from './explain-report.js';

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
      [
        'Enforcement',
        r.modes
          ? `task pods admitted by ${r.modes.admission === 'policy' ? 'policy inside the API server' : 'the webhook'}; ${r.modes.authorization === 'request-time' ? 'every request decided by taskgrant, then RBAC' : 'RBAC only (decided at grant time)'}`
          : `${NONE} (the operator has not published its modes)`,
      ],
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

  // The least-privilege hint: what the grant held that the agent never used.
  const u = r.usage;
  out.push(
    section(
      'Usage',
      u
        ? formatFields(
            [
              ['Requests', String(u.requests)],
              ['Refused', String(u.denied)],
              ['Counted at', u.updatedAt ?? NONE],
              ['Never used', (u.unusedPermissions ?? []).length > 0 ? (u.unusedPermissions ?? []).join('; ') : 'every granted permission was used'],
            ],
            2,
          )
        : `  ${NONE} (no request counted: the request-time authorizer is not in force, or the agent made no call)\n`,
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
