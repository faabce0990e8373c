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

export const SCHEMA_FILE = 'schema.cedarschema';
export const POLICY_SUFFIX = '.cedar';

/**
 * Reads `<dir>/schema.cedarschema` and every `<dir>/*.cedar`, sorted by name. Not recursive:
 * `policies/tests/` holds the tests of the default policies, not policies.
 */
export async function readPolicyDir(dir: string): Promise<PolicyDir> {
  const schemaPath = join(dir, SCHEMA_FILE);
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
  const names = entries.filter((e) => (e.isFile() || e.isSymbolicLink()) && e.name.endsWith(POLICY_SUFFIX)).map((e) => e.name).sort();
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

/** The policies one labelled ConfigMap contributes: every data key ending in `.cedar` (as the README documents). */
export function configMapSources(namespace: string, name: string, data: Readonly<Record<string, string>> | undefined): PolicySource[] {
  return Object.keys(data ?? {})
    .filter((key) => key.endsWith(POLICY_SUFFIX))
    .sort()
    .map((key) => ({ origin: `configmap:${namespace}/${name}#${key}`, text: data?.[key] ?? '' }));
}
