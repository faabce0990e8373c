// Where policy text comes from. Every policy keeps its origin so a rejected set names the file
// or ConfigMap key to fix, and `explain` can say where a determining policy lives.
import { readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';

export interface PolicySource {
  /** `file:policies/rbac.cedar` or `configmap:taskgrant-system/team-x#extra.cedar`. */
  origin: string;
  text: string;
}

export interface PolicyDir {
  schemaText: string;
  sources: PolicySource[];
}

/**
 * Two families of policy share the directory and the ConfigMaps. `grant`: decided once per task,
 * per requested permission (schema.cedarschema, *.cedar). `runtime`: decided per API request of a
 * task identity by the request-time authorizer (runtime.cedarschema, *.runtime.cedar).
 */
export type PolicyFamily = 'grant' | 'runtime';

export const SCHEMA_FILE = 'schema.cedarschema';
export const RUNTIME_SCHEMA_FILE = 'runtime.cedarschema';
export const POLICY_SUFFIX = '.cedar';
export const RUNTIME_POLICY_SUFFIX = '.runtime.cedar';

export function schemaFile(family: PolicyFamily): string {
  return family === 'grant' ? SCHEMA_FILE : RUNTIME_SCHEMA_FILE;
}

/** Whether a file or ConfigMap key holds policies of `family`. */
export function isPolicyName(name: string, family: PolicyFamily): boolean {
  const runtime = name.endsWith(RUNTIME_POLICY_SUFFIX);
  return family === 'runtime' ? runtime : name.endsWith(POLICY_SUFFIX) && !runtime;
}

/**
 * Reads the schema and every policy file of one family in `dir`, sorted by name. Not recursive:
 * `policies/tests/` holds the tests of the default policies, not policies.
 */
export async function readPolicyDir(dir: string, family: PolicyFamily = 'grant'): Promise<PolicyDir> {
  const schemaPath = join(dir, schemaFile(family));
  let schemaText: string;
  try {
    schemaText = await readFile(schemaPath, 'utf8');
  } catch (cause) {
    throw new Error(`reading the Cedar schema ${schemaPath}`, { cause });
  }
  let entries;
  try {
    entries = await readdir(dir, { withFileTypes: true });
  } catch (cause) {
    throw new Error(`listing the policy directory ${dir}`, { cause });
  }
  // A ConfigMap volume (the chart mounts the default policies so) presents every key as a symlink
  // into its ..data directory; readFile follows it.
  const names = entries.filter((e) => (e.isFile() || e.isSymbolicLink()) && isPolicyName(e.name, family)).map((e) => e.name).sort();
  const sources: PolicySource[] = [];
  for (const name of names) {
    const path = join(dir, name);
    try {
      sources.push({ origin: `file:${path}`, text: await readFile(path, 'utf8') });
    } catch (cause) {
      throw new Error(`reading the policy file ${path}`, { cause });
    }
  }
  return { schemaText, sources };
}

/**
 * The policies one labelled ConfigMap contributes to a family (as the README documents): keys
 * ending in `.runtime.cedar` to the runtime family, every other key ending in `.cedar` to grants.
 */
export function configMapSources(namespace: string, name: string, data: Readonly<Record<string, string>> | undefined, family: PolicyFamily = 'grant'): PolicySource[] {
  return Object.keys(data ?? {})
    .filter((key) => isPolicyName(key, family))
    .sort()
    .map((key) => ({ origin: `configmap:${namespace}/${name}#${key}`, text: data?.[key] ?? '' }));
}
