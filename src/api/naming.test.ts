import { describe, expect, it } from '@jest/globals';
import { isTaskServiceAccountName, taskServiceAccountName } from './naming.js';

describe('task ServiceAccount names', () => {
  it('are tg-<task>-<uid8>, lower-case', () => {
    expect(taskServiceAccountName('summarize-errors', '0F6A1C2E-5B7D-4E8A-9C3F-2D1E0B9A8C7D')).toBe('tg-summarize-errors-0f6a1c2e');
  });
  it('are recognised by prefix alone, so look-alikes count as reserved', () => {
    expect(isTaskServiceAccountName(taskServiceAccountName('x', '12345678-0000'))).toBe(true);
    expect(isTaskServiceAccountName('tg-builder')).toBe(true);
    expect(isTaskServiceAccountName('default')).toBe(false);
    expect(isTaskServiceAccountName('agent-tg-x')).toBe(false);
  });
});
