// The worker handler (handleRequest) in a real workerd, both directions:
//  (a) native → worker: the gossiphttp CLI (`--http1`, what a local workerd speaks) and
//      node:http send packets and streams; status rules checked;
//  (b) worker → native: the worker's Peer sends packets and an exchange to
//      `gossiphttp listen --accept-http1`; its JSON lines prove the bytes.
//
// Needs pkg/ (scripts/build-pkg.sh) and target/debug/gossiphttp
// (cargo build --bin gossiphttp).

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { promisify } from 'node:util';
import {
  concat,
  frame,
  here,
  hex,
  http1Request,
  pattern,
  pkgDir,
  repoRoot,
  startPeer,
  startWorkerd,
  stopAll,
  unframe,
  withTimeout,
} from './support.mjs';

const execFileP = promisify(execFile);
/** Runs a command; on failure, an error whose message keeps the long hex arguments short. */
async function run(cmd, args, opts) {
  try {
    return await execFileP(cmd, args, opts);
  } catch (e) {
    const short = args.map((a) => (a.length > 80 ? `${a.slice(0, 40)}…(${a.length} chars)` : a)).join(' ');
    throw new Error(`${path.basename(cmd)} ${short}: exit ${e.code ?? e.signal}\n${String(e.stderr ?? '').slice(0, 2000)}`);
  }
}
const CT = { 'content-type': 'application/x.ckit' };
const BASE = '/api/v1/ckit/transport';
const cli = path.join(repoRoot, 'target', 'debug', 'gossiphttp');

let worker;

before(async () => {
  for (const f of ['gossiphttp.js', 'gossiphttp_bg.wasm']) {
    assert.ok(fs.existsSync(path.join(pkgDir, f)), `pkg/${f} is missing: run scripts/build-pkg.sh first`);
  }
  worker = await startWorkerd({
    template: path.join(here, 'worker', 'config.capnp.in'),
    vars: { PAGE_ORIGIN: 'http://page.example' },
    files: {
      'worker.mjs': path.join(here, 'worker', 'worker.mjs'),
      'gossiphttp.js': path.join(pkgDir, 'gossiphttp.js'),
      'gossiphttp_bg.wasm': path.join(pkgDir, 'gossiphttp_bg.wasm'),
    },
  });
});

after(async () => {
  await stopAll();
});

async function received() {
  const r = await http1Request(`${worker.url}/received`, { method: 'GET' });
  assert.equal(r.status, 200);
  return JSON.parse(r.body.toString());
}

async function reset() {
  const r = await http1Request(`${worker.url}/reset`);
  assert.equal(r.status, 200);
}

/** Checks every frame header of `body` follows the writer rule (0xCC ≤ 65535 < 0xCD). */
function assertWriterRule(body) {
  let i = 0;
  while (i < body.length) {
    if (body[i] === 0xcc) {
      i += 3 + ((body[i + 1] << 8) | body[i + 2]);
    } else {
      assert.equal(body[i], 0xcd, `frame at ${i} has magic ${body[i]}`);
      const len = body.readUInt32BE(i + 1);
      assert.ok(len > 0xffff, `0xCD frame at ${i} carries only ${len} bytes`);
      i += 5 + len;
    }
  }
  assert.equal(i, body.length, 'the body ends on a frame boundary');
}

async function cliHasHttp1() {
  if (!fs.existsSync(cli)) return false;
  const { stdout } = await run(cli, ['send', '--help'], { timeout: 10_000 });
  return stdout.includes('--http1');
}

test('native CLI (HTTP/1.1) → worker: packets arrive byte-exact', async (t) => {
  assert.ok(await cliHasHttp1(), 'target/debug/gossiphttp with --http1 is not built (cargo build --bin gossiphttp)');
  await reset();
  const payloads = [pattern(1200, 7), new TextEncoder().encode('hello worker'), pattern(40_000, 3, 5)];
  for (const p of payloads) {
    await run(cli, ['send', '--http1', '--to', worker.url, '--hex', hex(p)], { timeout: 20_000 });
  }
  await run(cli, ['send', '--http1', '--to', worker.url, '--hex', 'abcd', '--count', '3'], { timeout: 20_000 });
  const got = (await received()).filter((r) => !r.stream);
  assert.deepEqual(
    got.map((r) => r.hex),
    [...payloads.map(hex), 'abcd', 'abcd', 'abcd'],
  );
  assert.ok(got.every((r) => r.base === BASE && r.from === 'unknown'));
});

test('native CLI (HTTP/1.1) → worker: a stream exchange is echoed', async (t) => {
  assert.ok(await cliHasHttp1(), 'target/debug/gossiphttp with --http1 is not built (cargo build --bin gossiphttp)');
  const data = pattern(30_000, 11, 7);
  const { stdout } = await run(cli, ['stream', '--http1', '--to', worker.url, '--hex', hex(data)], {
    timeout: 20_000,
    maxBuffer: 1 << 24,
  });
  assert.equal(stdout.trim().split(/\s+/).pop(), hex(data));
});

test('node:http → worker /message: packets byte-exact, incl. 0-length and > 65535 (0xCD)', async () => {
  await reset();
  const payloads = [pattern(5), new Uint8Array(0), pattern(65_535, 1), pattern(70_000, 2), pattern(200_001, 9, 3)];
  const body = Buffer.from(concat(payloads.map(frame)));
  assert.equal(body[3 + 5 + 3 + 3 + 65_535], 0xcd, 'the 70000-byte packet travels in a 0xCD frame');
  // Written in odd-sized pieces, so frames and even headers straddle chunks.
  const pieces = [];
  for (let i = 0; i < body.length; i += 7919) pieces.push(body.subarray(i, i + 7919));
  const r = await http1Request(`${worker.url}${BASE}/message`, {
    headers: { ...CT, 'cf-connecting-ip': '203.0.113.7' },
    body: pieces,
  });
  assert.equal(r.status, 200, r.body.toString());
  const got = await received();
  assert.deepEqual(
    got.map((g) => [g.from, g.len, g.hex]),
    payloads.map((p) => ['203.0.113.7', p.length, hex(p)]),
  );
});

test('node:http → worker /stream: 200 at once, every byte echoed in well-formed frames', async () => {
  await reset();
  const chunks = [new TextEncoder().encode('ping'), pattern(65_536, 4), pattern(150_000, 8, 3), pattern(10)];
  const r = await http1Request(`${worker.url}${BASE}/stream`, {
    headers: { ...CT, 'cf-connecting-ip': '198.51.100.2' },
    body: chunks.map(frame),
  });
  assert.equal(r.status, 200);
  assert.equal(r.headers['content-type'], 'application/x.ckit');
  assertWriterRule(r.body);
  assert.equal(hex(concat(unframe(r.body))), hex(concat(chunks)));
  const streams = (await received()).filter((g) => g.stream);
  assert.deepEqual(streams, [{ base: BASE, from: '198.51.100.2', stream: true, len: 65_536 + 150_014 }]);
});

test('worker /stream: response headers come before the peer wrote anything (Go dialers wait for them)', async () => {
  const status = await withTimeout(
    new Promise((resolve, reject) => {
      const req = http.request(`${worker.url}${BASE}/stream`, { method: 'POST', headers: CT, agent: false }, (res) => {
        resolve(res.statusCode);
        res.resume();
        req.end();
      });
      req.on('error', reject);
      req.flushHeaders(); // headers only; the body stays open
    }),
    5000,
    'response headers before any request body',
  );
  assert.equal(status, 200);
});

test('worker /stream: onStream may return a promise of a plain array; frames follow the writer rule', async () => {
  const r = await http1Request(`${worker.url}/fixed${BASE}/stream`, {
    headers: { ...CT, 'cf-connecting-ip': '192.0.2.1' },
    body: frame('ignored'),
  });
  assert.equal(r.status, 200);
  assertWriterRule(r.body);
  assert.equal(r.body[0], 0xcc);
  assert.equal(r.body[3 + 9], 0xcd, 'the 70,000-byte chunk travels in a 0xCD frame');
  assert.deepEqual(unframe(r.body).map(hex), [hex(new TextEncoder().encode('192.0.2.1')), hex(pattern(70_000))]);
  const noPackets = await http1Request(`${worker.url}/fixed${BASE}/message`, { headers: CT, body: frame('x') });
  assert.equal(noPackets.status, 404, 'no onPacket handler: /message is not served');
});

test('worker /stream: a malformed frame from the peer ends the response body with an error', async () => {
  await reset();
  // Full duplex over HTTP/1.1: a good frame, wait for its echo, then a bad magic byte.
  const outcome = await withTimeout(
    new Promise((resolve) => {
      const chunks = [];
      const req = http.request(`${worker.url}${BASE}/stream`, { method: 'POST', headers: CT, agent: false }, (res) => {
        const done = (extra) => resolve({ status: res.statusCode, body: Buffer.concat(chunks), ...extra });
        res.on('data', (c) => {
          chunks.push(c);
          if (chunks.length === 1) req.end(Buffer.from([0x42, 0, 0]));
        });
        res.on('end', () => done({ complete: res.complete }));
        res.on('error', (e) => done({ error: e.code ?? e.message }));
        res.on('aborted', () => done({ error: 'aborted' }));
      });
      req.on('error', (e) => resolve({ error: e.code ?? e.message, body: Buffer.concat(chunks) }));
      req.flushHeaders();
      req.write(Buffer.from(frame('ok so far')));
    }),
    10_000,
    'malformed stream',
  );
  assert.equal(outcome.status, 200, JSON.stringify(outcome));
  assert.ok(outcome.error || outcome.complete === false, `the body did not end cleanly: ${JSON.stringify(outcome)}`);
  // What came before the bad frame was echoed.
  assert.equal(hex(concat(unframe(outcome.body))), hex(new TextEncoder().encode('ok so far')));
  assert.deepEqual((await received()).filter((g) => g.stream), [], 'the echo loop did not finish cleanly');
});

test('worker CORS (corsAllowedOrigins): preflight 204, other origins 403 with nothing delivered, peers unaffected', async () => {
  await reset();
  const url = `${worker.url}/cors${BASE}/message`;
  const pre = await http1Request(url, {
    method: 'OPTIONS',
    headers: { origin: 'http://allowed.example', 'access-control-request-method': 'POST', 'access-control-request-headers': 'content-type' },
  });
  assert.equal(pre.status, 204);
  assert.equal(pre.headers['access-control-allow-origin'], 'http://allowed.example');
  assert.equal(pre.headers['access-control-allow-methods'], 'POST');
  assert.equal(pre.headers['access-control-allow-headers'], 'content-type');
  const preOther = await http1Request(url, { method: 'OPTIONS', headers: { origin: 'http://evil.example' } });
  assert.equal(preOther.status, 403);
  assert.equal(preOther.headers['access-control-allow-origin'], undefined);

  const ok = await http1Request(url, { headers: { ...CT, origin: 'http://allowed.example' }, body: frame('from a page') });
  assert.equal(ok.status, 200);
  assert.equal(ok.headers['access-control-allow-origin'], 'http://allowed.example');
  const refused = await http1Request(url, { headers: { ...CT, origin: 'http://evil.example' }, body: frame('must not arrive') });
  assert.equal(refused.status, 403);
  const peerLike = await http1Request(url, { headers: CT, body: frame('from a peer') });
  assert.equal(peerLike.status, 200, 'no Origin header: a peer, not a page');
  assert.equal(peerLike.headers['access-control-allow-origin'], undefined);
  const bad = await http1Request(url, { headers: { 'content-type': 'text/plain', origin: 'http://allowed.example' }, body: frame('x') });
  assert.equal(bad.status, 400);
  assert.equal(bad.headers['access-control-allow-origin'], 'http://allowed.example', 'the page can read refusals too');
  assert.deepEqual(
    (await received()).map((g) => Buffer.from(g.hex, 'hex').toString()),
    ['from a page', 'from a peer'],
  );
});

test('worker status rules: 404, 401, 400, 405, 413; refused bodies deliver nothing after the fault', async () => {
  await reset();
  const url = (p) => `${worker.url}${p}`;
  const cases = [
    // [what, path, options, status]
    ['unknown path under the base', `${BASE}/nope`, { headers: CT, body: frame('x') }, 404],
    ['the base itself', `${BASE}`, { headers: CT }, 404],
    ['GET /message', `${BASE}/message`, { method: 'GET', headers: CT }, 405],
    ['PUT /stream', `${BASE}/stream`, { method: 'PUT', headers: CT, body: frame('x') }, 405],
    ['GET without content type (400 first, as the reference)', `${BASE}/message`, { method: 'GET' }, 400],
    ['no content type', `${BASE}/message`, { body: frame('x') }, 400],
    ['content type with charset', `${BASE}/message`, { headers: { 'content-type': 'application/x.ckit; charset=utf-8' }, body: frame('x') }, 400],
    ['no token', `/secure${BASE}/message`, { headers: CT, body: frame('secret-1') }, 401],
    ['wrong token', `/secure${BASE}/message`, { headers: { ...CT, authorization: 'Bearer s3cre' }, body: frame('secret-2') }, 401],
    ['wrong scheme', `/secure${BASE}/stream`, { headers: { ...CT, authorization: 'Basic s3cret' }, body: frame('secret-3') }, 401],
    ['right token', `/secure${BASE}/message`, { headers: { ...CT, authorization: 'Bearer s3cret' }, body: frame('secret-ok') }, 200],
    ['bad magic after a good frame', `${BASE}/message`, { headers: CT, body: Buffer.from([0xcc, 0, 1, 0x41, 0x99, 0xcc, 0, 1, 0x42]) }, 400],
    ['truncated frame after a good frame', `${BASE}/message`, { headers: CT, body: Buffer.from([0xcc, 0, 1, 0x43, 0xcc, 0, 9, 1, 2]) }, 400],
    ['0xCD header of 4 GiB over maxPacketSize 100', `/small${BASE}/message`, { headers: CT, body: Buffer.from([0xcc, 0, 1, 0x44, 0xcd, 0xff, 0xff, 0xff, 0xff, 1, 2, 3]) }, 413],
    ['101 bytes over maxPacketSize 100', `/small${BASE}/message`, { headers: CT, body: [frame(pattern(100)), frame(pattern(101))] }, 413],
    ['token checked before content type', `/secure${BASE}/message`, { method: 'GET' }, 401],
    ['empty body', `${BASE}/message`, { headers: CT }, 200],
  ];
  for (const [what, p, opts, want] of cases) {
    const r = await http1Request(url(p), opts);
    assert.equal(r.status, want, `${what}: got ${r.status} ${r.body.toString()}`);
    if (want === 405) assert.equal(r.headers.allow, 'POST', `${what}: Allow header`);
  }
  // Outside every base path, handleRequest resolved null and the worker answered itself.
  const outside = await http1Request(url('/api/v1/ckit/transportX/message'), { headers: CT, body: frame('y') });
  assert.equal(outside.status, 404);
  assert.equal(outside.body.toString(), 'gossiphttp test worker\n');

  const got = (await received()).map((g) => [g.base, g.hex]);
  assert.deepEqual(got, [
    [`/secure${BASE}`, hex(new TextEncoder().encode('secret-ok'))],
    [BASE, '41'],
    [BASE, '43'],
    [`/small${BASE}`, '44'],
    [`/small${BASE}`, hex(pattern(100))],
  ]);
});

test('worker → native (gossiphttp listen --accept-http1): Peer packets and an exchange', async () => {
  const peer = await startPeer(['--accept-http1']);
  try {
    const packets = [new TextEncoder().encode('from the worker'), pattern(1400, 5), pattern(70_000, 6, 7), new Uint8Array(0)];
    const stream = [new TextEncoder().encode('stream '), pattern(100_000, 2, 3), new TextEncoder().encode(' end')];
    const r = await http1Request(`${worker.url}/send-to?peer=${encodeURIComponent(peer.url)}`, {
      headers: { 'content-type': 'application/json' },
      body: Buffer.from(JSON.stringify({ packets: packets.map(hex), stream: stream.map(hex) })),
      timeoutMs: 30_000,
    });
    assert.equal(r.status, 200, `worker /send-to: ${r.body.toString()}`);
    const answer = JSON.parse(r.body.toString());
    assert.equal(answer.sent, packets.length);
    const seen = await peer.packets(packets.length);
    assert.deepEqual(
      seen.map((e) => [e.len, e.hex]),
      packets.map((p) => [p.length, hex(p)]),
    );
    assert.match(seen[0].from, /^127\.0\.0\.1:\d+$/);
    const closed = await peer.streamClose();
    assert.equal(closed.hex, hex(concat(stream)), 'the native peer received the exchange byte-exact');
    assert.equal(closed.error, undefined);
    assert.equal(answer.echoed, hex(concat(stream)), 'the worker got the echo back');
  } finally {
    await peer.stop();
  }
});

test('worker → native: an unreachable peer is an error with a code, not a hang', async () => {
  const r = await http1Request(`${worker.url}/send-to?peer=${encodeURIComponent('http://127.0.0.1:9')}`, {
    headers: { 'content-type': 'application/json' },
    body: Buffer.from(JSON.stringify({ packets: ['00'] })),
    timeoutMs: 30_000,
  });
  assert.equal(r.status, 500);
  const answer = JSON.parse(r.body.toString());
  assert.ok(['network', 'timeout', 'status'].includes(answer.code), `code: ${JSON.stringify(answer)}`);
});
