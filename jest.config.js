// Two projects: `unit` tests sit beside the code and need nothing running; `integration`
// tests drive the real local control plane started by test/harness (compiled first: jest loads
// globalSetup with Node's own loader, not through ts-jest).
const tsJest = ['ts-jest', { useESM: true }];
const shared = {
  extensionsToTreatAsEsm: ['.ts'],
  moduleNameMapper: { '^(\\.{1,2}/.*)\\.js$': '$1' },
  transform: { '^.+\\.ts$': tsJest },
  testEnvironment: 'node',
};
export default {
  // Integration tests wait on a real API server; per-project testTimeout is not honoured by jest.
  testTimeout: 60_000,
  projects: [
    { ...shared, displayName: 'unit', testMatch: ['<rootDir>/src/**/*.test.ts', '<rootDir>/policies/tests/**/*.test.ts', '<rootDir>/bench/**/*.test.ts'] },
    {
      ...shared,
      displayName: 'integration',
      testMatch: ['<rootDir>/test/**/*.test.ts'],
      testPathIgnorePatterns: ['<rootDir>/test/chart/'],
      globalSetup: '<rootDir>/dist/test/harness/global-setup.js',
      globalTeardown: '<rootDir>/dist/test/harness/global-teardown.js',
    },
    // `make chart-test`: the Helm chart against its own control plane (needs helm, see hack/toolchain.sh).
    {
      ...shared,
      displayName: 'chart',
      testMatch: ['<rootDir>/test/chart/**/*.test.ts'],
      globalSetup: '<rootDir>/dist/test/harness/global-setup-chart.js',
      globalTeardown: '<rootDir>/dist/test/harness/global-teardown.js',
    },
  ],
};
