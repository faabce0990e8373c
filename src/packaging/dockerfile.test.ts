// No Docker engine runs here, so the image is checked the way a build would fail: every path it
// copies must exist (and not be hidden by .dockerignore), and what it copies out of the build
// stage must be what that stage's build produces.
import { describe, expect, it } from '@jest/globals';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join, posix } from 'node:path';

const root = join(import.meta.dirname, '..', '..');
const read = (path: string) => readFileSync(join(root, path), 'utf8');

interface Instruction {
  op: string;
  args: string;
  stage: number;
}

/** Dockerfile instructions, continuation lines joined and comments dropped; stage = index of the FROM above. */
function parseDockerfile(text: string): Instruction[] {
  const logical = text
    .split('\n')
    .filter((line) => !/^\s*#/.test(line))
    .join('\n')
    .replace(/\\\n/g, ' ')
    .split('\n')
    .map((line) => line.trim())
    .filter(Boolean);
  let stage = -1;
  return logical.map((line) => {
    const [op = '', ...rest] = line.split(/\s+/);
    if (op.toUpperCase() === 'FROM') stage += 1;
    return { op: op.toUpperCase(), args: rest.join(' '), stage };
  });
}

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

/** Files of the build context a COPY source names; `*` only within one path segment, as Docker does. */
function contextMatches(source: string): string[] {
  if (!source.includes('*')) return existsSync(join(root, source)) ? [source] : [];
  const dir = posix.dirname(source);
  const pattern = new RegExp(`^${posix.basename(source).replace(/[.+?^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '[^/]*')}$`);
  return readdirSync(join(root, dir))
    .filter((name) => pattern.test(name))
    .map((name) => posix.join(dir, name));
}

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
