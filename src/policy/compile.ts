// Turns policy sources into one checked policy set — or into a list of reasons it was refused. All or nothing: one bad policy anywhere refuses the whole set, because
// silently dropping a forbid would widen access.
import { createHash } from 'node:crypto';
import { splitPolicies, validatePolicies, type CedarDiagnostic } from './cedar.js';
import type { PolicySource } from './sources.js';

export interface LoadedPolicy {
  /** The policy's `@id` annotation: what decisions, statuses and `explain` name it by. */
  id: string;
  origin: string;
  /** The policy as written, with the comment lines directly above it. */
  text: string;
  /** 1-based line of the policy in its source. */
  line: number;
}

export type CompileResult =
  | {
      type: 'compiled';
      revision: string;
      policies: ReadonlyMap<string, LoadedPolicy>;
      /** Cedar text by policy id, ready for preparePolicySet. */
      texts: Record<string, string>;
      warnings: string[];
    }
  | { type: 'rejected'; errors: string[] };

// Ids end up in AgentTask statuses and kubectl output; keep them to a readable, quotable alphabet.
const policyIdPattern = /^[A-Za-z0-9][A-Za-z0-9._:/-]{0,127}$/;

/** Short content hash naming a policy set: the same schema and sources always give the same revision. */
export function policyRevision(schemaText: string, sources: readonly PolicySource[]): string {
  // File origins are hashed by file name, not path: the same policies mounted at another path
  // (the chart's /etc/taskgrant/policies, a developer's checkout, the CLI) are the same revision.
  const origin = (s: PolicySource) => (s.origin.startsWith('file:') ? `file:${s.origin.split('/').at(-1) ?? ''}` : s.origin);
  const sorted = [...sources].sort((a, b) => compare(origin(a), origin(b)) || compare(a.text, b.text));
  const hash = createHash('sha256').update(JSON.stringify([schemaText, sorted.map((s) => [origin(s), s.text])]));
  return hash.digest('hex').slice(0, 12);
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Cedar reports UTF-8 byte offsets; JavaScript strings index UTF-16 code units. */
function byteToCharOffset(text: string, byteOffset: number): number {
  return Buffer.from(text, 'utf8').subarray(0, byteOffset).toString('utf8').length;
}

function lineAndColumn(text: string, charOffset: number): string {
  const before = text.slice(0, charOffset);
  const line = before.split('\n').length;
  const column = charOffset - before.lastIndexOf('\n');
  return `${line}:${column}`;
}

function describe(d: CedarDiagnostic): string {
  return d.help ? `${d.message} (${d.help})` : d.message;
}

/** Where the `//` lines directly above `start` begin: by convention they say what the policy protects. */
function commentStart(source: string, start: number): number {
  let at = start;
  for (;;) {
    const lineEnd = source.lastIndexOf('\n', at - 1);
    if (lineEnd < 0) return at;
    const lineStart = source.lastIndexOf('\n', lineEnd - 1) + 1;
    if (!source.slice(lineStart, lineEnd).trimStart().startsWith('//')) return at;
    at = lineStart;
  }
}

interface Located extends LoadedPolicy {
  /** Where Cedar's text for the policy starts in its source, as a UTF-16 offset. */
  offset: number;
  cedarText: string;
  sourceText: string;
}

export function compilePolicySet(schemaText: string, sources: readonly PolicySource[]): CompileResult {
  const errors: string[] = [];
  const byId = new Map<string, Located>();

  for (const source of sources) {
    const split = splitPolicies(source.text);
    if (split.type === 'error') {
      for (const d of split.errors) {
        const at = d.start !== undefined ? `:${lineAndColumn(source.text, byteToCharOffset(source.text, d.start))}` : '';
        errors.push(`${source.origin}${at}: ${describe(d)}`);
      }
      continue;
    }
    if (split.templateCount > 0) errors.push(`${source.origin}: policy templates are not supported; write static policies`);
    let cursor = 0;
    for (const [index, policy] of split.policies.entries()) {
      const found = source.text.indexOf(policy.text, cursor);
      const offset = found >= 0 ? found : 0;
      if (found >= 0) cursor = found + policy.text.length;
      const line = Number(lineAndColumn(source.text, offset).split(':')[0]);
      const where = `${source.origin}:${line}`;
      const id = policy.annotations.id;
      if (id === undefined) {
        errors.push(`${where}: policy #${index + 1} has no @id("...") annotation; every policy must be named so decisions can cite it`);
        continue;
      }
      if (!policyIdPattern.test(id)) {
        errors.push(`${where}: @id("${id}") must be 1..128 characters of letters, digits and . _ : / - starting with a letter or digit`);
        continue;
      }
      const other = byId.get(id);
      if (other) {
        errors.push(`${where}: duplicate @id("${id}"), also used at ${other.origin}:${other.line}`);
        continue;
      }
      const textStart = found >= 0 ? commentStart(source.text, found) : 0;
      const text = found >= 0 ? source.text.slice(textStart, cursor) : policy.text;
      byId.set(id, { id, origin: source.origin, text, line, offset, cedarText: policy.text, sourceText: source.text });
    }
  }
  if (errors.length === 0 && byId.size === 0) errors.push('the policy set holds no policies; refusing it rather than denying everything');
  if (errors.length > 0) return { type: 'rejected', errors };

  const texts = Object.fromEntries([...byId.values()].map((p) => [p.id, p.cedarText]));
  const where = (d: CedarDiagnostic): string => {
    const policy = d.policyId !== undefined ? byId.get(d.policyId) : undefined;
    if (!policy) return 'policy set';
    if (d.start === undefined) return `${policy.origin}:${policy.line}: policy "${policy.id}"`;
    const at = policy.offset + byteToCharOffset(policy.cedarText, d.start);
    return `${policy.origin}:${lineAndColumn(policy.sourceText, at)}: policy "${policy.id}"`;
  };

  const validation = validatePolicies(schemaText, texts);
  if (validation.type === 'error') {
    // Strict validation repeats one mistake once per action the policy applies to; one line each is enough.
    const seen = new Set<string>();
    for (const d of validation.errors) {
      const key = JSON.stringify([d.policyId, d.start, d.end]);
      if (seen.has(key)) continue;
      seen.add(key);
      errors.push(`${where(d)}: ${describe(d)}`);
    }
    return { type: 'rejected', errors };
  }

  const policies = new Map<string, LoadedPolicy>();
  for (const p of byId.values()) policies.set(p.id, { id: p.id, origin: p.origin, text: p.text, line: p.line });
  const warnings = [...new Set(validation.warnings.map((d) => `${where(d)}: ${describe(d)}`))];
  return { type: 'compiled', revision: policyRevision(schemaText, sources), policies, texts, warnings };
}
