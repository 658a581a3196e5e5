// Node 20 → native peer, through the npm package (pkg/, built by scripts/build-pkg.sh):
// packets (batched, 0xCD-sized), stream exchanges, Peer.open() full duplex, and every
// error code (status 505, network, timeout, frame, invalid_address, closed). Also what
// open() does elsewhere (Chromium: times out, half duplex; workerd: full duplex), the
// README's Node snippet as written, the packed package installed with npm against
// `gossiphttp listen` (the 505 error names the fix), and the TypeScript types (tsc --strict).
//
// Node's fetch speaks HTTP/1.1 only, so the native peer (`gossiphttp listen`) runs with
// --accept-http1. It serves TLS with a self-signed certificate (makeCert), and Node must trust it: NODE_EXTRA_CA_CERTS
// is read once at start-up, so this file first makes the certificate, then runs itself
// again (`node --test`) with NODE_EXTRA_CA_CERTS pointing at it. No certificate check is
// turned off. Plain-HTTP mock servers (node:http) cover what a well-behaved peer never
// does (malformed bodies, silence) and show what goes on the wire.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { concat, freePort, hex, makeCert, pattern, pkgDir, repoRoot, serveStatic, spawnTracked, startPeer, startWorkerd, stopAll, stopChild, waitUntil, withTimeout } from './support.mjs';

const self = fileURLToPath(import.meta.url);
const TLS_ENV = 'GOSSIPHTTP_NODE_TEST_TLS_DIR';
const tlsDir = process.env[TLS_ENV];

after(stopAll);

if (!tlsDir) {
  // Parent: make the certificate, then run this file again with Node trusting it.
  test('Node fetch → native peer over TLS (its certificate trusted through NODE_EXTRA_CA_CERTS)', { timeout: 240_000 }, async (t) => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gossiphttp-node-tls-'));
    t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
    makeCert(dir);
    // Without NODE_TEST_CONTEXT, the inner `node --test` runs as a top-level run.
    const { NODE_TEST_CONTEXT, ...env } = process.env;
    const child = spawn(process.execPath, ['--test', '--test-reporter=tap', self], {
      cwd: repoRoot,
      env: { ...env, [TLS_ENV]: dir, NODE_EXTRA_CA_CERTS: path.join(dir, 'cert.pem') },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (out += d));
    const code = await withTimeout(new Promise((r) => child.on('exit', (c, s) => r(c ?? s))), 230_000, 'inner node --test');
    for (const line of out.split('\n')) {
      if (/^\s*(not )?ok \d+ - /.test(line) || /^# (pass|fail|tests)/.test(line)) t.diagnostic(line.trim());
    }
    assert.equal(code, 0, `the inner run failed:\n${out}`);
    const passed = Number(/^# pass (\d+)/m.exec(out)?.[1] ?? 0);
    assert.ok(passed >= 10, `expected the inner tests to run (passed: ${passed})\n${out}`);
  });
} else {
  await runSuite(tlsDir);
}

async function runSuite(dir) {
  const gossip = await import(path.join(pkgDir, 'gossiphttp.js'));
  gossip.initSync({ module: fs.readFileSync(path.join(pkgDir, 'gossiphttp_bg.wasm')) });
  const { Peer, encodeFrame, FrameDecoder } = gossip;
  const tls = ['--tls-cert', path.join(dir, 'cert.pem'), '--tls-key', path.join(dir, 'key.pem')];
  const enc = (s) => new TextEncoder().encode(s);

  let peer; // gossiphttp listen: TLS, HTTP/1.1 accepted, echoes streams
  before(async () => {
    peer = await startPeer([...tls, '--accept-http1']);
    assert.match(peer.url, /^https:\/\/127\.0\.0\.1:\d+$/);
  });

  /** A plain HTTP/1.1 server; `handler(req, body, res)` sees each request whole. */
  async function mock(handler) {
    const requests = [];
    const server = http.createServer((req, res) => {
      const chunks = [];
      req.on('data', (c) => chunks.push(c));
      req.on('end', () => {
        const body = Buffer.concat(chunks);
        requests.push({ method: req.method, url: req.url, headers: req.headers, body });
        handler(req, body, res);
      });
    });
    await new Promise((r) => server.listen(0, '127.0.0.1', r));
    return {
      url: `http://127.0.0.1:${server.address().port}`,
      requests,
      close: () => new Promise((r) => (server.closeAllConnections(), server.close(r))),
    };
  }

  async function rejection(promise) {
    try {
      await promise;
    } catch (e) {
      return e;
    }
    assert.fail('expected a rejection');
  }

  test('packets sent in one turn share one POST /message, frames in order, byte-exact', async () => {
    const m = await mock((req, body, res) => res.writeHead(200).end());
    try {
      const p = new Peer(m.url + '/', { token: 's3cret' });
      assert.equal(p.url, m.url);
      const packets = [enc('alpha'), new Uint8Array(0), pattern(1400), pattern(70_000, 7)];
      const sent = packets.map((x) => p.send(x));
      packets[0].fill(0); // send() copied it
      await Promise.all(sent);
      assert.equal(m.requests.length, 1, 'one request for the whole turn');
      const r = m.requests[0];
      assert.equal(r.method, 'POST');
      assert.equal(r.url, '/api/v1/ckit/transport/message');
      assert.equal(r.headers['content-type'], 'application/x.ckit');
      assert.equal(r.headers.authorization, 'Bearer s3cret');
      const want = concat([enc('alpha'), new Uint8Array(0), pattern(1400), pattern(70_000, 7)].map((x) => encodeFrame(x)));
      assert.equal(hex(r.body), hex(want));
      assert.equal(r.body[0], 0xcc);
      // The 70,000-byte packet went out with a 0xCD header.
      const cd = 3 + 5 + 3 + 3 + 1400;
      assert.equal(hex(r.body.subarray(cd, cd + 5)), 'cd00011170');
      // A later turn is a new request.
      await p.send(enc('later'));
      assert.equal(m.requests.length, 2);
      assert.equal(hex(m.requests[1].body), 'cc00056c61746572');
    } finally {
      await m.close();
    }
  });

  test('Node → gossiphttp listen (TLS, HTTP/1.1): send and sendMany arrive byte-exact, 0xCD-sized too', async () => {
    const p = new Peer(peer.url);
    const big = pattern(100_000, 3);
    await Promise.all([p.send(enc('one')), p.send(enc('two'))]);
    await p.sendMany([enc('three'), big, new Uint8Array([0xcc, 0xcd])]);
    const got = await peer.packets(5);
    assert.deepEqual(
      got.map((e) => e.hex),
      [enc('one'), enc('two'), enc('three'), big, new Uint8Array([0xcc, 0xcd])].map(hex),
    );
    assert.equal(got[3].len, 100_000);
    await p.sendMany([]); // nothing to send: no request, resolves
  });

  test('Node → gossiphttp listen: an exchange returns the echoed bytes (for await, next, bytes)', async () => {
    const p = new Peer(peer.url);
    const data = [enc('hello '), pattern(200_000, 1), enc('world')];
    const ex = await p.exchange(data);
    const chunks = [];
    for await (const c of ex) chunks.push(c);
    assert.equal(hex(concat(chunks)), hex(concat(data)));
    assert.equal(await ex.next(), undefined, 'next() after the end');
    const closed = await peer.streamClose();
    assert.equal(closed.hex, hex(concat(data)), 'the native peer received the exchange byte-exact');

    const ex2 = await p.exchange(enc('single chunk'));
    assert.equal(new TextDecoder().decode(await ex2.bytes()), 'single chunk');
    await peer.streamClose();

    const ex3 = await p.exchange([]);
    assert.equal((await ex3.bytes()).length, 0, 'an empty exchange echoes nothing');
    await peer.streamClose();
  });

  test('Peer.open() is full duplex in Node: the echo of a write arrives before close()', async () => {
    const p = new Peer(peer.url);
    const s = await p.open();
    await s.write(enc('ping'));
    const first = await withTimeout(s.next(), 5000, 'echo while the request body is open');
    assert.equal(new TextDecoder().decode(first), 'ping');
    const big = pattern(150_000, 9);
    const w = s.write(big);
    let got = new Uint8Array(0);
    while (got.length < big.length) got = concat([got, await withTimeout(s.next(), 5000, 'echo of the big write')]);
    await w;
    assert.equal(hex(got), hex(big));
    await s.close();
    assert.equal(await s.next(), undefined, 'the peer ends after our close()');
    const err = await rejection(s.write(enc('late')));
    assert.equal(err.code, 'closed');
    const closed = await peer.streamClose();
    assert.equal(closed.hex, hex(concat([enc('ping'), big])));
  });

  test('non-200 rejects with code "status": a peer without HTTP/1.1 answers 505', async () => {
    const h2only = await startPeer(tls);
    try {
      const p = new Peer(h2only.url);
      const err = await rejection(p.send(enc('x')));
      assert.equal(err.code, 'status');
      assert.equal(err.status, 505);
      assert.ok(err instanceof Error);
      const err2 = await rejection(p.exchange(enc('x')));
      assert.equal(err2.code, 'status');
      assert.equal(err2.status, 505);
    } finally {
      await h2only.stop();
    }
    const m = await mock((req, body, res) => res.writeHead(401).end('missing or wrong bearer token\n'));
    try {
      const err = await rejection(new Peer(m.url).sendMany([enc('a')]));
      assert.equal(err.code, 'status');
      assert.equal(err.status, 401);
      assert.match(err.message, /401.*bearer token/);
    } finally {
      await m.close();
    }
  });

  test('an unreachable port rejects with code "network"; a silent peer with "timeout"', async () => {
    const port = await freePort();
    const err = await rejection(new Peer(`http://127.0.0.1:${port}`).send(enc('x')));
    assert.equal(err.code, 'network');
    assert.match(err.message, /ECONNREFUSED|refused/i);

    const m = await mock(() => {}); // reads the body, never answers
    try {
      const t0 = Date.now();
      const e = await rejection(new Peer(m.url, { timeoutMs: 300 }).send(enc('x')));
      assert.equal(e.code, 'timeout');
      const took = Date.now() - t0;
      assert.ok(took >= 250 && took < 5000, `timed out after ${took} ms`);
    } finally {
      await m.close();
    }
  });

  test('an exchange whose answer stalls mid-body times out between chunks', async () => {
    const server = http.createServer((req, res) => {
      req.resume();
      res.writeHead(200, { 'content-type': 'application/x.ckit' });
      res.write(Buffer.from('cc00026869', 'hex')); // "hi", then silence
    });
    await new Promise((r) => server.listen(0, '127.0.0.1', r));
    try {
      const ex = await new Peer(`http://127.0.0.1:${server.address().port}`, { timeoutMs: 300 }).exchange(enc('x'));
      assert.equal(new TextDecoder().decode(await ex.next()), 'hi');
      const err = await rejection(ex.next());
      assert.equal(err.code, 'timeout');
    } finally {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    }
  });

  test('malformed /stream answers reject with code "frame"', async () => {
    for (const [body, before] of [
      ['cc0002686900', 'hi'], // good frame, then a bad magic byte
      ['cc00056865', 'he'], // ends inside a frame: the bytes that came are handed out first
      ['cd00', ''], // ends inside a header
    ]) {
      const m = await mock((req, _b, res) => res.writeHead(200, { 'content-type': 'application/x.ckit' }).end(Buffer.from(body, 'hex')));
      try {
        const ex = await new Peer(m.url).exchange(enc('x'));
        let got = '';
        let err;
        try {
          for (;;) {
            const c = await ex.next();
            if (c === undefined) break;
            got += new TextDecoder().decode(c);
          }
        } catch (e) {
          err = e;
        }
        assert.equal(err?.code, 'frame', `body ${body}: ${err}`);
        assert.equal(got, before, `body ${body}`);
        assert.equal((await rejection(ex.next())).code, 'frame', 'the error sticks');
      } finally {
        await m.close();
      }
    }
  });

  test('maxPacketSize, bad URLs, bad arguments and cancel() fail with their codes', async () => {
    const m = await mock((req, body, res) => res.writeHead(200).end());
    try {
      const p = new Peer(m.url, { maxPacketSize: 10 });
      const t = (f) => {
        try {
          f();
        } catch (e) {
          return e;
        }
        assert.fail('expected a throw');
      };
      // Methods that return a promise reject (never throw).
      assert.equal((await rejection(p.send(new Uint8Array(11)))).code, 'frame');
      assert.equal((await rejection(p.sendMany([new Uint8Array(1), new Uint8Array(11)]))).code, 'frame');
      await p.send(new Uint8Array(10));
      assert.equal(m.requests.length, 1, 'nothing over the limit was sent');
      assert.equal((await rejection(p.send('not bytes'))).code, 'invalid_argument');
      assert.equal((await rejection(p.sendMany(enc('not an array')))).code, 'invalid_argument');
      assert.equal((await rejection(p.exchange([enc('a'), 42]))).code, 'invalid_argument');
      assert.equal(t(() => new Peer('127.0.0.1:7946')).code, 'invalid_address');
      assert.equal(t(() => new Peer('ftp://127.0.0.1:7946')).code, 'invalid_address');
      assert.equal(t(() => new Peer('not a url')).code, 'invalid_address');
      assert.equal(t(() => new Peer(m.url, { timeoutMs: -1 })).code, 'invalid_options');
      assert.equal(new Peer('https://gossip.example.workers.dev/').url, 'https://gossip.example.workers.dev');
    } finally {
      await m.close();
    }

    const ex = await new Peer(peer.url).exchange(pattern(10_000));
    ex.cancel();
    assert.equal((await rejection(ex.next())).code, 'closed');
    await peer.streamClose();

    // Leaving a for-await loop early cancels the exchange.
    const ex2 = await new Peer(peer.url).exchange([enc('a'), enc('b')]);
    for await (const c of ex2) {
      assert.ok(c.length > 0);
      break;
    }
    assert.equal((await rejection(ex2.next())).code, 'closed');
    await peer.streamClose();
  });

  test("pkg/README.md's Node snippet runs as written (package exports, initSync, send, open)", async (t) => {
    const readme = fs.readFileSync(path.join(pkgDir, 'README.md'), 'utf8');
    const block = /### Node 20\+[\s\S]*?```js\n([\s\S]*?)```/.exec(readme)?.[1];
    assert.ok(block, 'the README has a Node snippet');
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gossiphttp-readme-'));
    t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
    fs.mkdirSync(path.join(dir, 'node_modules'));
    fs.symlinkSync(pkgDir, path.join(dir, 'node_modules', 'gossiphttp'), 'dir');
    fs.writeFileSync(path.join(dir, 'peer.mjs'), block);
    const child = spawn(process.execPath, ['peer.mjs'], {
      cwd: dir,
      env: { ...process.env, PEER_URL: peer.url },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (out += d));
    const code = await withTimeout(new Promise((r) => child.on('exit', (c) => r(c))), 20_000, 'README snippet');
    assert.equal(code, 0, out);
    assert.match(out, /^ping$/m, 'the echo came back while the stream was open');
    const [packet] = await peer.packets(1);
    assert.equal(packet.hex, hex(enc('hello')));
    assert.equal((await peer.streamClose()).hex, hex(enc('ping')));
  });

  /** Runs `cmd args` to its end (bounded); resolves `{ code, out, err }`. */
  function runCommand(cmd, args, { cwd, timeoutMs = 60_000 } = {}) {
    const child = spawn(cmd, args, { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    const done = new Promise((r) => child.on('exit', (code, signal) => r({ code: code ?? signal, out, err })));
    return withTimeout(done, timeoutMs, `${path.basename(cmd)} ${args[0]}`).catch((e) => {
      child.kill('SIGKILL');
      throw e;
    });
  }

  test('npm install of the packed package: against `gossiphttp listen` (no HTTP/1.1) the 505 error names the fix; against a peer that accepts HTTP/1.1 send() succeeds', { timeout: 120_000 }, async (t) => {
    // What a JS developer does: pack the package, install the tarball into an
    // app, and send from there with Node's fetch (HTTP/1.1).
    const cli = path.join(repoRoot, 'target', 'debug', 'gossiphttp');
    assert.ok(fs.existsSync(cli), `${cli} is missing: run \`cargo build --bin gossiphttp\` first`);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gossiphttp-npm-'));
    t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
    const pack = await runCommand('npm', ['pack', pkgDir, '--pack-destination', dir, '--json'], { cwd: dir });
    assert.equal(pack.code, 0, `npm pack failed:\n${pack.out}${pack.err}`);
    const tarball = path.join(dir, JSON.parse(pack.out)[0].filename);
    const app = path.join(dir, 'app');
    fs.mkdirSync(app);
    fs.writeFileSync(path.join(app, 'package.json'), JSON.stringify({ name: 'app', private: true, type: 'module' }));
    const install = await runCommand('npm', ['install', '--offline', '--no-audit', '--no-fund', tarball], { cwd: app });
    assert.equal(install.code, 0, `npm install failed:\n${install.out}${install.err}`);
    fs.writeFileSync(
      path.join(app, 'send.mjs'),
      `import { readFileSync } from 'node:fs';
import { initSync, Peer } from 'gossiphttp';
initSync({ module: readFileSync(new URL(import.meta.resolve('gossiphttp/gossiphttp_bg.wasm'))) });
const results = {};
for (const [name, url] of Object.entries(JSON.parse(process.argv[2]))) {
  try {
    await new Peer(url).send(new TextEncoder().encode('hello'));
    results[name] = { ok: true };
  } catch (e) {
    results[name] = { code: e.code, status: e.status, message: e.message };
  }
}
console.log(JSON.stringify(results));
`,
    );

    const port = await freePort();
    const listen = spawnTracked(cli, ['listen', '--addr', `127.0.0.1:${port}`]);
    listen.stdout.resume();
    try {
      await waitUntil(
        () =>
          new Promise((resolve, reject) => {
            if (listen.exitCode !== null) return reject(new Error(`gossiphttp listen exited (${listen.exitCode}):\n${listen.output}`));
            const socket = net.connect(port, '127.0.0.1', () => (socket.destroy(), resolve(true)));
            socket.on('error', () => resolve(false));
          }),
        { label: 'gossiphttp listen accepting' },
      );
      const peers = { h2only: `http://127.0.0.1:${port}`, http1: peer.url };
      const run = await runCommand(process.execPath, ['send.mjs', JSON.stringify(peers)], { cwd: app, timeoutMs: 30_000 });
      assert.equal(run.code, 0, run.out + run.err);
      const results = JSON.parse(run.out.trim().split('\n').pop());

      const refused = results.h2only;
      assert.equal(refused.code, 'status', JSON.stringify(refused));
      assert.equal(refused.status, 505);
      assert.match(refused.message, /the peer refused HTTP\/1\.1 \(505\): this runtime's fetch speaks HTTP\/1\.1/);
      assert.match(refused.message, /enable HTTP\/1\.1 on the peer \(gossiphttp listen\/node --accept-http1, or Options::accept_http1\)/);
      assert.match(refused.message, /or use HTTP\/2 from Node \(node:http2\)/);

      assert.deepEqual(results.http1, { ok: true });
      const [packet] = await peer.packets(1);
      assert.equal(packet.hex, hex(enc('hello')));
    } finally {
      await stopChild(listen);
    }
  });

  test('in Chromium, exchange() works and open() rejects with "timeout" (browser fetch is half duplex)', { timeout: 90_000 }, async () => {
    const { chromium } = await import('playwright-core');
    const site = await serveStatic(); // serves the repository: /pkg/ is there
    const corsPeer = await startPeer([...tls, '--cors', site.origin]);
    const browser = await withTimeout(
      chromium.launch({ executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium', args: ['--no-sandbox', '--ignore-certificate-errors'] }),
      30_000,
      'launching chromium',
    );
    try {
      const page = await browser.newPage();
      await page.goto(site.origin + '/pkg/package.json'); // any page of that origin
      const result = await withTimeout(
        page.evaluate(async (url) => {
          const { default: init, Peer } = await import('/pkg/gossiphttp.js');
          await init();
          const peer = new Peer(url, { timeoutMs: 2000 });
          const ex = await peer.exchange(new TextEncoder().encode('from the browser'));
          const echoed = new TextDecoder().decode(await ex.bytes());
          const t0 = performance.now();
          let code = null;
          let opened = false;
          try {
            const s = await peer.open();
            opened = true;
            s.cancel();
          } catch (e) {
            code = e.code;
          }
          return { echoed, code, opened, waited: performance.now() - t0 };
        }, corsPeer.url),
        60_000,
        'page.evaluate',
      );
      assert.equal(result.echoed, 'from the browser');
      assert.equal(result.opened, false, 'open() must not resolve in a browser');
      assert.equal(result.code, 'timeout');
      assert.ok(result.waited >= 1500, `open() waited ${result.waited} ms for the response`);
    } finally {
      await browser.close().catch(() => {});
      await corsPeer.stop();
      await site.close();
    }
  });

  test('in workerd, open() is full duplex too: the echo arrives before close()', { timeout: 60_000 }, async (t) => {
    // A worker (written here) opens a stream to gossiphttp listen (plain HTTP/1.1, what local
    // workerd's outbound fetch speaks), writes, reads the echo, then closes.
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gossiphttp-workerd-open-'));
    t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
    fs.writeFileSync(
      path.join(dir, 'open.mjs'),
      `import * as gossip from './gossiphttp.js';
import wasm from './gossiphttp_bg.wasm';
gossip.initSync({ module: wasm });
export default {
  async fetch(request) {
    const peerUrl = new URL(request.url).searchParams.get('peer');
    if (!peerUrl) return new Response('up');
    try {
      const s = await new gossip.Peer(peerUrl, { timeoutMs: 5000 }).open();
      await s.write(new TextEncoder().encode('ping'));
      const first = await s.next();
      await s.close();
      const rest = await s.bytes();
      return Response.json({ first: new TextDecoder().decode(first), rest: rest.length });
    } catch (e) {
      return Response.json({ code: e.code, message: e.message });
    }
  },
};
`,
    );
    fs.writeFileSync(
      path.join(dir, 'config.capnp.in'),
      `using Workerd = import "/workerd/workerd.capnp";
const config :Workerd.Config = (
  services = [
    (name = "main", worker = .w),
    (name = "net", network = (allow = ["local", "private", "public"])),
  ],
  sockets = [ (name = "http", address = "127.0.0.1:{{PORT}}", http = (), service = "main") ],
);
const w :Workerd.Worker = (
  modules = [
    (name = "open.mjs", esModule = embed "open.mjs"),
    (name = "gossiphttp.js", esModule = embed "gossiphttp.js"),
    (name = "gossiphttp_bg.wasm", wasm = embed "gossiphttp_bg.wasm"),
  ],
  compatibilityDate = "2025-06-01",
  globalOutbound = "net",
);
`,
    );
    const plain = await startPeer(['--accept-http1']);
    const wd = await startWorkerd({
      template: path.join(dir, 'config.capnp.in'),
      files: {
        'open.mjs': path.join(dir, 'open.mjs'),
        'gossiphttp.js': path.join(pkgDir, 'gossiphttp.js'),
        'gossiphttp_bg.wasm': path.join(pkgDir, 'gossiphttp_bg.wasm'),
      },
    });
    try {
      const res = await fetch(`${wd.url}/?peer=${encodeURIComponent(plain.url)}`, { signal: AbortSignal.timeout(20_000) });
      const body = await res.json();
      assert.deepEqual(body, { first: 'ping', rest: 0 });
      assert.equal((await plain.streamClose()).hex, hex(enc('ping')));
    } finally {
      await wd.stop();
      await plain.stop();
    }
  });

  test('the TypeScript types: correct uses compile under --strict, wrong ones do not', async (t) => {
    const tsc = path.join(repoRoot, 'tests', 'wasm', 'node_modules', '.bin', 'tsc');
    assert.ok(fs.existsSync(tsc), 'typescript is a devDependency of tests/wasm (npm ci)');
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gossiphttp-types-'));
    t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
    fs.mkdirSync(path.join(dir, 'node_modules'));
    fs.symlinkSync(pkgDir, path.join(dir, 'node_modules', 'gossiphttp'), 'dir');
    const check = `
import init, { initSync, Peer, Exchange, DuplexStream, encodeFrame, FrameDecoder, handleRequest, members, lookup, type GossipError, type PeerOptions, type Member, type MembersOptions, type LookupOptions } from 'gossiphttp';
declare const wasm: WebAssembly.Module;
initSync({ module: wasm });
void init;
const opts: PeerOptions = { timeoutMs: 1000, token: 't', maxPacketSize: 1024 };
const peer = new Peer('https://127.0.0.1:7946', opts);
const plain = new Peer('http://127.0.0.1:8787');
const url: string = plain.url;
const sent: Promise<void> = peer.send(new Uint8Array(1));
const many: Promise<void> = peer.sendMany([new Uint8Array(1)]);
async function use(): Promise<number> {
  const ex: Exchange = await peer.exchange([new Uint8Array(1)]);
  const one: Uint8Array | undefined = await ex.next();
  const all: Uint8Array = await ex.bytes();
  let n = 0;
  for await (const chunk of ex) n += chunk.length;
  for await (const chunk of ex.values()) n += chunk.byteLength;
  ex.cancel();
  const s: DuplexStream = await peer.open();
  await s.write(new Uint8Array(2));
  await s.close();
  for await (const chunk of s) n += chunk.length;
  const frame: Uint8Array = encodeFrame(new Uint8Array(3));
  const packets: Uint8Array[] = new FrameDecoder(100).push(frame);
  new FrameDecoder().finish();
  try {
    await peer.send(new Uint8Array(0));
  } catch (e) {
    const err = e as GossipError;
    if (err.code === 'status') n += err.status ?? 0;
  }
  const answer: Response | null = await handleRequest(new Request('http://x/'), { onPacket(p: Uint8Array, from: string) { n += p.length + from.length; } });
  return n + (one?.length ?? 0) + all.length + packets.length + (answer ? 1 : 0) + url.length;
}
void use; void sent; void many;
async function cluster(): Promise<string[]> {
  const mo: MembersOptions = { timeoutMs: 1000, token: 't', label: 'prod', http2: true };
  const list: Member[] = await members('http://127.0.0.1:7946', mo);
  const all: Member[] = await members('http://127.0.0.1:7946');
  const states: Array<'alive' | 'suspect' | 'dead' | 'left'> = list.map((m) => m.state);
  const ckit: Array<'viewer' | 'participant' | 'terminating' | undefined> = list.map((m) => m.ckitState);
  const meta: Uint8Array = list[0].meta;
  const inc: number = list[0].incarnation;
  const lo: LookupOptions = { hasher: 'rendezvous', op: 'read' };
  const owners: Member[] = lookup('tenant-1', 2, list, lo);
  lookup(new Uint8Array(3), 1, all, { hasher: 'ring', ringTokens: 256, op: 'write' });
  lookup(42n, 1, all);
  try {
    lookup('k', 9, all);
  } catch (e) {
    if ((e as GossipError).code === 'not_enough_members') return [];
  }
  return [...owners.map((m) => m.addr), ...states, ...ckit.map(String), String(meta.length + inc)];
}
void cluster;
// @ts-expect-error: a member's state is one of memberlist's four
const badState: Member['state'] = 'gone';
void badState;
// @ts-expect-error: no such hasher
lookup('k', 1, [], { hasher: 'maglev' });
// @ts-expect-error: http2 is a boolean
members('http://x', { http2: 'yes' });
// @ts-expect-error: packets are bytes
peer.send('text');
// @ts-expect-error: sendMany takes an array
peer.sendMany(new Uint8Array(1));
// @ts-expect-error: no such option
new Peer('https://x', { timeout: 5 });
// @ts-expect-error: a GossipError code is one of the listed strings
const bad: GossipError['code'] = 'oops';
void bad;
`;
    fs.writeFileSync(path.join(dir, 'check.ts'), check);
    const run = (args) =>
      new Promise((resolve) => {
        const child = spawn(tsc, args, { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
        let out = '';
        child.stdout.on('data', (d) => (out += d));
        child.stderr.on('data', (d) => (out += d));
        child.on('exit', (code) => resolve({ code, out }));
      });
    const base = ['--noEmit', '--strict', '--target', 'es2022', '--module', 'nodenext', '--moduleResolution', 'nodenext', '--lib', 'es2022,dom,dom.iterable,esnext.disposable', '--skipLibCheck', 'false'];
    const ok = await withTimeout(run([...base, 'check.ts']), 60_000, 'tsc');
    assert.equal(ok.code, 0, `tsc found errors:\n${ok.out}`);
    // And the checker is really checking: a wrong use without @ts-expect-error fails.
    fs.writeFileSync(path.join(dir, 'wrong.ts'), "import { Peer } from 'gossiphttp';\nconst n: number = new Peer('https://x').url;\nvoid n;\n");
    const wrong = await withTimeout(run([...base, 'wrong.ts']), 60_000, 'tsc');
    assert.notEqual(wrong.code, 0, 'a type error must be reported');
    assert.match(wrong.out, /TS2322/);
  });

  test('encodeFrame and FrameDecoder follow frames.json (fed one byte at a time)', () => {
    const vectors = JSON.parse(fs.readFileSync(path.join(repoRoot, '..', 'shared', 'vectors', 'frames.json'), 'utf8'));
    const payloadOf = (c) => (c.payload_hex !== undefined ? Buffer.from(c.payload_hex, 'hex') : pattern(c.payload_len));
    for (const c of vectors.encode) {
      const f = encodeFrame(payloadOf(c));
      assert.equal(f.length, c.frame_len, c.name);
      assert.equal(hex(f.subarray(0, c.frame_head_hex.length / 2)), c.frame_head_hex, c.name);
      if (c.frame_hex) assert.equal(hex(f), c.frame_hex, c.name);
      const d = new FrameDecoder(2_000_000);
      const out = d.push(f);
      d.finish();
      assert.equal(out.length, 1, c.name);
      assert.equal(hex(out[0]), hex(payloadOf(c)), c.name);
    }
    for (const c of vectors.decode) {
      const d = new FrameDecoder();
      const input = Buffer.from(c.input_hex, 'hex');
      const got = [];
      let err;
      try {
        for (const b of input) got.push(...d.push(new Uint8Array([b])));
        d.finish();
      } catch (e) {
        err = e;
      }
      assert.deepEqual(got.map(hex), c.messages_hex, c.name);
      assert.equal(err?.code ?? '', c.error ? 'frame' : '', c.name);
    }
    // Over maxPacketSize: refused at the header, earlier packets on err.packets.
    const d = new FrameDecoder(4);
    let e;
    try {
      d.push(concat([encodeFrame(enc('ok')), encodeFrame(enc('too long'))]));
    } catch (x) {
      e = x;
    }
    assert.equal(e.code, 'frame');
    assert.deepEqual(e.packets.map(hex), [hex(enc('ok'))]);
  });
}
