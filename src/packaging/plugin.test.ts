// `make plugin` as a user of its outputs sees them: the single executable run from an empty
// directory with no Node and nothing of this repository in reach, and the krew archive and
// manifest a release publishes. Builds once, into a temporary directory (about 15 s).
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse } from 'yaml';

const root = join(import.meta.dirname, '..', '..');
const fixtures = join(root, 'src', 'cli', 'fixtures');
const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');

let out: string;
let empty: string;

beforeAll(() => {
  out = mkdtempSync(join(tmpdir(), 'tg-plugin-'));
  const build = spawnSync(process.execPath, [join(root, 'dist', 'src', 'packaging', 'plugin.js'), out], { cwd: root, encoding: 'utf8' });
  if (build.status !== 0) throw new Error(`building the plugin failed (exit ${build.status}):\n${build.stdout}${build.stderr}`);
  // Only the executable: no node_modules, no dist/, no policies/ beside it.
  empty = join(out, 'elsewhere');
  mkdirSync(join(empty, 'home'), { recursive: true });
  copyFileSync(join(out, 'kubectl-taskgrant'), join(empty, 'kubectl-taskgrant'));
}, 300_000);

afterAll(() => rmSync(out, { recursive: true, force: true }));

/** Like `env -i PATH=… HOME=… ./kubectl-taskgrant ARGS`, with a PATH that holds no node. */
function plugin(args: string[]) {
  return spawnSync('./kubectl-taskgrant', args, { cwd: empty, encoding: 'utf8', env: { PATH: join(empty, 'home'), HOME: join(empty, 'home') } });
}

describe('dist/kubectl-taskgrant, the single executable', () => {
  it('prints its usage from an empty directory with a minimal environment, and nothing on stderr', () => {
    const r = plugin(['--help']);
    expect(r.error).toBeUndefined();
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/^Usage: kubectl taskgrant /);
    for (const command of ['list', 'explain', 'approve', 'deny', 'revoke', 'check']) expect(r.stdout).toMatch(new RegExp(`^  ${command}\\b`, 'm'));
  });

  it('checks tasks with Cedar and the default policies built into it', () => {
    const r = plugin(['check', '-f', join(fixtures, 'denied.yaml')]);
    expect(r.stderr).toBe('');
    expect(r.stdout).toMatch(/team-a\/list-configmaps +ALLOW/);
    expect(r.stdout).toMatch(/team-a\/become-admin +DENY +forbid-escalation-verbs/);
    const builtIn = /checked against \d+ policies in (\S+) /.exec(r.stdout)?.[1] ?? '';
    expect(builtIn).toMatch(new RegExp(`^${join(empty, 'home', '.cache', 'kubectl-taskgrant', 'policies-')}`));
    expect(readdirSync(builtIn).sort()).toEqual(readdirSync(join(root, 'policies')).filter((f) => /\.(cedar|cedarschema)$/.test(f)).sort());
    expect(r.status).toBe(1); // one task denied: check's documented exit code
  });

  it('says in one line that there is no kubeconfig when a command needs the cluster', () => {
    const r = plugin(['list']);
    expect(r.status).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toBe('Error: no kubeconfig found (pass --kubeconfig, set KUBECONFIG or create ~/.kube/config)\n');
  });
});

describe('the krew archive and manifest', () => {
  it('dist/taskgrant.yaml names the archive by its real sha256, and the archive holds the executable', () => {
    const archive = readFileSync(join(out, 'kubectl-taskgrant-linux-amd64.tar.gz'));
    const manifest = parse(readFileSync(join(out, 'taskgrant.yaml'), 'utf8')) as {
      apiVersion: string;
      kind: string;
      metadata: { name: string };
      spec: { version: string; platforms: { selector: unknown; uri: string; sha256: string; bin: string }[] };
    };
    const { version } = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string };
    expect(manifest).toMatchObject({ apiVersion: 'krew.googlecontainertools.github.com/v1alpha2', kind: 'Plugin', metadata: { name: 'taskgrant' }, spec: { version: `v${version}` } });
    expect(manifest.spec.platforms).toEqual([
      expect.objectContaining({ selector: { matchLabels: { os: 'linux', arch: 'amd64' } }, sha256: sha256(archive), bin: 'kubectl-taskgrant' }),
    ]);
    expect(manifest.spec.platforms[0]?.uri).toMatch(new RegExp(`^https://.*/v${version}/kubectl-taskgrant-linux-amd64\\.tar\\.gz$`));

    const listed = spawnSync('tar', ['-tzvf', join(out, 'kubectl-taskgrant-linux-amd64.tar.gz')], { encoding: 'utf8' });
    expect(listed.stdout).toMatch(/^-rwxr-xr-x 0\/0 .* kubectl-taskgrant\n$/);
    const unpacked = spawnSync('tar', ['-xzOf', join(out, 'kubectl-taskgrant-linux-amd64.tar.gz'), 'kubectl-taskgrant'], { maxBuffer: 512 * 1024 * 1024 });
    expect(sha256(unpacked.stdout)).toBe(sha256(readFileSync(join(out, 'kubectl-taskgrant'))));
  });
});
