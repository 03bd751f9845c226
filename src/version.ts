// Stamped at bundle time (build/bundle.mjs; SLUICE_VERSION=x.y.z for releases).
declare const SLUICE_VERSION: string | undefined;

export const VERSION: string = typeof SLUICE_VERSION === 'string' ? SLUICE_VERSION : '0.0.0-dev';
