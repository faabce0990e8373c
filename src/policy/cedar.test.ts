import { describe, expect, it } from '@jest/globals';
import { cedarVersion, prepareSchema } from './cedar.js';
describe('cedar', () => {
  it('loads', () => {
    expect(cedarVersion()).toMatch(/^4\./);
    expect(prepareSchema('x', 'entity A;').type).toBe('ok');
  });
});
