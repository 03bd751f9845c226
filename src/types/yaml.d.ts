// YAML files are bundled as text (esbuild `loader: { '.yaml': 'text' }`, and a plugin in vitest.config.ts).
declare module '*.yaml' {
  const text: string;
  export default text;
}
