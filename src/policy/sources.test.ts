import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { checkPolicyDir } from './check.js';
import { configMapSources, readPolicyDir } from './sources.js';

let dir: string;
const schema = 'entity Agent;\nentity Resource;\naction get appliesTo { principal: Agent, resource: Resource };\n';

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'taskgrant-policies-'));
  await writeFile(join(dir, 'schema.cedarschema'), schema);
  await writeFile(join(dir, 'b.cedar'), '@id("b") forbid (principal, action, resource);');
  await writeFile(join(dir, 'a.cedar'), '@id("a") permit (principal, action, resource);');
  await writeFile(join(dir, 'README.md'), 'not a policy');
  await mkdir(join(dir, 'tests'));
  await writeFile(join(dir, 'tests', 'c.cedar'), 'not even Cedar');
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('readPolicyDir', () => {
  it('reads the schema and the *.cedar files beside it, sorted, not recursing', async () => {
    const read = await readPolicyDir(dir);
    expect(read.schemaText).toBe(schema);
    expect(read.sources.map((s) => s.origin)).toEqual([`file:${join(dir, 'a.cedar')}`, `file:${join(dir, 'b.cedar')}`]);
  });

  it('reads a ConfigMap volume, where every key is a symlink into ..data', async () => {
    const mount = await mkdtemp(join(tmpdir(), 'taskgrant-cm-'));
    try {
      await mkdir(join(mount, '..2026_01_01_00_00_00.000000001'));
      await writeFile(join(mount, '..2026_01_01_00_00_00.000000001', 'schema.cedarschema'), schema);
      await writeFile(join(mount, '..2026_01_01_00_00_00.000000001', 'a.cedar'), '@id("a") permit (principal, action, resource);');
      await symlink('..2026_01_01_00_00_00.000000001', join(mount, '..data'));
      await symlink(join('..data', 'schema.cedarschema'), join(mount, 'schema.cedarschema'));
      await symlink(join('..data', 'a.cedar'), join(mount, 'a.cedar'));
      const read = await readPolicyDir(mount);
      expect(read.schemaText).toBe(schema);
      expect(read.sources).toEqual([{ origin: `file:${join(mount, 'a.cedar')}`, text: '@id("a") permit (principal, action, resource);' }]);
    } finally {
      await rm(mount, { recursive: true, force: true });
    }
  });

  it('fails with the path and the cause when the schema is missing', async () => {
    const empty = await mkdtemp(join(tmpdir(), 'taskgrant-empty-'));
    try {
      await expect(readPolicyDir(empty)).rejects.toMatchObject({ message: expect.stringContaining('schema.cedarschema'), cause: expect.objectContaining({ code: 'ENOENT' }) });
      expect(await checkPolicyDir(empty)).toEqual({ type: 'rejected', errors: [expect.stringMatching(/schema\.cedarschema: ENOENT/)] });
    } finally {
      await rm(empty, { recursive: true, force: true });
    }
  });
});

describe('checkPolicyDir', () => {
  it('loads a directory plus extra sources into a ready engine, or lists what is wrong', async () => {
    const ok = await checkPolicyDir(dir);
    expect(ok).toMatchObject({ type: 'loaded', policyCount: 2 });
    const extra = configMapSources('taskgrant-system', 'team-x', { 'x.cedar': 'permit (principal, action, resource);' });
    const bad = await checkPolicyDir(dir, { extraSources: extra });
    expect(bad).toEqual({ type: 'rejected', errors: [expect.stringMatching(/^configmap:taskgrant-system\/team-x#x\.cedar:1: policy #1 has no @id/)] });
  });
});

describe('configMapSources', () => {
  it('takes every key ending in .cedar, named by namespace, ConfigMap and key', () => {
    expect(configMapSources('taskgrant-system', 'team-x', { 'b.cedar': 'B', 'a.cedar': 'A', 'notes.txt': 'n' })).toEqual([
      { origin: 'configmap:taskgrant-system/team-x#a.cedar', text: 'A' },
      { origin: 'configmap:taskgrant-system/team-x#b.cedar', text: 'B' },
    ]);
    expect(configMapSources('ns', 'cm', undefined)).toEqual([]);
  });
});
