// `npm pack` makes a package that installs (offline: it has no dependency),
// imports as ESM under its name, and type-checks from a TypeScript consumer
// through its `exports` types.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';

const pkgDir = fileURLToPath(new URL('..', import.meta.url));
const tmp = mkdtempSync(join(tmpdir(), 'wstrace-client-pack-'));
after(() => rmSync(tmp, { recursive: true, force: true }));
const npm = (args, cwd) => execFileSync('npm', args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });

test('npm pack: an installable package with the built files, the types and the README only', () => {
  // --ignore-scripts: the tests use the build already made (no rebuild under other tests' feet).
  const [info] = JSON.parse(npm(['pack', '--ignore-scripts', '--json', '--pack-destination', tmp], pkgDir));
  const files = info.files.map((f) => f.path);
  for (const f of ['package.json', 'README.md', 'dist/index.js', 'dist/index.d.ts', 'dist/client.d.ts',
    'dist/wstrace-client.min.js']) {
    assert.ok(files.includes(f), `${f} in the package`);
  }
  assert.ok(!files.some((f) => f.startsWith('src/') || f.startsWith('test/') || f.includes('node_modules')),
    `no sources or tests: ${files}`);
  const app = join(tmp, 'app');
  execFileSync('mkdir', ['-p', app]);
  writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'app', version: '1.0.0', private: true, type: 'module' }));
  npm(['install', '--offline', '--no-audit', '--no-fund', '--loglevel=error', join(tmp, info.filename)], app);
  const out = execFileSync(process.execPath, ['--input-type=module', '-e',
    "import { Client, Backoff, WstraceError, parseTraceparent } from 'wstrace-client';" +
    "console.log([typeof Client, typeof Backoff, typeof WstraceError, typeof parseTraceparent].join(','))"],
  { cwd: app, encoding: 'utf8' });
  assert.equal(out.trim(), 'function,function,function,function');
  // A TypeScript consumer type-checks against the published declarations.
  writeFileSync(join(app, 'consumer.ts'), `
import { Client, type Message, type Gap, type PublishResult } from 'wstrace-client';
const c = new Client('ws://127.0.0.1:1/ws', { token: 't', maxReconnectDelay: 1000 });
const sub = c.subscribe('room:1', (m: Message) => { const n: number = m.offset; void n; });
sub.on('gap', (g: Gap) => { const f: number = g.from; void f; });
const p: Promise<PublishResult> = c.publish('room:1', 'hi');
void p; void sub.ready;
c.close();
`);
  const tsc = join(pkgDir, 'node_modules/typescript/bin/tsc');
  execFileSync(process.execPath, [tsc, '--noEmit', '--strict', '--module', 'nodenext', '--moduleResolution',
    'nodenext', '--target', 'es2020', '--lib', 'es2020,dom', 'consumer.ts'], { cwd: app, encoding: 'utf8' });
});

test("the README's bundle size is the build's (to 0.2 KB)", async () => {
  const { readFileSync } = await import('node:fs');
  const { gzipSync } = await import('node:zlib');
  const readme = readFileSync(join(pkgDir, 'README.md'), 'utf8');
  const m = /\*\*([\d.]+) KB minified, ([\d.]+) KB gzipped\*\*/.exec(readme);
  assert.ok(m, 'the README states the size');
  const bundle = readFileSync(join(pkgDir, 'dist/wstrace-client.min.js'));
  const kb = (n) => n / 1000;
  assert.ok(Math.abs(kb(bundle.length) - Number(m[1])) <= 0.2, `minified: ${bundle.length} bytes, README says ${m[1]} KB`);
  const gz = gzipSync(bundle, { level: 9 }).length;
  assert.ok(Math.abs(kb(gz) - Number(m[2])) <= 0.2, `gzipped: ${gz} bytes, README says ${m[2]} KB`);
});
