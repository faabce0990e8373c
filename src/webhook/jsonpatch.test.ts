import { describe, expect, it } from '@jest/globals';
import fc from 'fast-check';
import { ANNOTATION_POD_TASK_UID, TOKEN_FILE_ENV, TOKEN_MOUNT_PATH, TOKEN_VOLUME } from '../api/index.js';
import { applyPatch } from './fixtures/kit.js';
import { add, editArray, escapeToken, pointer, remove, setMapEntry, type ItemEdit } from './jsonpatch.js';
import { mutatePod, tokenSources, type Container, type EnvVar, type Pod, type TokenGrant, type Volume, type VolumeMount } from './pods.js';

describe('the test applier (the oracle for everything below)', () => {
  // RFC 6902 appendix A and RFC 6901 §5, so a broken oracle cannot make broken patches pass.
  it.each([
    [{ foo: 'bar' }, [{ op: 'add', path: '/baz', value: 'qux' }], { baz: 'qux', foo: 'bar' }],
    [{ foo: ['bar', 'baz'] }, [{ op: 'add', path: '/foo/1', value: 'qux' }], { foo: ['bar', 'qux', 'baz'] }],
    [{ baz: 'qux', foo: 'bar' }, [{ op: 'remove', path: '/baz' }], { foo: 'bar' }],
    [{ foo: ['bar', 'qux', 'baz'] }, [{ op: 'remove', path: '/foo/1' }], { foo: ['bar', 'baz'] }],
    [{ baz: 'qux', foo: 'bar' }, [{ op: 'replace', path: '/baz', value: 'boo' }], { baz: 'boo', foo: 'bar' }],
    [{ foo: ['bar'] }, [{ op: 'add', path: '/foo/-', value: ['abc', 'def'] }], { foo: ['bar', ['abc', 'def']] }],
    [{ 'a/b': 1, 'm~n': 2 }, [{ op: 'replace', path: '/a~1b', value: 3 }, { op: 'remove', path: '/m~0n' }], { 'a/b': 3 }],
    [{ '~1': 1 }, [{ op: 'remove', path: '/~01' }], {}],
  ] as const)('applies example %#', (doc, patch, expected) => {
    expect(applyPatch(doc, patch as never)).toEqual(expected);
  });

  it.each([
    [{ foo: 'bar' }, [{ op: 'add', path: '/baz/bat', value: 'qux' }]],
    [{ foo: 'bar' }, [{ op: 'remove', path: '/baz' }]],
    [{ foo: 'bar' }, [{ op: 'replace', path: '/baz', value: 1 }]],
    [{ foo: ['a'] }, [{ op: 'add', path: '/foo/2', value: 'x' }]],
    [{ foo: ['a'] }, [{ op: 'remove', path: '/foo/1' }]],
    [{ foo: ['a'] }, [{ op: 'remove', path: '/foo/01' }]],
  ] as const)('refuses invalid patch %#', (doc, patch) => {
    expect(() => applyPatch(doc, patch as never)).toThrow();
  });
});

describe('pointers', () => {
  it('escapes ~ before / (RFC 6901)', () => {
    expect(pointer(['metadata', 'annotations', ANNOTATION_POD_TASK_UID])).toBe('/metadata/annotations/taskgrant.io~1task-uid');
    expect(escapeToken('a~/b')).toBe('a~0~1b');
    expect(escapeToken('~1')).toBe('~01');
    expect(pointer(['spec', 'containers', 0, 'env', '-'])).toBe('/spec/containers/0/env/-');
  });

  it('round-trips any key through the applier', () => {
    fc.assert(
      fc.property(fc.dictionary(fc.string(), fc.integer()), fc.string(), fc.integer(), (map, key, value) => {
        const doc = { m: map };
        expect(applyPatch(doc, [add(['m', key], value)]).m[key]).toBe(value);
        if (Object.hasOwn(map, key)) expect(Object.hasOwn(applyPatch(doc, [remove(['m', key])]).m, key)).toBe(false);
      }),
    );
  });
});

describe('setMapEntry', () => {
  it('creates an absent map and keeps a present one', () => {
    const without = { metadata: { name: 'p' } };
    expect(applyPatch(without, [setMapEntry(['metadata', 'annotations'], undefined, 'a/b', 'v')])).toEqual({ metadata: { name: 'p', annotations: { 'a/b': 'v' } } });
    const withMap = { metadata: { annotations: { keep: 'me', 'a/b': 'old' } } };
    const annotations = withMap.metadata.annotations;
    expect(applyPatch(withMap, [setMapEntry(['metadata', 'annotations'], annotations, 'a/b', 'v')])).toEqual({ metadata: { annotations: { keep: 'me', 'a/b': 'v' } } });
  });
});

describe('editArray', () => {
  const editArb = fc.oneof(
    fc.constant<ItemEdit>({ type: 'keep' }),
    fc.constant<ItemEdit>({ type: 'remove' }),
    fc.integer().map<ItemEdit>((value) => ({ type: 'replace', value })),
  );

  it('edits in place in any combination (index order is right)', () => {
    fc.assert(
      fc.property(
        fc.option(fc.array(fc.integer({ min: 0, max: 999 }), { maxLength: 12 }), { nil: undefined }),
        fc.array(editArb, { minLength: 12, maxLength: 12 }),
        fc.array(fc.integer({ min: 1000 }), { maxLength: 3 }),
        fc.array(fc.integer({ min: 1000 }), { maxLength: 3 }),
        (items, edits, prepend, append) => {
          const patch = editArray(['list'], items, { edit: (_item, i) => edits[i]!, prepend, append });
          const expected = [
            ...prepend,
            ...(items ?? []).flatMap((item, i) => {
              const e = edits[i]!;
              return e.type === 'keep' ? [item] : e.type === 'replace' ? [e.value] : [];
            }),
            ...append,
          ];
          const result = applyPatch({ list: items }, patch);
          if (items === undefined && expected.length === 0) expect(result).toEqual({ list: undefined });
          else expect(result.list).toEqual(expected);
        },
      ),
    );
  });
});

describe('tokenSources', () => {
  const grant: TokenGrant = { serviceAccount: 'tg-x-00000000', taskUid: 'u', expirationSeconds: 900, audiences: [] };
  const clusterCa = { configMap: { name: 'kube-root-ca.crt', items: [{ key: 'ca.crt', path: 'ca.crt' }] } };
  it('uses the API server audience when none is listed, with the cluster CA beside the token', () => {
    expect(tokenSources(grant)).toEqual([{ serviceAccountToken: { path: 'token', expirationSeconds: 900 } }, clusterCa]);
  });
  it('gives each distinct audience its own file, the first as token', () => {
    expect(tokenSources({ ...grant, audiences: ['tools.example.com', 'vault', 'tools.example.com', ''] })).toEqual([
      { serviceAccountToken: { path: 'token', expirationSeconds: 900, audience: 'tools.example.com' } },
      { serviceAccountToken: { path: 'token-1', expirationSeconds: 900, audience: 'vault' } },
      { serviceAccountToken: { path: 'token-2', expirationSeconds: 900 } },
      clusterCa,
    ]);
  });
});

// ---- mutatePod against random pods -------------------------------------------------------

const tokenDir = TOKEN_MOUNT_PATH.replace(/\/+$/, '');
const keyArb = fc.oneof(fc.string({ minLength: 1, maxLength: 12 }), fc.constantFrom('a/b', 'x~y', '~1', '/~0/', 'taskgrant.io/task', ANNOTATION_POD_TASK_UID));
const volumeNameArb = fc.constantFrom('workspace', 'cache', 'kube-api-access-x7k2p', 'kube-api-access-9qzlm', TOKEN_VOLUME, 'config');
const mountPathArb = fc.constantFrom('/workspace', '/var/run/secrets/kubernetes.io/serviceaccount', TOKEN_MOUNT_PATH, `${tokenDir}`, `${tokenDir}/token`, '/var/run/secrets/taskgrant.io.bak', '/etc/config');
const envNameArb = fc.constantFrom('INCIDENT', 'POD_IP', TOKEN_FILE_ENV, 'A/B', 'HOME');

const containerArb = (name: string) =>
  fc.record(
    {
      name: fc.constant(name),
      image: fc.constantFrom('busybox', 'registry.example.com/agent:1'),
      env: fc.array(fc.record({ name: envNameArb, value: fc.string({ maxLength: 6 }) }), { maxLength: 5 }),
      volumeMounts: fc.array(fc.record({ name: volumeNameArb, mountPath: mountPathArb, readOnly: fc.boolean() }), { maxLength: 5 }),
      resources: fc.constant({}),
    },
    { requiredKeys: ['name', 'image'] },
  ) as fc.Arbitrary<Container>;

const podArb: fc.Arbitrary<Pod> = fc
  .record({
    hasMetadata: fc.boolean(),
    annotations: fc.option(fc.dictionary(keyArb, fc.string({ maxLength: 8 }), { maxKeys: 5 }), { nil: undefined }),
    labels: fc.option(fc.dictionary(keyArb, fc.string({ maxLength: 8 }), { maxKeys: 3 }), { nil: undefined }),
    containerCount: fc.integer({ min: 1, max: 3 }),
    initCount: fc.option(fc.integer({ min: 0, max: 2 }), { nil: undefined }),
    volumes: fc.option(fc.array(fc.record({ name: volumeNameArb, emptyDir: fc.constant({}) }), { maxLength: 6 }), { nil: undefined }),
    serviceAccountName: fc.option(fc.constantFrom('default', 'tg-x-00000000'), { nil: undefined }),
    serviceAccount: fc.option(fc.constantFrom('default', 'tg-x-00000000'), { nil: undefined }),
    automount: fc.option(fc.boolean(), { nil: undefined }),
  })
  .chain((p) =>
    fc
      .tuple(
        fc.tuple(...Array.from({ length: p.containerCount }, (_, i) => containerArb(`c${i}`))),
        p.initCount === undefined ? fc.constant(undefined) : fc.tuple(...Array.from({ length: p.initCount }, (_, i) => containerArb(`init${i}`))),
      )
      .map(([containers, initContainers]): Pod => ({
        apiVersion: 'v1',
        kind: 'Pod',
        ...(p.hasMetadata ? { metadata: { name: 'p', ...(p.labels ? { labels: p.labels } : {}), ...(p.annotations ? { annotations: p.annotations } : {}) } } : {}),
        spec: {
          containers,
          ...(initContainers ? { initContainers } : {}),
          ...(p.volumes ? { volumes: p.volumes } : {}),
          ...(p.serviceAccountName !== undefined ? { serviceAccountName: p.serviceAccountName } : {}),
          ...(p.serviceAccount !== undefined ? { serviceAccount: p.serviceAccount } : {}),
          ...(p.automount !== undefined ? { automountServiceAccountToken: p.automount } : {}),
          restartPolicy: 'Never',
        },
      })),
  );

const grantArb: fc.Arbitrary<TokenGrant> = fc.record({
  serviceAccount: fc.constant('tg-x-00000000'),
  taskUid: fc.uuid(),
  expirationSeconds: fc.integer({ min: 600, max: 86_400 }).filter((n) => n !== 3607),
  audiences: fc.array(fc.constantFrom('', 'tools.example.com', 'vault'), { maxLength: 3 }),
});

/** What a task pod should look like, stated declaratively (filters and maps, no patch indices). */
function intended(pod: Pod, grant: TokenGrant): Pod {
  const dropped = { has: (name: string) => name.startsWith('kube-api-access-') };
  const tokenVolume: Volume = { name: TOKEN_VOLUME, projected: { sources: tokenSources(grant) } };
  const tokenEnv: EnvVar = { name: TOKEN_FILE_ENV, value: '/var/run/secrets/taskgrant.io/token' };
  const underTokenDir = (p: string) => p.replace(/\/+$/, '') === tokenDir || p.startsWith(`${tokenDir}/`);
  const volumes = pod.spec.volumes ?? [];
  const firstToken = volumes.findIndex((v) => v.name === TOKEN_VOLUME);
  const fix = (c: Container): Container => {
    const env = c.env ?? [];
    const firstEnv = env.findIndex((e) => e.name === TOKEN_FILE_ENV);
    const mounts: VolumeMount[] = (c.volumeMounts ?? []).filter((m) => !dropped.has(m.name) && m.name !== TOKEN_VOLUME && !underTokenDir(m.mountPath));
    return {
      ...c,
      volumeMounts: [...mounts, { name: TOKEN_VOLUME, mountPath: TOKEN_MOUNT_PATH, readOnly: true }],
      env: firstEnv < 0 ? [tokenEnv, ...env] : env.flatMap((e, i) => (e.name !== TOKEN_FILE_ENV ? [e] : i === firstEnv ? [tokenEnv] : [])),
    };
  };
  return {
    ...pod,
    metadata: { ...pod.metadata, annotations: { ...pod.metadata?.annotations, [ANNOTATION_POD_TASK_UID]: grant.taskUid } },
    spec: {
      ...pod.spec,
      serviceAccountName: grant.serviceAccount,
      ...(pod.spec.serviceAccount !== undefined ? { serviceAccount: grant.serviceAccount } : {}),
      automountServiceAccountToken: false,
      volumes: [
        ...volumes.flatMap((v, i) => (dropped.has(v.name) ? [] : v.name !== TOKEN_VOLUME ? [v] : i === firstToken ? [tokenVolume] : [])),
        ...(firstToken < 0 ? [tokenVolume] : []),
      ],
      containers: pod.spec.containers.map(fix),
      ...(pod.spec.initContainers ? { initContainers: pod.spec.initContainers.map(fix) } : {}),
    },
  };
}

describe('mutatePod', () => {
  it('yields the intended task pod and leaves everything else as it was', () => {
    fc.assert(
      fc.property(podArb, grantArb, (pod, grant) => {
        const before = structuredClone(pod);
        const result = applyPatch(pod, mutatePod(pod, grant));
        expect(pod).toEqual(before); // pure
        expect(result).toEqual(intended(pod, grant));
      }),
      { numRuns: 300 },
    );
  });

  it('holds the token invariants in every container and init container', () => {
    fc.assert(
      fc.property(podArb, grantArb, (pod, grant) => {
        const result = applyPatch(pod, mutatePod(pod, grant));
        const volumes = result.spec.volumes ?? [];
        expect(volumes.filter((v) => v.name === TOKEN_VOLUME)).toHaveLength(1);
        expect(volumes.some((v) => v.name.startsWith('kube-api-access-'))).toBe(false);
        for (const c of [...result.spec.containers, ...(result.spec.initContainers ?? [])]) {
          expect(c.volumeMounts?.filter((m) => m.mountPath === TOKEN_MOUNT_PATH)).toEqual([{ name: TOKEN_VOLUME, mountPath: TOKEN_MOUNT_PATH, readOnly: true }]);
          expect(c.volumeMounts?.some((m) => m.name.startsWith('kube-api-access-'))).toBe(false);
          expect(c.env?.filter((e) => e.name === TOKEN_FILE_ENV)).toEqual([{ name: TOKEN_FILE_ENV, value: '/var/run/secrets/taskgrant.io/token' }]);
          // Every other env entry survives, in order.
          const original = [...pod.spec.containers, ...(pod.spec.initContainers ?? [])].find((o) => o.name === c.name)!;
          expect(c.env?.filter((e) => e.name !== TOKEN_FILE_ENV)).toEqual((original.env ?? []).filter((e) => e.name !== TOKEN_FILE_ENV));
        }
        expect(result.spec.serviceAccountName).toBe(grant.serviceAccount);
        expect(result.spec.automountServiceAccountToken).toBe(false);
        expect(result.metadata?.annotations?.[ANNOTATION_POD_TASK_UID]).toBe(grant.taskUid);
      }),
      { numRuns: 200 },
    );
  });

  it('converges when reinvoked on its own output', () => {
    fc.assert(
      fc.property(podArb, grantArb, (pod, grant) => {
        const once = applyPatch(pod, mutatePod(pod, grant));
        expect(applyPatch(once, mutatePod(once, grant))).toEqual(once);
      }),
      { numRuns: 200 },
    );
  });
});
