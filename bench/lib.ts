// What the benchmarks call in-process (bundled by bench/rollup.mjs with esbuild).
export { SqliteRing } from '../src/store/ring.js';
export { queryAggregate } from '../src/query/query.js';
