// How the plugin prints: kubectl-style tables, short durations, one-line permission summaries,
// and JSON / YAML for scripts.
import { stringify } from 'yaml';
import { isLive, ruleNamespace, type AgentTask, type PermissionRule } from '../api/index.js';

export const OUTPUT_FORMATS = ['table', 'json', 'yaml'] as const;
export type OutputFormat = (typeof OUTPUT_FORMATS)[number];

// Terminal escapes, invisible and bidirectional-override characters: printed raw they could
// rewrite or hide what an approver reads (the CRD refuses them in a task's spec; names, messages
// and usernames from elsewhere may still carry them).
const UNPRINTABLE = /[\x00-\x08\x0B-\x1F\x7F-\x9F\u061C\u200B-\u200F\u202A-\u202E\u2060-\u2064\u2066-\u2069\uFEFF]/g;

/** Every character that could act on the terminal, shown as its `\uXXXX` escape instead. */
export function printable(text: string): string {
  return text.replace(UNPRINTABLE, (c) => `\\u${c.charCodeAt(0).toString(16).toUpperCase().padStart(4, '0')}`);
}

/** Printed for a value that does not apply, as kubectl's printer columns do with `<none>`, shorter. */
export const NONE = '-';

// Columns are measured in code points, not UTF-16 units, so an objective with an emoji or a
// non-Latin name does not push the rest of its row out of line.
const width = (s: string): number => [...s].length;

/**
 * Left-aligned columns separated by three spaces, like `kubectl get`. The last column is not
 * padded, so no line ends in spaces. Cell text is flattened to one line: a table row is a row.
 */
export function formatTable(headers: readonly string[], rows: ReadonlyArray<readonly string[]>): string {
  const clean = (cell: string | undefined) => (cell ?? '').replace(/\s*[\r\n]+\s*/g, ' ');
  const all = [headers.map(clean), ...rows.map((r) => headers.map((_, i) => clean(r[i])))];
  const widths = headers.map((_, i) => Math.max(...all.map((r) => width(r[i] ?? ''))));
  return all
    .map((r) =>
      r
        .map((cell, i) => (i === r.length - 1 ? cell : cell + ' '.repeat((widths[i] ?? 0) - width(cell))))
        .join('   ')
        .trimEnd(),
    )
    .map((line) => `${line}\n`)
    .join('');
}

/**
 * A span for a human: `45s`, `14m32s` below an hour (the seconds matter when a grant is about to
 * end), `3h5m` below two days, then `3d4h`. Negative spans read as `0s`.
 */
export function formatSpan(ms: number): string {
  const s = Math.max(0, Math.floor(ms / 1000));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${pad(s % 60, 's')}`;
  if (s < 48 * 3600) return `${Math.floor(s / 3600)}h${pad(Math.floor((s % 3600) / 60), 'm')}`;
  return `${Math.floor(s / 86400)}d${pad(Math.floor((s % 86400) / 3600), 'h')}`;
}

function pad(n: number, unit: string): string {
  return n === 0 ? '' : `${n}${unit}`;
}

/** Time left on a live grant, or `-` when the task holds none (not granted yet, or over). */
export function remainingTtl(task: AgentTask, now: number): string {
  const expiresAt = Date.parse(task.status?.grant?.expiresAt ?? '');
  if (!isLive(task.status?.phase) || !Number.isFinite(expiresAt)) return NONE;
  return formatSpan(expiresAt - now);
}

/** `5m`: how long ago a timestamp was, as kubectl's AGE column shows it. */
export function age(timestamp: string | undefined, now: number): string {
  const at = Date.parse(timestamp ?? '');
  return Number.isFinite(at) ? formatSpan(now - at) : NONE;
}

/** `pods`, `deployments.apps`, `deployments.apps/scale`: a resource as kubectl users name it. */
export function qualifiedResource(apiGroup: string, resource: string): string {
  if (apiGroup === '') return resource;
  const slash = resource.indexOf('/');
  return slash < 0 ? `${resource}.${apiGroup}` : `${resource.slice(0, slash)}.${apiGroup}${resource.slice(slash)}`;
}

/**
 * One rule on one line: `get,list pods,pods/log`, `get secrets(db,api)`,
 * `get configmaps in team-b` (the namespace only when it is not the task's own).
 */
export function formatRule(rule: PermissionRule, taskNamespace: string): string {
  const resources = rule.apiGroups.flatMap((g) => rule.resources.map((r) => qualifiedResource(g, r)));
  const names = rule.resourceNames && rule.resourceNames.length > 0 ? `(${rule.resourceNames.join(',')})` : '';
  const ns = ruleNamespace(rule, taskNamespace);
  return `${rule.verbs.join(',')} ${resources.join(',')}${names}${ns === taskNamespace ? '' : ` in ${ns}`}`;
}

/** Every rule of a task on one line: `get,list pods; get pods/log`. */
export function summarizePermissions(task: Pick<AgentTask, 'spec' | 'metadata'>): string {
  const rules = task.spec?.intent?.permissions ?? [];
  return rules.length === 0 ? NONE : rules.map((r) => formatRule(r, task.metadata.namespace)).join('; ');
}

/** `json` as kubectl prints it (two-space indent, trailing newline); `yaml` as one document. */
export function formatStructured(format: Exclude<OutputFormat, 'table'>, value: unknown): string {
  switch (format) {
    case 'json':
      return `${JSON.stringify(value, null, 2)}\n`;
    case 'yaml':
      return stringify(value, { lineWidth: 0 });
    default:
      return unreachable(format);
  }
}

/** `key: value` lines with the values aligned, indented by `indent` spaces (kubectl describe). */
export function formatFields(fields: ReadonlyArray<readonly [string, string]>, indent = 0): string {
  const keyWidth = Math.max(0, ...fields.map(([k]) => width(k) + 1));
  const prefix = ' '.repeat(indent);
  return fields.map(([k, v]) => `${prefix}${`${k}:`.padEnd(keyWidth)}  ${v}`.trimEnd() + '\n').join('');
}

/** Indents every non-empty line of `text` by `n` spaces. */
export function indent(text: string, n: number): string {
  const prefix = ' '.repeat(n);
  return text
    .split('\n')
    .map((line) => (line.length > 0 ? prefix + line : line))
    .join('\n');
}

export function unreachable(value: never): never {
  throw new Error(`unexpected value ${JSON.stringify(value)}`);
}
