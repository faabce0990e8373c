// The plugin's connection: what a user without any kubeconfig is told.
import { afterEach, beforeEach, describe, expect, it } from '@jest/globals';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from './tasks-client.js';

let home: string;
const saved = { HOME: process.env.HOME, KUBECONFIG: process.env.KUBECONFIG };
beforeEach(() => {
  home = mkdtempSync(join(tmpdir(), 'tg-home-'));
  process.env.HOME = home;
  delete process.env.KUBECONFIG;
});
afterEach(() => {
  for (const [key, value] of Object.entries(saved)) {
    if (value === undefined) delete process.env[key];
    else process.env[key] = value;
  }
  rmSync(home, { recursive: true, force: true });
});

describe('connect', () => {
  it('says that no kubeconfig was found, rather than trying http://localhost:8080', () => {
    expect(() => connect({})).toThrow('no kubeconfig found (pass --kubeconfig, set KUBECONFIG or create ~/.kube/config)');
  });
});
