// Container images without a Docker engine or a registry: the final stage of a Dockerfile,
// interpreted over a local build, written as an OCI image archive that the node's containerd
// imports. The Dockerfile stays the one recipe: what it copies, its user, environment and
// entrypoint are read from it, so the image built here and the one `docker build` makes cannot
// drift apart. Only instructions that need no shell are interpreted; anything else is refused.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, copyFileSync, cpSync, createReadStream, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, posix } from 'node:path';

export interface ImageConfig {
  entrypoint: string[];
  cmd?: string[];
  env: string[];
  user?: string;
  workingDir?: string;
  exposedPorts?: string[];
}

async function sha256File(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

const sha256 = (data: string) => createHash('sha256').update(data).digest('hex');

/**
 * Writes `rootfs` as a one-layer OCI image archive named `name` (`repo:tag`). The layer is an
 * uncompressed tar with numeric root ownership and fixed times, so equal trees give equal digests.
 */
export async function writeOciArchive(options: { rootfs: string; config: ImageConfig; name: string; out: string }): Promise<string> {
  const layout = mkdtempSync(join(tmpdir(), 'taskgrant-oci-'));
  try {
    const blobs = join(layout, 'blobs', 'sha256');
    mkdirSync(blobs, { recursive: true });
    const layerTmp = join(layout, 'layer.tar');
    execFileSync('tar', ['--create', '--file', layerTmp, '--directory', options.rootfs, '--numeric-owner', '--owner=0', '--group=0', '--sort=name', '--mtime=@0', '.']);
    const layerDigest = await sha256File(layerTmp);
    const layerSize = statSync(layerTmp).size;
    renameSync(layerTmp, join(blobs, layerDigest));

    const { config } = options;
    const imageConfig = JSON.stringify({
      architecture: 'amd64',
      os: 'linux',
      config: {
        Entrypoint: config.entrypoint,
        ...(config.cmd ? { Cmd: config.cmd } : {}),
        Env: config.env,
        ...(config.user ? { User: config.user } : {}),
        ...(config.workingDir ? { WorkingDir: config.workingDir } : {}),
        ...(config.exposedPorts?.length ? { ExposedPorts: Object.fromEntries(config.exposedPorts.map((p) => [p.includes('/') ? p : `${p}/tcp`, {}])) } : {}),
      },
      rootfs: { type: 'layers', diff_ids: [`sha256:${layerDigest}`] },
    });
    const configDigest = sha256(imageConfig);
    writeFileSync(join(blobs, configDigest), imageConfig);
    const manifest = JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: `sha256:${configDigest}`, size: Buffer.byteLength(imageConfig) },
      layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: `sha256:${layerDigest}`, size: layerSize }],
    });
    const manifestDigest = sha256(manifest);
    writeFileSync(join(blobs, manifestDigest), manifest);
    const tag = options.name.slice(options.name.lastIndexOf(':') + 1);
    writeFileSync(
      join(layout, 'index.json'),
      JSON.stringify({
        schemaVersion: 2,
        mediaType: 'application/vnd.oci.image.index.v1+json',
        manifests: [
          {
            mediaType: 'application/vnd.oci.image.manifest.v1+json',
            digest: `sha256:${manifestDigest}`,
            size: Buffer.byteLength(manifest),
            platform: { architecture: 'amd64', os: 'linux' },
            annotations: { 'io.containerd.image.name': options.name, 'org.opencontainers.image.ref.name': tag },
          },
        ],
      }),
    );
    writeFileSync(join(layout, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
    mkdirSync(dirname(options.out), { recursive: true });
    execFileSync('tar', ['--create', '--file', `${options.out}.partial`, '--directory', layout, 'oci-layout', 'index.json', 'blobs']);
    renameSync(`${options.out}.partial`, options.out);
    return `sha256:${manifestDigest}`;
  } finally {
    rmSync(layout, { recursive: true, force: true });
  }
}

export interface Instruction {
  op: string;
  args: string;
  stage: number;
}

/** Dockerfile instructions, continuation lines joined and comments dropped; stage = index of the FROM above (-1 before any). */
export function parseDockerfile(text: string): Instruction[] {
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

/** `${NAME}` and `$NAME` from the ARGs declared before the first FROM. */
function expandArgs(text: string, args: Record<string, string>): string {
  return text.replace(/\$\{(\w+)\}|\$(\w+)/g, (whole, a: string | undefined, b: string | undefined) => args[a ?? b ?? ''] ?? whole);
}

function jsonArray(op: string, args: string): string[] {
  const parsed: unknown = JSON.parse(args);
  if (!Array.isArray(parsed) || !parsed.every((a) => typeof a === 'string')) throw new Error(`${op} must be a JSON array of strings (exec form)`);
  return parsed;
}

/** ENV in both forms: `ENV K=V K2="V 2"` and `ENV K V`. */
function envPairs(args: string): [string, string][] {
  if (!/^\w+=/.test(args)) {
    const [key = '', ...value] = args.split(/\s+/);
    return [[key, value.join(' ')]];
  }
  return [...args.matchAll(/(\w+)=("(?:[^"\\]|\\.)*"|\S*)/g)].map((m) => [m[1] ?? '', (m[2] ?? '').replace(/^"(.*)"$/, '$1')]);
}

export interface DockerfileBuild {
  dockerfile: string;
  /** The build context: where plain COPY sources are read. */
  context: string;
  /** The base image the final stage's FROM names, as a root filesystem, and its config. */
  base: { rootfs: string; config: ImageConfig };
  /** For `COPY --from=<stage>`: each path of that stage mapped to where the local build put it. */
  stageOutputs?: Record<string, Record<string, string>>;
  name: string;
  out: string;
}

/** Files of the context a COPY source names; `*` only within one path segment, as Docker does. */
export function contextMatches(context: string, source: string): string[] {
  if (!source.includes('*')) return existsSync(join(context, source)) ? [source] : [];
  const dir = posix.dirname(source);
  const pattern = new RegExp(`^${posix.basename(source).replace(/[.+?^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '[^/]*')}$`);
  return readdirSync(join(context, dir))
    .filter((name) => pattern.test(name))
    .map((name) => posix.join(dir, name));
}

/** Copies as Docker's COPY does: a directory's contents into the destination; files into a directory when it ends in '/' or several are copied. */
function copyInto(rootfs: string, sources: string[], dest: string): void {
  const target = join(rootfs, dest);
  const intoDir = dest.endsWith('/') || sources.length > 1;
  for (const source of sources) {
    if (statSync(source).isDirectory()) {
      cpSync(source, target, { recursive: true });
    } else {
      const file = intoDir ? join(target, posix.basename(source)) : target;
      mkdirSync(dirname(file), { recursive: true });
      copyFileSync(source, file);
      chmodSync(file, statSync(source).mode & 0o777);
    }
  }
}

/** Builds the Dockerfile's last stage over `base`. Returns the manifest digest. */
export async function buildFromDockerfile(build: DockerfileBuild): Promise<string> {
  const instructions = parseDockerfile(readFileSync(build.dockerfile, 'utf8'));
  const args = Object.fromEntries(
    instructions.filter((i) => i.op === 'ARG' && i.stage === -1).map((i) => {
      const [key = '', value = ''] = i.args.split('=');
      return [key, value];
    }),
  );
  const last = Math.max(...instructions.map((i) => i.stage));
  const rootfs = mkdtempSync(join(tmpdir(), 'taskgrant-rootfs-'));
  try {
    cpSync(build.base.rootfs, rootfs, { recursive: true, verbatimSymlinks: true });
    const config: ImageConfig = { ...build.base.config, env: [...build.base.config.env] };
    let workdir = config.workingDir ?? '/';
    for (const { op, args: raw } of instructions.filter((i) => i.stage === last)) {
      const argsText = expandArgs(raw, args);
      switch (op) {
        case 'FROM':
          break;
        case 'ENV':
          for (const [key, value] of envPairs(argsText)) config.env = [...config.env.filter((e) => !e.startsWith(`${key}=`)), `${key}=${value}`];
          break;
        case 'WORKDIR':
          workdir = posix.resolve(workdir, argsText);
          mkdirSync(join(rootfs, workdir), { recursive: true });
          config.workingDir = workdir;
          break;
        case 'USER':
          config.user = argsText;
          break;
        case 'EXPOSE':
          config.exposedPorts = [...(config.exposedPorts ?? []), ...argsText.split(/\s+/)];
          break;
        case 'ENTRYPOINT':
          config.entrypoint = jsonArray(op, argsText);
          config.cmd = undefined;
          break;
        case 'CMD':
          config.cmd = jsonArray(op, argsText);
          break;
        case 'COPY': {
          const words = argsText.split(/\s+/);
          const from = words.find((w) => w.startsWith('--from='))?.slice('--from='.length);
          const unknownFlag = words.find((w) => w.startsWith('--') && !w.startsWith('--from='));
          if (unknownFlag) throw new Error(`COPY ${unknownFlag} is not interpreted by the local image builder`);
          const paths = words.filter((w) => !w.startsWith('--'));
          const dest = posix.resolve(workdir, paths.at(-1) ?? '') + (paths.at(-1)?.endsWith('/') ? '/' : '');
          const sources = paths.slice(0, -1).flatMap((source) => {
            if (from === undefined) {
              const matches = contextMatches(build.context, source);
              if (matches.length === 0) throw new Error(`COPY ${source}: not in the build context ${build.context}`);
              return matches.map((m) => join(build.context, m));
            }
            const local = build.stageOutputs?.[from]?.[source];
            if (!local) throw new Error(`COPY --from=${from} ${source}: the local build does not say where that stage puts it`);
            return [local];
          });
          copyInto(rootfs, sources, dest);
          break;
        }
        default:
          throw new Error(`${op} in the final stage of ${build.dockerfile} is not interpreted by the local image builder (keep that stage to COPY, ENV, WORKDIR, USER, EXPOSE, ENTRYPOINT, CMD)`);
      }
    }
    return await writeOciArchive({ rootfs, config, name: build.name, out: build.out });
  } finally {
    rmSync(rootfs, { recursive: true, force: true });
  }
}

const defaultPath = 'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

/**
 * The `node:<version>-slim` base, made here: Node from the npm registry, the dynamic loader and
 * the libraries it links against from Debian's packages (hack/toolchain.sh image-base), a `node`
 * user with uid 1000 as in the official image, and a world-writable /tmp.
 */
export function nodeBaseRootfs(imageBase: string, into: string): { rootfs: string; config: ImageConfig } {
  rmSync(into, { recursive: true, force: true });
  mkdirSync(into, { recursive: true });
  for (const dir of ['lib', 'lib64', 'usr/lib']) {
    if (existsSync(join(imageBase, 'root', dir))) cpSync(join(imageBase, 'root', dir), join(into, dir), { recursive: true, verbatimSymlinks: true });
  }
  rmSync(join(into, 'usr', 'lib', 'x86_64-linux-gnu', 'gconv'), { recursive: true, force: true });
  mkdirSync(join(into, 'usr', 'local', 'bin'), { recursive: true });
  copyFileSync(join(imageBase, 'node', 'bin', 'node'), join(into, 'usr', 'local', 'bin', 'node'));
  chmodSync(join(into, 'usr', 'local', 'bin', 'node'), 0o755);
  mkdirSync(join(into, 'etc'), { recursive: true });
  writeFileSync(join(into, 'etc', 'passwd'), 'root:x:0:0:root:/root:/usr/sbin/nologin\nnode:x:1000:1000::/home/node:/usr/sbin/nologin\n');
  writeFileSync(join(into, 'etc', 'group'), 'root:x:0:\nnode:x:1000:\n');
  mkdirSync(join(into, 'tmp'), { recursive: true });
  chmodSync(join(into, 'tmp'), 0o1777);
  mkdirSync(join(into, 'home', 'node'), { recursive: true });
  return { rootfs: into, config: { entrypoint: ['node'], env: [defaultPath], workingDir: '/' } };
}

/** The sandbox image: hack/pause.c, compiled static, alone in its image. */
export async function buildPauseImage(source: string, name: string, out: string): Promise<void> {
  const rootfs = mkdtempSync(join(tmpdir(), 'taskgrant-pause-'));
  try {
    execFileSync('gcc', ['-static', '-O2', '-o', join(rootfs, 'pause'), source]);
    await writeOciArchive({ rootfs, config: { entrypoint: ['/pause'], env: [defaultPath], user: '65535:65535' }, name, out });
  } finally {
    rmSync(rootfs, { recursive: true, force: true });
  }
}
