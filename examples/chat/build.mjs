// Bundles the page (src/app.js with wstrace-client from clients/js/dist, and
// OpenTelemetry in a separate chunk loaded only when tracing is on) into public/.
import { build } from 'esbuild';
import { existsSync, readdirSync, rmSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const sdk = fileURLToPath(new URL('../../clients/js/dist/index.js', import.meta.url));
if (!existsSync(sdk)) {
  console.error('chat: build the SDK first: npm ci && npm run build in clients/js');
  process.exit(1);
}
for (const f of readdirSync('public')) if (f.endsWith('.js') || f.endsWith('.map')) rmSync(`public/${f}`);
await build({
  entryPoints: ['src/app.js'],
  bundle: true,
  splitting: true,
  format: 'esm',
  target: 'es2022',
  minify: true,
  sourcemap: true,
  outdir: 'public',
  chunkNames: 'chunk-[hash]',
  alias: { 'wstrace-client': sdk },
  logLevel: 'warning',
});
