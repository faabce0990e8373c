export * from './constants.js';
export * from './duration.js';
export * from './guards.js';
export * from './permissions.js';
export * from './sensitivity.js';
export * from './types.js';
export * from './naming.js';
export * from './identity.js';
