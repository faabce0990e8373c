// No Docker engine runs here, so the image is checked the way a build would fail: every path it
// copies must exist (and not be hidden by .dockerignore), and what it copies out of the build
// stage must be what that stage's build produces. `make image` builds the final stage from this
// same file (test/harness/images.ts); the last suite holds the two recipes together.
import { afterAll, describe, expect, it } from '@jest/globals';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, posix } from 'node:path';
import { buildFromDockerfile, contextMatches as matchesIn, parseDockerfile, type Instruction } from '../../test/harness/images.js';
import { operatorBuild } from '../../test/harness/project-images.js';

const root = join(import.meta.dirname, '..', '..');
const read = (path: string) => readFileSync(join(root, path), 'utf8');

interface Copy {
  from: string | undefined;
  sources: string[];
  dest: string;
  stage: number;
}

function copies(instructions: Instruction[]): Copy[] {
  return instructions
    .filter((i) => i.op === 'COPY')
    .map((i) => {
      const words = i.args.split(/\s+/);
      const from = words.find((w) => w.startsWith('--from='))?.slice('--from='.length);
      const paths = words.filter((w) => !w.startsWith('--'));
      return { from, sources: paths.slice(0, -1), dest: paths.at(-1) ?? '', stage: i.stage };
    });
}

const contextMatches = (source: string) => matchesIn(root, source);

function ignored(path: string, patterns: string[]): boolean {
  return patterns.some((p) => {
    if (p.startsWith('**/')) return new RegExp(`${p.slice(3).replace(/\./g, '\\.').replace(/\*/g, '[^/]*')}$`).test(path);
    return path === p || path.startsWith(`${p}/`);
  });
}

const dockerfile = parseDockerfile(read('Dockerfile'));
const dockerignore = read('.dockerignore')
  .split('\n')
  .map((l) => l.trim())
  .filter((l) => l && !l.startsWith('#'));
const froms = dockerfile.filter((i) => i.op === 'FROM');
const finalStage = froms.length - 1;
const buildStage = froms.findIndex((f) => / AS build$/i.test(f.args));
const buildWorkdir = dockerfile.find((i) => i.op === 'WORKDIR' && i.stage === buildStage)?.args ?? '';

describe('Dockerfile', () => {
  it('has a build stage and a final stage on the pinned Node version', () => {
    expect(buildStage).toBeGreaterThanOrEqual(0);
    expect(finalStage).toBeGreaterThan(buildStage);
    const pinned = /^NODE_VERSION=(\S+)$/m.exec(read('hack/versions.env'))?.[1];
    const arg = dockerfile.find((i) => i.op === 'ARG' && i.args.startsWith('NODE_VERSION='))?.args.split('=')[1];
    expect(arg).toBe(pinned);
    for (const from of froms) expect(from.args).toMatch(/^node:\$\{NODE_VERSION\}-slim\b/);
  });

  it('copies only paths that exist in the build context and that .dockerignore lets through', () => {
    const local = copies(dockerfile).filter((c) => c.from === undefined);
    expect(local.length).toBeGreaterThan(0);
    for (const { sources } of local) {
      for (const source of sources) {
        const matches = contextMatches(source);
        expect({ source, matches: matches.length > 0 }).toEqual({ source, matches: true });
        for (const match of matches) expect({ match, ignored: ignored(match, dockerignore) }).toEqual({ match, ignored: false });
      }
    }
  });

  it('takes from the build stage only what that stage builds: dist/src from src/, node_modules from the lockfile', () => {
    const fromBuild = copies(dockerfile).filter((c) => c.from === 'build');
    const built = fromBuild.flatMap((c) => c.sources.map((s) => posix.relative(buildWorkdir, s)));
    expect(built.sort()).toEqual(['dist/src', 'node_modules', 'package.json']);
    // tsc writes <outDir>/<path relative to rootDir>: dist/src/main.js comes from src/main.ts.
    const base = JSON.parse(read('tsconfig.json')) as { compilerOptions: { outDir: string; rootDir: string } };
    const build = JSON.parse(read('tsconfig.build.json')) as { include: string[] };
    expect(base.compilerOptions).toMatchObject({ outDir: 'dist', rootDir: '.' });
    expect(build.include).toContain('src');
    const buildInputs = copies(dockerfile)
      .filter((c) => c.stage === buildStage && c.from === undefined)
      .flatMap((c) => c.sources);
    expect(buildInputs).toEqual(expect.arrayContaining(['package.json', 'package-lock.json', 'tsconfig.json', 'tsconfig.build.json', 'src']));
    expect(existsSync(join(root, 'src', 'main.ts'))).toBe(true);
    const run = dockerfile.filter((i) => i.op === 'RUN' && i.stage === buildStage).map((i) => i.args).join(' ; ');
    expect(run).toMatch(/npm (ci|install)\b/);
    expect(run).toMatch(/npm run build\b/);
    expect(run).toMatch(/npm prune --omit=dev\b/);
  });

  it('ships the runtime and nothing of the tests', () => {
    const finalSources = copies(dockerfile)
      .filter((c) => c.stage === finalStage && c.from === undefined)
      .flatMap((c) => c.sources.flatMap(contextMatches));
    expect(finalSources).toEqual(expect.arrayContaining(['crds', 'bin', 'policies/schema.cedarschema', 'policies/baseline.cedar']));
    expect(finalSources.filter((s) => /(^|\/)tests?(\/|$)|\.test\./.test(s))).toEqual([]);
  });

  it('runs dist/src/main.js as a numeric non-root user', () => {
    const final = dockerfile.filter((i) => i.stage === finalStage);
    const entrypoint = JSON.parse(final.find((i) => i.op === 'ENTRYPOINT')?.args ?? '[]') as string[];
    expect(entrypoint[0]).toBe('node');
    expect(entrypoint.at(-1)).toBe('dist/src/main.js');
    // The memory settings make bench measures the operator with.
    expect(entrypoint).toEqual(expect.arrayContaining(['--max-semi-space-size=4', '--wasm-num-compilation-tasks=0', '--optimize-for-size']));
    expect(final.some((i) => i.op === 'ENV' && /MALLOC_ARENA_MAX=2/.test(i.args))).toBe(true);
    const user = final.findLast((i) => i.op === 'USER')?.args ?? '';
    // The kubelet can only verify runAsNonRoot for a numeric uid.
    expect(user).toMatch(/^[1-9][0-9]*(:[0-9]+)?$/);
  });

  it('starts the operator with the same Node flags as make run and make bench (what bench measures is what ships)', () => {
    const final = dockerfile.filter((i) => i.stage === finalStage);
    const entrypoint = JSON.parse(final.find((i) => i.op === 'ENTRYPOINT')?.args ?? '[]') as string[];
    const flags = entrypoint.filter((arg) => arg.startsWith('--'));
    expect(flags.length).toBeGreaterThan(0);
    expect(read('hack/run.sh')).toContain(`exec node ${flags.join(' ')} dist/src/main.js`);
    expect(read('bench/run.ts')).toContain(`const OPERATOR_NODE_FLAGS = [${flags.map((f) => `'${f}'`).join(', ')}];`);
  });
});

describe('the local image builder (make image) on this Dockerfile', () => {
  const work = mkdtempSync(join(tmpdir(), 'taskgrant-image-test-'));
  afterAll(() => rmSync(work, { recursive: true, force: true }));

  /** Builds with small stand-ins for the base image and the build stage, and reads the archive back. */
  async function built(): Promise<{ config: { config: Record<string, unknown> }; files: string[] }> {
    const base = join(work, 'base');
    mkdirSync(join(base, 'usr', 'local', 'bin'), { recursive: true });
    writeFileSync(join(base, 'usr', 'local', 'bin', 'node'), '#!/bin/sh\n');
    const distSrc = join(work, 'dist-src');
    mkdirSync(join(distSrc, 'cli'), { recursive: true });
    writeFileSync(join(distSrc, 'main.js'), '');
    const modules = join(work, 'node_modules');
    mkdirSync(join(modules, 'jose'), { recursive: true });
    writeFileSync(join(modules, 'jose', 'package.json'), '{}');
    const out = join(work, 'image.oci.tar');
    await buildFromDockerfile(operatorBuild({ base: { rootfs: base, config: { entrypoint: ['node'], env: ['PATH=/usr/local/bin:/usr/bin:/bin'] } }, distSrc, modules, out }));
    const layout = join(work, 'layout');
    mkdirSync(layout, { recursive: true });
    execFileSync('tar', ['-xf', out, '-C', layout]);
    const blob = (digest: string) => readFileSync(join(layout, 'blobs', 'sha256', digest.replace('sha256:', '')), 'utf8');
    const index = JSON.parse(readFileSync(join(layout, 'index.json'), 'utf8')) as { manifests: { digest: string; annotations: Record<string, string> }[] };
    expect(index.manifests[0]?.annotations['io.containerd.image.name']).toBe('localhost/taskgrant:dev');
    const manifest = JSON.parse(blob(index.manifests[0]?.digest ?? '')) as { config: { digest: string }; layers: { digest: string }[] };
    const config = JSON.parse(blob(manifest.config.digest)) as { config: Record<string, unknown> };
    const layer = join(layout, 'blobs', 'sha256', (manifest.layers[0]?.digest ?? '').replace('sha256:', ''));
    const files = execFileSync('tar', ['-tf', layer], { encoding: 'utf8' }).split('\n').filter(Boolean);
    return { config, files };
  }

  it('gives the image the entrypoint, user, environment and working directory the Dockerfile states', async () => {
    const { config } = await built();
    const final = dockerfile.filter((i) => i.stage === finalStage);
    expect(config.config.Entrypoint).toEqual(JSON.parse(final.find((i) => i.op === 'ENTRYPOINT')?.args ?? '[]'));
    expect(config.config.User).toBe(final.findLast((i) => i.op === 'USER')?.args);
    expect(config.config.Env).toEqual(expect.arrayContaining(['NODE_ENV=production', 'MALLOC_ARENA_MAX=2']));
    expect(config.config.WorkingDir).toBe('/app');
  });

  it('puts every file the final stage copies where the Dockerfile puts it', async () => {
    const { files } = await built();
    for (const path of ['./app/package.json', './app/dist/src/main.js', './app/node_modules/jose/package.json', './app/policies/schema.cedarschema', './app/policies/baseline.cedar', './app/crds/', './app/bin/kubectl-taskgrant', './usr/local/bin/node']) {
      expect({ path, present: files.includes(path) }).toEqual({ path, present: true });
    }
    expect(files.filter((f) => f.includes('/policies/tests'))).toEqual([]);
  });

  it('refuses a final stage it cannot interpret rather than build something else', async () => {
    const odd = join(work, 'Dockerfile.odd');
    writeFileSync(odd, 'FROM node:24-slim\nRUN echo hi\n');
    await expect(buildFromDockerfile({ dockerfile: odd, context: root, base: { rootfs: join(work, 'base'), config: { entrypoint: [], env: [] } }, name: 'x:y', out: join(work, 'odd.tar') })).rejects.toThrow(/RUN in the final stage .* is not interpreted/);
  });
});
