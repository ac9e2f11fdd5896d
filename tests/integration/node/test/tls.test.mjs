// wss:// with Node's ws over Node's TLS (not our code, not Python's): a CA
// and a server certificate made at test time with the openssl command line,
// pub/sub across two threads, the handshake's protocol and ALPN, and a
// client that does not trust the certificate refused.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import { after } from 'node:test';
import { Client, checkSubscribed, startServer, test } from '../lib/harness.mjs';

const dir = mkdtempSync(join(tmpdir(), 'wstrace-node-tls-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const run = (...args) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
run('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'ca.key', '-out', 'ca.pem',
  '-days', '2', '-subj', '/CN=wstrace node test CA');
writeFileSync(join(dir, 'ext.cnf'), 'subjectAltName=DNS:localhost,IP:127.0.0.1\n');
run('req', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'server.key', '-out', 'server.csr',
  '-subj', '/CN=localhost');
run('x509', '-req', '-in', 'server.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial',
  '-out', 'server.pem', '-days', '2', '-extfile', 'ext.cnf');
const ca = readFileSync(join(dir, 'ca.pem'));
const tlsArgs = ['--tls-cert', join(dir, 'server.pem'), '--tls-key', join(dir, 'server.key')];

test('pub/sub over wss with ws', async () => {
  const srv = await startServer(tlsArgs, { threads: 2 });
  try {
    const url = `wss://localhost:${srv.port}/ws`;
    const subs = await Promise.all([0, 1, 2, 3].map(() => Client.connect(url, { ca })));
    const pub = await Client.connect(url, { ca });
    const starts = [];
    for (const s of subs) starts.push(checkSubscribed(await s.subscribe('tls-room'), 'tls-room'));
    for (let i = 0; i < 50; i++) pub.send({ type: 'Message', channel: 'tls-room', content: `m${i}` });
    for (const [k, s] of subs.entries()) {
      for (let i = 0; i < 50; i++) {
        const m = await s.json(undefined, `message ${i}`);
        assert.equal(m.content, `m${i}`);
        assert.equal(m.offset, starts[k].offset + 1 + i);
      }
    }
    for (const c of [...subs, pub]) await c.close();
  } finally {
    assert.equal(await srv.stop(), 0, srv.stderr());
  }
});

test('TLS 1.3 by default, 1.2 on request, ALPN http/1.1', async () => {
  const srv = await startServer(tlsArgs);
  try {
    for (const [maxVersion, want] of [['TLSv1.3', 'TLSv1.3'], ['TLSv1.2', 'TLSv1.2']]) {
      const info = await new Promise((resolve, reject) => {
        const s = tls.connect({ host: '127.0.0.1', port: srv.port, servername: 'localhost', ca,
          maxVersion, ALPNProtocols: ['http/1.1'] }, () => {
          resolve({ version: s.getProtocol(), alpn: s.alpnProtocol, authorized: s.authorized });
          s.end();
        });
        s.on('error', reject);
      });
      assert.deepEqual(info, { version: want, alpn: 'http/1.1', authorized: true });
    }
  } finally {
    assert.equal(await srv.stop(), 0, srv.stderr());
  }
});

test('a client that does not trust the certificate is refused', async () => {
  const srv = await startServer(tlsArgs);
  try {
    await assert.rejects(Client.connect(`wss://localhost:${srv.port}/ws`),
      (e) => /self[- ]signed|unable to (get|verify)|certificate/i.test(String(e.message ?? e)));
    const c = await Client.connect(`wss://localhost:${srv.port}/ws`, { ca });
    assert.deepEqual(await c.request({ type: 'Ping', id: 1 }), { type: 'Pong', id: 1 });
    await c.close();
  } finally {
    assert.equal(await srv.stop(), 0, srv.stderr());
  }
});
