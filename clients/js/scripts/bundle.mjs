// Builds dist/wstrace-client.min.js (one minified ESM file for pages that
// load the SDK without a bundler) and prints its size, raw and gzipped.
import { build } from 'esbuild';
import { readFileSync } from 'node:fs';
import { gzipSync } from 'node:zlib';

const out = 'dist/wstrace-client.min.js';
await build({
  entryPoints: ['src/index.ts'],
  bundle: true,
  minify: true,
  format: 'esm',
  target: 'es2020',
  outfile: out,
  sourcemap: true,
  logLevel: 'warning',
});
const bytes = readFileSync(out);
console.log(`${out}: ${bytes.length} bytes minified, ${gzipSync(bytes, { level: 9 }).length} bytes gzipped`);
