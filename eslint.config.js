// Lint rules, including the one-way architecture of STYLE.md:
//   api, telemetry -> nothing of ours; policy -> api; kube -> api;
//   controller -> kube, policy, api; webhook -> policy, api (never controller or kube);
//   only src/policy imports cedar-wasm, only src/kube imports @kubernetes/client-node.
import tseslint from 'typescript-eslint';

const ours = (folder) => [`../${folder}/*`, `../${folder}/**`, `../../src/${folder}/*`];
const cedar = { group: ['@cedar-policy/*'], message: 'Only src/policy may import cedar-wasm.' };
const kubeClient = { group: ['@kubernetes/client-node'], message: 'Only src/kube may import @kubernetes/client-node.' };
const boundary = (files, forbidden, extra = []) => ({
  files,
  rules: {
    'no-restricted-imports': [
      'error',
      {
        patterns: [
          ...forbidden.map((folder) => ({ group: ours(folder), message: `${files[0]} must not depend on src/${folder} (STYLE.md).` })),
          ...extra,
        ],
      },
    ],
  },
});

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'coverage/**', 'bench/results/**'] },
  ...tseslint.configs.recommended,
  {
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/consistent-type-imports': 'error',
      'no-console': ['error', { allow: ['error'] }],
      eqeqeq: ['error', 'smart'],
    },
  },
  boundary(['src/api/**'], ['policy', 'kube', 'controller', 'webhook', 'telemetry', 'cli'], [cedar, kubeClient]),
  boundary(['src/telemetry/**'], ['api', 'policy', 'kube', 'controller', 'webhook', 'cli'], [cedar, kubeClient]),
  boundary(['src/policy/**'], ['kube', 'controller', 'webhook', 'cli'], [kubeClient]),
  boundary(['src/kube/**'], ['policy', 'controller', 'webhook', 'cli'], [cedar]),
  boundary(['src/controller/**'], ['webhook', 'cli'], [cedar, kubeClient]),
  boundary(['src/webhook/**'], ['controller', 'kube', 'cli'], [cedar, kubeClient]),
  boundary(['src/cli/**'], ['controller', 'webhook'], [cedar, kubeClient]),
  { files: ['src/cli/**', 'test/**', 'bench/**', 'hack/**', 'examples/**'], rules: { 'no-console': 'off' } },
  { files: ['**/*.js', '**/*.mjs'], ...tseslint.configs.disableTypeChecked },
);
