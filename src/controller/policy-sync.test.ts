// Policy sync against small fakes: the directory plus labelled ConfigMaps load as one set, and a
// refused set names the ConfigMap that broke it.
import { describe, expect, it } from '@jest/globals';
import { readFileSync } from 'node:fs';
import { PolicyEngine } from '../policy/index.js';
import { silentLogger } from '../telemetry/logger.js';
import { Metrics } from '../telemetry/metrics.js';
import { PolicySync, type PolicyConfigMap, type PolicyConfigMaps } from './policy-sync.js';

class FakeConfigMaps implements PolicyConfigMaps {
  items: PolicyConfigMap[] = [];
  private handlers: Array<() => void> = [];
  list() {
    return this.items;
  }
  on(handler: () => void) {
    this.handlers.push(handler);
  }
  async start() {}
  async stop() {}
}

function setup() {
  const metrics = new Metrics();
  const engine = new PolicyEngine({ schemaText: readFileSync('policies/schema.cedarschema', 'utf8'), logger: silentLogger(), metrics });
  const configMaps = new FakeConfigMaps();
  const rejections: Array<{ name: string; message: string }> = [];
  const loaded: string[] = [];
  const sync = new PolicySync({
    engine,
    policyDir: 'policies',
    namespace: 'taskgrant-system',
    configMaps,
    reportRejection: async (cm, message) => void rejections.push({ name: cm.metadata.name, message }),
    logger: silentLogger(),
    metrics,
    onLoaded: (revision) => void loaded.push(revision),
  });
  return { engine, configMaps, rejections, loaded, sync };
}

const cm = (name: string, text: string): PolicyConfigMap => ({ metadata: { name, namespace: 'taskgrant-system', uid: `${name}-uid` }, data: { 'extra.cedar': text } });

describe('PolicySync', () => {
  it('loads the directory and the labelled ConfigMaps as one set', async () => {
    const { engine, configMaps, loaded, sync } = setup();
    configMaps.items = [cm('team-a', '@id("team-a-forbid-delete")\nforbid (principal, action == Action::"delete", resource);\n')];
    await sync.reload();
    expect(engine.ready).toBe(true);
    expect(engine.policyIds()).toContain('team-a-forbid-delete');
    expect(loaded).toHaveLength(1);
  });

  it('refuses a set a ConfigMap breaks, keeps the last good one and reports that ConfigMap only', async () => {
    const { engine, configMaps, rejections, sync } = setup();
    configMaps.items = [cm('good', '@id("good-forbid-delete")\nforbid (principal, action == Action::"delete", resource);\n')];
    await sync.reload();
    const revision = engine.revision;
    configMaps.items = [...configMaps.items, cm('broken', 'permit (principal, action, resource) when { context.nope };')];
    await sync.reload();
    expect(engine.revision).toBe(revision);
    expect(rejections.map((r) => r.name)).toEqual(['broken']);
    expect(rejections[0]?.message).toMatch(/^Policy set refused, the previous set stays in force/);
  });
});
