// The single executable's default policies, written out where the policy loader can read them.
import { afterEach, beforeEach, describe, expect, it } from '@jest/globals';
import { chmodSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { builtInPolicyDir, materialize, type PolicyFile } from './built-in-policies.js';

let cache: string;
beforeEach(() => {
  cache = mkdtempSync(join(tmpdir(), 'tg-cache-'));
});
afterEach(() => rmSync(cache, { recursive: true, force: true }));

const file = (name: string, text: string): PolicyFile => ({ name, data: new TextEncoder().encode(text) });
const set = [file('schema.cedarschema', 'entity Agent;\n'), file('a.cedar', '@id("a") permit (principal, action, resource);\n')];

describe('materialize', () => {
  it('writes the files once into a directory named by their content, and reuses it', () => {
    const dir = materialize(set, cache);
    expect(dir).toMatch(new RegExp(`^${cache}/policies-[0-9a-f]{16}$`));
    expect(readdirSync(dir).sort()).toEqual(['a.cedar', 'schema.cedarschema']);
    expect(readFileSync(join(dir, 'a.cedar'), 'utf8')).toBe('@id("a") permit (principal, action, resource);\n');
    expect(materialize([...set].reverse(), cache)).toBe(dir);
    expect(readdirSync(cache)).toEqual([dir.slice(cache.length + 1)]);
  });

  it('gives other content another directory', () => {
    expect(materialize([set[0]!, file('a.cedar', '@id("a") forbid (principal, action, resource);\n')], cache)).not.toBe(materialize(set, cache));
  });

  it('puts back a copy someone edited', () => {
    const dir = materialize(set, cache);
    chmodSync(join(dir, 'a.cedar'), 0o644);
    writeFileSync(join(dir, 'a.cedar'), 'permit (principal, action, resource);\n');
    expect(materialize(set, cache)).toBe(dir);
    expect(readFileSync(join(dir, 'a.cedar'), 'utf8')).toBe('@id("a") permit (principal, action, resource);\n');
    expect(readdirSync(cache)).toHaveLength(1);
  });

  it('names the directory it could not write', () => {
    const blocked = join(cache, 'blocked');
    writeFileSync(blocked, 'a file where the cache directory should be');
    expect(() => materialize(set, blocked)).toThrow(`writing the built-in policies to ${blocked}/policies-`);
  });
});

describe('builtInPolicyDir', () => {
  it('is undefined outside the single executable, leaving the package policies to the script form', () => {
    expect(builtInPolicyDir(cache)).toBeUndefined();
    expect(readdirSync(cache)).toEqual([]);
  });
});
