// The plugin's entry script as kubectl runs it: on a Node too old for taskgrant it says so in
// one line and exits 2, instead of failing somewhere inside a dependency.
import { describe, expect, it } from '@jest/globals';
import { spawnSync } from 'node:child_process';

const pretendNode = (version: string) => `data:text/javascript,Object.defineProperty(process,'versions',{value:{...process.versions,node:'${version}'}})`;

describe('bin/kubectl-taskgrant', () => {
  it.each(['20.20.2', '22.18.0'])('refuses Node %s in one line, exit 2', (version) => {
    const run = spawnSync(process.execPath, ['--import', pretendNode(version), 'bin/kubectl-taskgrant', 'list'], { encoding: 'utf8' });
    expect(run.status).toBe(2);
    expect(run.stderr.trim().split('\n')).toEqual([`Error: kubectl-taskgrant needs Node 22.19 or newer, and this is Node ${version}; install a newer Node (taskgrant is tested on Node 24).`]);
  });

  it('starts the CLI on a supported Node', () => {
    const run = spawnSync(process.execPath, ['bin/kubectl-taskgrant', '--help'], { encoding: 'utf8' });
    expect(run.status).toBe(0);
    expect(run.stdout).toMatch(/explain/);
  });
});
