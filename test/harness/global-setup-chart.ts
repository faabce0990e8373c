// The chart suites' cluster: Node and RBAC authorization only, like a managed cluster whose API
// server cannot be configured; the chart must work there (RBAC-only mode).
import globalSetup from './global-setup.js';

export default async function globalSetupChart(): Promise<void> {
  await globalSetup({ authorizer: false });
}
