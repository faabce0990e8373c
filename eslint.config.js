// Lint rules, including the one-way architecture of STYLE.md:
//   api, telemetry -> nothing of ours; policy -> api; kube -> api;
//   controller -> kube, policy, api; webhook, receipts -> policy, api (never controller, kube or each other);
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
  boundary(['src/api/**'], ['policy', 'kube', 'controller', 'webhook', 'receipts', 'authz', 'telemetry', 'cli'], [cedar, kubeClient]),
  boundary(['src/telemetry/**'], ['api', 'policy', 'kube', 'controller', 'webhook', 'receipts', 'authz', 'cli'], [cedar, kubeClient]),
  boundary(['src/policy/**'], ['kube', 'controller', 'webhook', 'receipts', 'authz', 'cli'], [kubeClient]),
  boundary(['src/kube/**'], ['policy', 'controller', 'webhook', 'receipts', 'authz', 'cli'], [cedar]),
  boundary(['src/controller/**'], ['webhook', 'receipts', 'authz', 'cli'], [cedar, kubeClient]),
  boundary(['src/webhook/**'], ['controller', 'kube', 'receipts', 'authz', 'cli'], [cedar, kubeClient]),
  boundary(['src/authz/**'], ['controller', 'kube', 'webhook', 'receipts', 'cli'], [cedar, kubeClient]),
  boundary(['src/receipts/**'], ['controller', 'kube', 'webhook', 'authz', 'cli'], [cedar, kubeClient]),
  boundary(['src/cli/**'], ['controller', 'webhook', 'authz'], [cedar, kubeClient]),
  { files: ['src/cli/**', 'test/**', 'bench/**', 'hack/**', 'examples/**'], rules: { 'no-console': 'off' } },
  { files: ['**/*.js', '**/*.mjs'], ...tseslint.configs.disableTypeChecked },
);
