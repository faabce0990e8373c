// `make plugin`: the kubectl plugin as one executable file with Node inside, for machines without
// Node, plus the krew archive and manifest that ship it.
//   node dist/src/packaging/plugin.js [OUT_DIR]        (OUT_DIR defaults to dist/)
// writes OUT_DIR/kubectl-taskgrant, OUT_DIR/kubectl-taskgrant-linux-amd64.tar.gz and
// OUT_DIR/taskgrant.yaml (plugins/taskgrant.yaml with the version and the archive's sha256).
//
// Node 24's single-executable applications (SEA) start one CommonJS script: esbuild bundles the
// compiled CLI and its dependencies into it, `node --experimental-sea-config` turns that script
// and its assets into a blob, and postject writes the blob into a copy of the running Node binary
// (Node 24 has no --build-sea to do that last step itself).
import { build, type Plugin } from 'esbuild';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, copyFileSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { parse } from 'yaml';
import { POLICY_ASSET_PREFIX } from '../cli/built-in-policies.js';

/** This file runs compiled, from dist/src/packaging/. */
const root = resolve(import.meta.dirname, '..', '..', '..');
const require = createRequire(import.meta.url);

const EXECUTABLE = 'kubectl-taskgrant';
// krew names platforms as Go does; the executable is a copy of the Node that runs this script.
const ARCHIVE = `${EXECUTABLE}-linux-amd64.tar.gz`;
const MANIFEST = 'taskgrant.yaml';
const TEMPLATE = join(root, 'plugins', MANIFEST);

// The sentinel Node's SEA loader looks for (Node's documentation gives it); postject flips it.
const SEA_FUSE = 'NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2';
const WASM_ASSET = 'cedar_wasm_bg.wasm';

/**
 * cedar-wasm's `nodejs` build reads its .wasm from beside itself with `require('fs').readFileSync`
 * when it is first imported, which every command does. Inside the executable there is no such
 * file, so that one module's `fs` becomes a shim answering with the SEA asset. The build fails if
 * cedar-wasm stops loading its .wasm this way, rather than shipping an executable that cannot start.
 */
function cedarWasmFromAsset(): { plugin: Plugin; used: () => boolean } {
  let used = false;
  const shim = `const { getAsset } = require('node:sea');
exports.readFileSync = (path) => {
  if (!String(path).endsWith('/${WASM_ASSET}')) throw new Error('kubectl-taskgrant: cedar-wasm read an unexpected file: ' + path);
  return Buffer.from(getAsset('${WASM_ASSET}'));
};
`;
  const plugin: Plugin = {
    name: 'cedar-wasm-from-sea-asset',
    setup(b) {
      b.onResolve({ filter: /^(node:)?fs$/ }, (args) => {
        if (!/[\\/]@cedar-policy[\\/]cedar-wasm[\\/]nodejs[\\/]cedar_wasm\.js$/.test(args.importer)) return undefined;
        used = true;
        return { path: 'cedar-wasm-fs', namespace: 'sea-shim' };
      });
      b.onLoad({ filter: /.*/, namespace: 'sea-shim' }, () => ({ contents: shim, loader: 'js' }));
    },
  };
  return { plugin, used: () => used };
}

async function bundle(outfile: string): Promise<void> {
  const wasm = cedarWasmFromAsset();
  const result = await build({
    entryPoints: [join(root, 'dist', 'src', 'cli', 'main.js')],
    outfile,
    bundle: true,
    platform: 'node',
    format: 'cjs',
    target: `node${process.versions.node.split('.')[0]}`,
    // CommonJS has no import.meta; policies.ts asks for its own location. In a SEA __filename is
    // the executable, which is what that question means there.
    define: { 'import.meta.url': '__taskgrant_import_meta_url' },
    banner: { js: "const __taskgrant_import_meta_url = require('node:url').pathToFileURL(__filename).href;" },
    plugins: [wasm.plugin],
    logLevel: 'warning',
  });
  // A warning here (a require esbuild cannot follow, another import.meta) is a command that would
  // fail at run time: stop the build instead.
  if (result.warnings.length > 0) throw new Error(`esbuild warned ${result.warnings.length} time(s) (printed above); refusing to build the executable`);
  if (!wasm.used()) throw new Error("@cedar-policy/cedar-wasm/nodejs no longer loads its .wasm with require('fs').readFileSync; update cedarWasmFromAsset()");
}

/** Every file the policy loader reads from a policy directory: schemas and policies, not tests/. */
function policyAssets(): Record<string, string> {
  const dir = join(root, 'policies');
  const assets: Record<string, string> = {};
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    if (entry.isFile() && /\.(cedar|cedarschema)$/.test(entry.name)) assets[`${POLICY_ASSET_PREFIX}${entry.name}`] = join(dir, entry.name);
  }
  return assets;
}

function run(what: string, file: string, args: string[], options: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): string {
  const r = spawnSync(file, args, { ...options, encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
  if (r.status !== 0) throw new Error(`${what} failed (${r.error?.message ?? `exit ${r.status ?? r.signal}`}):\n${r.stdout}${r.stderr}`);
  return r.stdout;
}

function sha256(path: string): string {
  return createHash('sha256').update(readFileSync(path)).digest('hex');
}

/** plugins/taskgrant.yaml with `{{version}}` and `{{sha256}}` filled in, checked before it is written. */
function renderManifest(template: string, version: string, archiveSha256: string): string {
  const text = template.replaceAll('{{version}}', version).replaceAll('{{sha256}}', archiveSha256);
  const left = /\{\{[^}]*\}\}/.exec(text);
  if (left) throw new Error(`${TEMPLATE} has a placeholder this script does not fill: ${left[0]}`);
  const platforms = (parse(text) as { spec?: { platforms?: { sha256?: unknown }[] } }).spec?.platforms ?? [];
  if (platforms.length === 0 || platforms.some((p) => p.sha256 !== archiveSha256)) throw new Error(`${TEMPLATE} must give every platform sha256: "{{sha256}}"`);
  return text;
}

async function main(outDir: string): Promise<void> {
  const started = Date.now();
  if (process.platform !== 'linux' || process.arch !== 'x64') {
    throw new Error(`the executable is a copy of the Node running this script, and the krew manifest offers linux/amd64; this is ${process.platform}/${process.arch}`);
  }
  const node = readFileSync(process.execPath);
  if (!node.includes(`${SEA_FUSE}:0`)) throw new Error(`${process.execPath} (Node ${process.version}) was built without single-executable support`);

  const work = mkdtempSync(join(tmpdir(), 'taskgrant-plugin-'));
  try {
    const script = join(work, 'kubectl-taskgrant.cjs');
    await bundle(script);

    const blob = join(work, 'sea.blob');
    const config = join(work, 'sea-config.json');
    writeFileSync(
      config,
      JSON.stringify({
        main: script,
        output: blob,
        // The warning would end up on the stderr of every kubectl command.
        disableExperimentalSEAWarning: true,
        // V8's compiled code for the bundle, made by this same Node: about a third off start-up.
        useCodeCache: true,
        assets: { [WASM_ASSET]: join(dirname(require.resolve('@cedar-policy/cedar-wasm/nodejs')), WASM_ASSET), ...policyAssets() },
      }),
    );
    run('node --experimental-sea-config', process.execPath, ['--experimental-sea-config', config], { cwd: work });

    const built = join(work, EXECUTABLE);
    copyFileSync(process.execPath, built);
    chmodSync(built, 0o755);
    // LIEF, inside postject, warns about ELF note sections it does not know; the result is sound
    // (checked just below), so its output is shown only when it fails.
    run('postject', process.execPath, [require.resolve('postject/dist/cli.js'), built, 'NODE_SEA_BLOB', blob, '--sentinel-fuse', SEA_FUSE]);
    // Run once before anything reaches OUT_DIR, so a broken executable is never left there: no
    // Node on PATH, nothing of this repository in reach.
    const help = run(`${built} --help`, built, ['--help'], { cwd: work, env: { PATH: work } });
    if (!help.includes('kubectl taskgrant')) throw new Error(`${built} --help printed no usage:\n${help}`);

    // Owner and group 0, so that an unpacked file belongs to whoever unpacks it.
    const packed = join(work, ARCHIVE);
    run('tar', 'tar', ['--create', '--gzip', '--file', packed, '--owner=0', '--group=0', '--numeric-owner', '--directory', work, EXECUTABLE]);
    const version = `v${(JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string }).version}`;
    const manifest = renderManifest(readFileSync(TEMPLATE, 'utf8'), version, sha256(packed));

    mkdirSync(outDir, { recursive: true });
    const [executable, archive] = [join(outDir, EXECUTABLE), join(outDir, ARCHIVE)];
    // Unlinked first: writing over an executable that is running fails (ETXTBSY).
    for (const path of [executable, archive]) rmSync(path, { force: true });
    copyFileSync(built, executable);
    copyFileSync(packed, archive);
    writeFileSync(join(outDir, MANIFEST), manifest);

    const mb = (path: string) => `${(statSync(path).size / 1e6).toFixed(1)} MB`;
    console.error(
      `${executable} (${mb(executable)}, Node ${process.versions.node}), ${archive} (${mb(archive)}), ${join(outDir, MANIFEST)} (${version}) in ${((Date.now() - started) / 1000).toFixed(1)} s`,
    );
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

try {
  await main(resolve(process.argv[2] ?? join(root, 'dist')));
} catch (err) {
  console.error(err);
  process.exitCode = 1;
}
