// taskgrant's own images, built from their Dockerfiles by the local image builder (images.ts):
// the operator (`localhost/taskgrant:dev`, ./Dockerfile) and the demo agent
// (`localhost/taskgrant-demo-agent:dev`, examples/demo-agent/Dockerfile), plus the node's pause image.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { buildFromDockerfile, buildPauseImage, nodeBaseRootfs, type DockerfileBuild } from './images.js';
import { repoRoot } from './paths.js';

export const operatorImage = 'localhost/taskgrant:dev';
export const demoAgentImage = 'localhost/taskgrant-demo-agent:dev';
export const pauseImage = 'localhost/taskgrant-pause:1';

function cacheDir(): string {
  return join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'taskgrant');
}

/** Where `make image` leaves the archives, one per image. */
export function imageArchive(image: string): string {
  const file = image.replace(/^localhost\//, '').replace(/[:/]/g, '_');
  return join(repoRoot(), '.local', 'images', `${file}.oci.tar`);
}

function imageBase(): string {
  const base = process.env.TASKGRANT_IMAGE_BASE;
  if (!base || !existsSync(join(base, 'node', 'bin', 'node'))) throw new Error('TASKGRANT_IMAGE_BASE is not set up; run through make (hack/toolchain.sh image-base)');
  return base;
}

/** The build stage's `npm install` + `npm prune --omit=dev`, done once per lockfile. */
function productionModules(): string {
  const root = repoRoot();
  const hash = createHash('sha256').update(readFileSync(join(root, 'package.json'))).update(readFileSync(join(root, 'package-lock.json'))).digest('hex').slice(0, 16);
  const dir = join(cacheDir(), `prod-modules-${hash}`);
  if (existsSync(join(dir, 'node_modules'))) return join(dir, 'node_modules');
  const partial = `${dir}.partial`;
  rmSync(partial, { recursive: true, force: true });
  mkdirSync(partial, { recursive: true });
  copyFileSync(join(root, 'package.json'), join(partial, 'package.json'));
  copyFileSync(join(root, 'package-lock.json'), join(partial, 'package-lock.json'));
  execFileSync('npm', ['install', '--omit=dev', '--no-audit', '--no-fund', '--loglevel=error'], { cwd: partial, stdio: ['ignore', 'inherit', 'inherit'] });
  rmSync(dir, { recursive: true, force: true });
  renameSync(partial, dir);
  return join(dir, 'node_modules');
}

/**
 * ./Dockerfile as the local builder runs it: its build stage (`npm install`, `npm run build`,
 * `npm prune --omit=dev` in /src) is what make already did, so each path the final stage copies
 * from it maps to where that local build put it.
 */
export function operatorBuild(parts: { base: DockerfileBuild['base']; distSrc: string; modules: string; out: string }): DockerfileBuild {
  const root = repoRoot();
  return {
    dockerfile: join(root, 'Dockerfile'),
    context: root,
    base: parts.base,
    stageOutputs: { build: { '/src/package.json': join(root, 'package.json'), '/src/node_modules': parts.modules, '/src/dist/src': parts.distSrc } },
    name: operatorImage,
    out: parts.out,
  };
}

export async function buildOperatorImage(): Promise<string> {
  const root = repoRoot();
  const distSrc = join(root, 'dist', 'src');
  if (!existsSync(join(distSrc, 'main.js'))) throw new Error('dist/src is not built; run make build');
  const base = nodeBaseRootfs(imageBase(), join(root, '.local', 'image-base'));
  const out = imageArchive(operatorImage);
  await buildFromDockerfile(operatorBuild({ base, distSrc, modules: productionModules(), out }));
  return out;
}

export async function buildDemoAgentImage(): Promise<string> {
  const root = repoRoot();
  const context = join(root, 'examples', 'demo-agent');
  const base = nodeBaseRootfs(imageBase(), join(root, '.local', 'image-base'));
  const out = imageArchive(demoAgentImage);
  await buildFromDockerfile({ dockerfile: join(context, 'Dockerfile'), context, base, name: demoAgentImage, out });
  return out;
}

/** The sandbox image, cached per machine (it depends on hack/pause.c alone). */
export async function pauseArchive(): Promise<string> {
  const source = join(repoRoot(), 'hack', 'pause.c');
  const hash = createHash('sha256').update(readFileSync(source)).digest('hex').slice(0, 16);
  const out = join(cacheDir(), 'images', `pause-${hash}.oci.tar`);
  if (!existsSync(out)) await buildPauseImage(source, pauseImage, out);
  return out;
}
