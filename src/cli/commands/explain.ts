// `kubectl taskgrant explain TASK`: why a task has (or lacks) access — its intent, who asked, the
// Cedar decision with the text of the policies that determined it, the objects that hold the
// grant, the approvals, and the Events in order. Parts the caller may not read become warnings,
// so a user allowed to read only their tasks still gets an answer.
import { Command } from 'commander';
import type { TasksClient } from '../../kube/tasks-client.js';
import { targetNamespaces } from '../../api/index.js';
import { configMapSources, type PolicySource } from '../../policy/index.js';
import type { CommandContext } from '../context.js';
import { formatStructured } from '../format.js';
import { describeError } from '../io.js';
import { loadPolicies, resolvePolicyDir, type LoadedPolicies } from '../policies.js';
import { renderReport } from './explain-render.js';
import { DEFAULT_OPERATOR_NAMESPACE, buildReport } from './explain-report.js';

export { DEFAULT_OPERATOR_NAMESPACE, sortEvents, type ExplainReport } from './explain-report.js';

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
      const [approvals, events, grantObjects, policies, modes] = await Promise.all([
        optional(`TaskApprovals in namespace "${namespace}"`, warnings, () => client.listApprovals(namespace)),
        uid ? optional(`Events in namespace "${namespace}"`, warnings, () => client.listEvents(namespace, uid)) : Promise.resolve(undefined),
        uid ? optional('the grant objects', warnings, () => client.listGrantObjects([namespace, ...targetNamespaces(task), ...(task.status?.grant?.namespaces ?? [])], uid)) : Promise.resolve(undefined),
        gatherPolicies(client, resolvePolicyDir(options.policyDir), options.operatorNamespace, warnings),
        optional(`the operator's modes in namespace "${options.operatorNamespace}"`, warnings, () => client.readModes(options.operatorNamespace)),
      ]);
      const report = buildReport(
        {
          task,
          ...(approvals ? { approvals } : {}),
          ...(events ? { events } : {}),
          ...(grantObjects ? { grantObjects } : {}),
          ...(modes ? { modes } : {}),
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
