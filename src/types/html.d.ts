// HTML files are bundled as text (esbuild `loader: { '.html': 'text' }`, and a plugin in vitest.config.ts):
// the status page travels inside the binary.
declare module '*.html' {
  const text: string;
  export default text;
}
