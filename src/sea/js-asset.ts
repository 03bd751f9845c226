// JS modules the single binary carries beside its main script (build/bin.mjs, JS_ASSETS), evaluated
// the first time the program imports them. In the one CommonJS main script a module that is never run
// still costs memory at every start (its source, and what V8 makes of it compiling the script, which
// pre-parses every function in it): node-opcua and the opcua driver, 4 MB of JS, cost an agent
// without an opcua input 18–27 MB of RSS that way (drivers/opcua/README.md, Lazy loading). As an
// asset they cost nothing until a config names an opcua input or `sluice opcua browse` runs.
//
// The build replaces the main bundle's imports of an asset's modules with loadJsAsset(), and resolves
// the asset's own imports of the project's other modules (src/core) to `sluiceShared(path)`: the main
// bundle hands over its instances, so `instanceof SinkRefusal` or `Unsigned` holds on both sides and
// no class exists twice. An asset requires only Node's built-in modules, as the main script does; its
// libraries' optional packages are stubbed at build time (build/bin.mjs, `absent`).
import { createRequire, isBuiltin } from 'node:module';
import { dirname } from 'node:path';
import * as sea from 'node:sea';
import { compileFunction } from 'node:vm';

/** The project's modules an asset imports, by path from the repository root (`src/core/point.ts`). */
export type SharedModules = Readonly<Record<string, unknown>>;

export interface LoadedJsAsset {
  /** Source size of the asset. */
  bytes: number;
}

const loaded = new Map<string, { exports: unknown; info: LoadedJsAsset }>();

/** Built-ins only, like the SEA main's own require, without its warning for anything else. */
const builtinRequire = createRequire(process.execPath);
function assetRequire(id: string): unknown {
  if (!isBuiltin(id)) throw Object.assign(new Error(`Cannot find module '${id}' (not in the single binary)`), { code: 'MODULE_NOT_FOUND' });
  return builtinRequire(id);
}

/** The assets this process has evaluated (the metric sluice_binary_module_loaded_bytes). */
export function loadedJsAssets(): ReadonlyMap<string, LoadedJsAsset> {
  return new Map([...loaded].map(([name, { info }]) => [name, info]));
}

/** The exports of the asset `js/<name>.js`, evaluated once per process. */
export function loadJsAsset(name: string, shared: SharedModules): unknown {
  const done = loaded.get(name);
  if (done) return done.exports;
  let source: string;
  try {
    source = sea.getAsset(`js/${name}.js`, 'utf8');
  } catch (err) {
    throw new Error(`this binary carries no module ${name} (js/${name}.js)`, { cause: err });
  }
  // The name stack traces show: the binary, then the asset inside it. __filename and __dirname are the
  // main script's, so a library that looks beside itself looks where the main script's libraries do.
  const fn = compileFunction(source, ['exports', 'require', 'module', '__filename', '__dirname', 'sluiceShared'], { filename: `${process.execPath}!/js/${name}.js` });
  const mod = { exports: {} as unknown };
  const sharedModule = (path: string): unknown => {
    if (!Object.hasOwn(shared, path)) throw new Error(`the binary's module ${name} imports ${path}, which its build did not hand over`);
    return shared[path];
  };
  fn.call(mod.exports, mod.exports, assetRequire, mod, process.execPath, dirname(process.execPath), sharedModule);
  loaded.set(name, { exports: mod.exports, info: { bytes: Buffer.byteLength(source) } });
  return mod.exports;
}
