// `kubectl taskgrant check -f FILE`: would these tasks be granted? Offline (no cluster), with the
// operator's own loader and engine, so a team can gate a policy or a task manifest change in CI.
// Exit 0: every task allowed; 1: some task denied or awaiting approval; 2: something could not be
// checked (unreadable file, invalid task, policies that fail to load, an evaluation error).
import { readFile, readdir, stat } from 'node:fs/promises';
import { extname, join } from 'node:path';
import { Command, InvalidArgumentError } from 'commander';
import { parseAllDocuments } from 'yaml';
import { isRecord, AGENT_TASK_KIND, parseAgentTask, type AgentTask } from '../../api/index.js';
import { decisionResult, describeTuple, type Decision, type DecisionResult, type PolicyEngine } from '../../policy/index.js';
import type { CommandContext } from '../context.js';
import { NONE, formatStructured, formatTable, unreachable } from '../format.js';
import { CliError, EXIT_ERROR, EXIT_FAILURE, EXIT_OK, describeError, type CliIO } from '../io.js';
import { loadPolicies, resolvePolicyDir } from '../policies.js';

export interface CheckOptions {
  filename: string[];
  policyDir?: string;
  approved?: boolean;
  recentGrants: number;
  recentGrantSeconds: number;
  delegationDepth?: number;
}

export interface CheckedPermission {
  permission: string;
  outcome: string;
  determiningPolicies: string[];
  errors: string[];
}

export interface CheckedTask {
  namespace: string;
  name: string;
  source: string;
  result: DecisionResult;
  reason: string;
  determiningPolicies: string[];
  permissions: CheckedPermission[];
}

export interface CheckReport {
  policyDir: string;
  policyRevision: string;
  policyCount: number;
  results: CheckedTask[];
  /** Documents that could not be read or are not valid AgentTasks. */
  errors: string[];
}

interface SourcedTask {
  task: AgentTask;
  source: string;
}

const MANIFEST_EXTENSIONS = new Set(['.yaml', '.yml', '.json']);

/** The files `-f` names: a file, `-` for stdin, or every manifest directly inside a directory. */
async function expandPaths(paths: readonly string[]): Promise<string[]> {
  const out: string[] = [];
  for (const path of paths) {
    if (path === '-') {
      out.push(path);
      continue;
    }
    let isDir = false;
    try {
      isDir = (await stat(path)).isDirectory();
    } catch {
      // Left to readFile below, whose error names the path.
    }
    if (!isDir) {
      out.push(path);
      continue;
    }
    const names = (await readdir(path)).filter((n) => MANIFEST_EXTENSIONS.has(extname(n))).sort();
    out.push(...names.map((n) => join(path, n)));
  }
  return out;
}

async function readSource(path: string, io: CliIO): Promise<string> {
  if (path === '-') {
    if (!io.readStdin) throw new Error('reading standard input is not supported here');
    return io.readStdin();
  }
  return readFile(path, 'utf8');
}


/**
 * The AgentTasks in one file's documents, with the CRD defaults applied. Lists (`kubectl get -o
 * yaml` output) are flattened; other kinds are skipped, so a directory of mixed manifests works.
 * A task without a namespace gets `defaultNamespace`, as `kubectl apply` would give it one.
 */
export function tasksFromText(text: string, source: string, defaultNamespace: string): { tasks: SourcedTask[]; errors: string[] } {
  const tasks: SourcedTask[] = [];
  const errors: string[] = [];
  const docs = parseAllDocuments(text, { prettyErrors: false });
  if (!Array.isArray(docs)) return { tasks, errors };
  const visit = (value: unknown, where: string): void => {
    if (value === null || value === undefined) return;
    if (!isRecord(value)) {
      errors.push(`${where}: not a Kubernetes object`);
      return;
    }
    if (Array.isArray(value.items) && typeof value.kind === 'string' && value.kind.endsWith('List')) {
      value.items.forEach((item, i) => visit(item, `${where} item ${i + 1}`));
      return;
    }
    if (value.kind !== AGENT_TASK_KIND) return;
    const metadata = isRecord(value.metadata) ? value.metadata : {};
    const withNamespace = { ...value, metadata: { ...metadata, namespace: typeof metadata.namespace === 'string' && metadata.namespace !== '' ? metadata.namespace : defaultNamespace } };
    const parsed = parseAgentTask(withNamespace);
    const label = typeof metadata.name === 'string' ? `${where} (agenttask ${JSON.stringify(metadata.name)})` : where;
    if (parsed.ok) tasks.push({ task: parsed.value, source: where });
    else errors.push(`${label}: ${parsed.error}`);
  };
  docs.forEach((doc, i) => {
    const where = docs.length > 1 ? `${source} document ${i + 1}` : source;
    if (doc.errors.length > 0) {
      errors.push(`${where}: invalid YAML: ${doc.errors[0]?.message ?? 'parse error'}`);
      return;
    }
    visit(doc.toJS(), where);
  });
  return { tasks, errors };
}

/** The policy facts a task's own manifest cannot carry, from flags. */
function decide(engine: PolicyEngine, task: AgentTask, options: CheckOptions): Decision {
  return engine.evaluate({
    task,
    approved: options.approved === true,
    recentGrants: options.recentGrants,
    recentGrantSeconds: options.recentGrantSeconds,
    // Offline there is no parent to measure: a delegated task is assumed one level deep.
    delegationDepth: options.delegationDepth ?? (task.spec.parentTask ? 1 : 0),
  });
}

export function checkedTask({ task, source }: SourcedTask, decision: Decision): CheckedTask {
  const base = { namespace: task.metadata.namespace, name: task.metadata.name, source, result: decisionResult(decision) };
  switch (decision.type) {
    case 'allow':
      return { ...base, reason: 'every requested permission is allowed', determiningPolicies: decision.determiningPolicies, permissions: decision.tuples.map(checkedPermission) };
    case 'deny':
      return { ...base, reason: decision.reason, determiningPolicies: decision.determiningPolicies, permissions: decision.tuples.map(checkedPermission) };
    case 'error':
      return { ...base, reason: decision.reason, determiningPolicies: [], permissions: [] };
    default:
      return unreachable(decision);
  }
}

function checkedPermission(t: Extract<Decision, { type: 'allow' }>['tuples'][number]): CheckedPermission {
  return { permission: describeTuple(t.tuple), outcome: t.outcome, determiningPolicies: t.determiningPolicies, errors: t.errors };
}

export const RESULT_LABELS: Record<DecisionResult, string> = {
  allow: 'ALLOW',
  deny: 'DENY',
  approval_required: 'APPROVAL REQUIRED',
  error: 'ERROR',
};

export function exitCodeOf(report: CheckReport): number {
  if (report.errors.length > 0 || report.results.some((r) => r.result === 'error')) return EXIT_ERROR;
  if (report.results.some((r) => r.result !== 'allow')) return EXIT_FAILURE;
  return EXIT_OK;
}

export function renderCheckTable(report: CheckReport): string {
  const rows = report.results.map((r) => [`${r.namespace}/${r.name}`, RESULT_LABELS[r.result], r.determiningPolicies.join(',') || NONE, r.reason]);
  const count = (result: DecisionResult) => report.results.filter((r) => r.result === result).length;
  const tasks = `${report.results.length} task${report.results.length === 1 ? '' : 's'}`;
  const policies = `${report.policyCount} ${report.policyCount === 1 ? 'policy' : 'policies'}`;
  const summary =
    `${tasks} checked against ${policies} in ${report.policyDir} (revision ${report.policyRevision}): ` +
    `${count('allow')} allowed, ${count('deny')} denied, ${count('approval_required')} awaiting approval` +
    (count('error') > 0 ? `, ${count('error')} errored` : '') +
    (report.errors.length > 0 ? `; ${report.errors.length} ${report.errors.length === 1 ? 'document' : 'documents'} could not be checked` : '');
  return `${rows.length > 0 ? formatTable(['TASK', 'RESULT', 'POLICIES', 'REASON'], rows) : ''}${summary}\n`;
}

export async function runCheck(ctx: CommandContext, options: CheckOptions): Promise<number> {
  const policyDir = resolvePolicyDir(options.policyDir);
  const policies = await loadPolicies(policyDir);
  if (policies.type === 'rejected') {
    throw new CliError(`the policies in ${policyDir} failed to load: ${policies.errors.join('; ')}`, EXIT_ERROR);
  }
  const defaultNamespace = ctx.globals.namespace || 'default';
  const errors: string[] = [];
  const tasks: SourcedTask[] = [];
  for (const path of await expandPaths(options.filename)) {
    const source = path === '-' ? '<stdin>' : path;
    let text: string;
    try {
      text = await readSource(path, ctx.io);
    } catch (err) {
      errors.push(`${source}: ${describeError(err)}`);
      continue;
    }
    const found = tasksFromText(text, source, defaultNamespace);
    tasks.push(...found.tasks);
    errors.push(...found.errors);
  }
  if (tasks.length === 0 && errors.length === 0) errors.push(`no AgentTask found in ${options.filename.join(', ')}`);

  const report: CheckReport = {
    policyDir,
    policyRevision: policies.revision,
    policyCount: policies.policyCount,
    results: tasks.map((t) => checkedTask(t, decide(policies.engine, t.task, options))),
    errors,
  };
  const { output } = ctx.globals;
  if (output === 'table') ctx.out(renderCheckTable(report));
  else ctx.out(formatStructured(output, report));
  for (const e of errors) ctx.err(`Error: ${e}\n`);
  return exitCodeOf(report);
}

function nonNegativeInteger(value: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value) || !Number.isSafeInteger(n)) throw new InvalidArgumentError('must be a non-negative integer');
  return n;
}

export function checkCommand(ctx: CommandContext): Command {
  return new Command('check')
    .description('Evaluate AgentTask manifests against Cedar policies offline (no cluster); exit 0 if all are allowed, 1 if any is denied or needs approval, 2 on errors')
    .requiredOption('-f, --filename <file...>', 'AgentTask YAML/JSON files (several documents allowed), directories of them, or - for stdin')
    .option('--policy-dir <dir>', 'directory with schema.cedarschema and *.cedar (default: ./policies if present, else the policies shipped with taskgrant)')
    .option('--approved', 'evaluate as if a TaskApproval approved each task', false)
    .option('--recent-grants <n>', 'grants already issued to the same agent within the rate window', nonNegativeInteger, 0)
    .option('--recent-grant-seconds <n>', 'seconds of access already granted to the same agent within the rate window', nonNegativeInteger, 0)
    .option('--delegation-depth <n>', 'delegation depth of the tasks (default: 1 for a task with parentTask, else 0)', nonNegativeInteger)
    .action(async (options: CheckOptions) => {
      ctx.exitCode = await runCheck(ctx, options);
    });
}
