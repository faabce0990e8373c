// The default policies inside the single executable (`make plugin`, src/packaging/plugin.ts). A
// single executable of Node 24 carries them as assets, which are bytes and not files, while the
// policy loader reads a directory and names the file each policy came from. So the assets are
// written once per content to the user's cache and read there like any policy directory: `check`
// and `explain` then name files that exist and that a user can open or copy as a starting point.
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import * as sea from 'node:sea';

/** Asset keys of the embedded policy files: this prefix, then the file's name in policies/. */
export const POLICY_ASSET_PREFIX = 'policies/';

export interface PolicyFile {
  name: string;
  data: Uint8Array;
}

/** `$XDG_CACHE_HOME/kubectl-taskgrant`, else `~/.cache/kubectl-taskgrant`. */
export function defaultCacheDir(): string {
  return join(process.env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'kubectl-taskgrant');
}

/**
 * The directory holding the policies built into this executable, or undefined when this is not
 * the single executable (the script form reads the package's own policies/ instead).
 */
export function builtInPolicyDir(cacheDir: string = defaultCacheDir()): string | undefined {
  // Namespace access rather than named imports: getAssetKeys() is newer than the oldest Node the
  // script form supports, and is only called inside the executable, which carries Node 24.
  if (!sea.isSea()) return undefined;
  const files = sea
    .getAssetKeys()
    .filter((key) => key.startsWith(POLICY_ASSET_PREFIX))
    .map((key) => ({ name: key.slice(POLICY_ASSET_PREFIX.length), data: new Uint8Array(sea.getAsset(key)) }));
  return files.length > 0 ? materialize(files, cacheDir) : undefined;
}

function sameContent(dir: string, files: readonly PolicyFile[]): boolean {
  try {
    return files.every((f) => Buffer.from(f.data).equals(readFileSync(join(dir, f.name))));
  } catch {
    return false;
  }
}

/**
 * Writes `files` to `<cacheDir>/policies-<hash of names and contents>` unless that directory
 * already holds them, and returns it. Written whole to a fresh directory and renamed into place,
 * so a concurrent run never reads half a policy set; a copy someone edited is replaced, since the
 * name promises the built-in content.
 */
export function materialize(files: readonly PolicyFile[], cacheDir: string): string {
  const hash = createHash('sha256');
  for (const f of [...files].sort((a, b) => a.name.localeCompare(b.name))) hash.update(`${f.name}\0${f.data.length}\0`).update(f.data);
  const dir = join(cacheDir, `policies-${hash.digest('hex').slice(0, 16)}`);
  if (sameContent(dir, files)) return dir;
  try {
    mkdirSync(cacheDir, { recursive: true, mode: 0o700 });
    const fresh = mkdtempSync(join(cacheDir, '.policies-'));
    for (const f of files) writeFileSync(join(fresh, f.name), f.data, { mode: 0o444 });
    rmSync(dir, { recursive: true, force: true });
    try {
      renameSync(fresh, dir);
    } catch (err) {
      rmSync(fresh, { recursive: true, force: true });
      // Another run put the same set in place between our rm and rename.
      if (!sameContent(dir, files)) throw err;
    }
  } catch (cause) {
    throw new Error(`writing the built-in policies to ${dir}`, { cause });
  }
  return dir;
}
