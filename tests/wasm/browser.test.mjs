// The www page in headless Chromium against a native TLS peer (HTTP/2):
// packets arrive byte-exact, a stream exchange comes back, the CORS preflight
// passes for the allowed origin, and a page from another origin is refused.
// Then the same page talks to a worker (handleRequest with corsAllowedOrigins in workerd).
// Saves target/artifacts/www.png (the page after an exchange).
//
// Needs pkg/ (scripts/build-pkg.sh), target/debug/gossiphttp and /usr/bin/chromium.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';
import {
  artifactsDir,
  here,
  hex,
  http1Request,
  makeCert,
  pkgDir,
  serveStatic,
  sleep,
  startPeer,
  startWorkerd,
  stopAll,
  withTimeout,
} from './support.mjs';

const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';
const enc = new TextEncoder();

let browser, allowed, other, peer;
const certDir = fs.mkdtempSync(path.join(os.tmpdir(), 'gossiphttp-browser-tls-'));

before(async () => {
  for (const f of ['gossiphttp.js', 'gossiphttp_bg.wasm']) {
    assert.ok(fs.existsSync(path.join(pkgDir, f)), `pkg/${f} is missing: run scripts/build-pkg.sh first`);
  }
  allowed = await serveStatic(); // the page's origin, in the peer's CORS list
  other = await serveStatic(); // same files, another origin, not in the list
  const { cert, key } = makeCert(certDir);
  peer = await startPeer(['--tls-cert', cert, '--tls-key', key, '--cors', allowed.origin]);
  assert.match(peer.url, /^https:\/\/127\.0\.0\.1:\d+$/);
  browser = await withTimeout(
    chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox', '--ignore-certificate-errors'] }),
    30_000,
    'launching chromium',
  );
});

after(async () => {
  await browser?.close().catch(() => {});
  await stopAll();
  fs.rmSync(certDir, { recursive: true, force: true });
});

/** Opens the www page from `origin`, records the network via CDP, waits until the wasm is loaded. */
async function openPage(origin) {
  const page = await browser.newPage({ viewport: { width: 960, height: 820 } });
  const logs = [];
  page.on('console', (m) => logs.push(`${m.type()}: ${m.text()}`));
  page.on('pageerror', (e) => logs.push(`pageerror: ${e.message}`));
  const cdp = await page.context().newCDPSession(page);
  await cdp.send('Network.enable');
  const net = [];
  cdp.on('Network.requestWillBeSent', (e) =>
    net.push({ id: e.requestId, kind: 'request', method: e.request.method, url: e.request.url, type: e.type }),
  );
  cdp.on('Network.responseReceived', (e) =>
    net.push({
      id: e.requestId,
      kind: 'response',
      url: e.response.url,
      type: e.type,
      status: e.response.status,
      protocol: e.response.protocol,
      headers: Object.fromEntries(Object.entries(e.response.headers).map(([k, v]) => [k.toLowerCase(), v])),
    }),
  );
  cdp.on('Network.loadingFailed', (e) => net.push({ id: e.requestId, kind: 'failed', type: e.type, error: e.errorText, cors: e.corsErrorStatus }));
  await page.goto(`${origin}/www/index.html`, { timeout: 15_000 });
  try {
    await page.waitForSelector('body[data-ready="1"]', { timeout: 15_000 });
  } catch (e) {
    throw new Error(`the page did not get ready: ${e.message}\nconsole:\n${logs.join('\n')}`);
  }
  await page.fill('#url', peer.url);
  return { page, net, logs };
}

/** Clicks `button` with `text` in the box; waits for the n-th log entry of `kind` (1-based) to finish. */
async function act(page, button, text, kind, n) {
  await page.fill('#text', text);
  await page.click(button);
  const sel = `li.entry[data-kind="${kind}"]`;
  await page.waitForFunction(
    ([s, n]) => {
      const done = document.querySelectorAll(`${s}[data-done="1"]`).length >= n;
      return done || document.querySelector('li.entry[data-kind="error"]');
    },
    [sel, n],
    { timeout: 20_000 },
  );
  const err = await page.$eval('#log', (l) => l.querySelector('li.entry[data-kind="error"]')?.innerText ?? null);
  assert.equal(err, null, `the page showed an error: ${err}`);
  return page.$$eval(sel, (els) => els.map((e) => ({ payloadHex: e.dataset.payloadHex, text: e.innerText, frames: [...e.querySelectorAll('.frame')].map((f) => ({ frameHex: f.dataset.frameHex, headerLen: f.dataset.headerLen, hdr: f.querySelector('.hdr')?.textContent ?? null })) })));
}

test('browser → native: packets typed into the page arrive byte-exact (0xCC and 0xCD frames)', { timeout: 90_000 }, async () => {
  const { page, net } = await openPage(allowed.origin);
  const texts = ['hello from chromium ✓', 'é'.repeat(40_000)]; // 24 bytes, then 80,000 bytes (a 0xCD frame)
  for (const [i, text] of texts.entries()) {
    const entries = await act(page, '#send', text, 'packet', i + 1);
    const [got] = await peer.packets(1, 15_000);
    const want = enc.encode(text);
    assert.equal(got.len, want.length);
    assert.equal(got.hex, hex(want), `packet ${i + 1} byte-exact`);
    // The page shows the frame it sent: header bytes apart from the payload.
    const frame = entries[i].frames[0];
    const wantHeader = want.length <= 0xffff ? 3 : 5;
    assert.equal(Number(frame.headerLen), wantHeader);
    assert.equal(frame.frameHex.slice(wantHeader * 2), hex(want));
    assert.equal(frame.hdr.replaceAll(' ', ''), frame.frameHex.slice(0, wantHeader * 2));
    assert.equal(frame.hdr.slice(0, 2), want.length <= 0xffff ? 'cc' : 'cd');
  }
  // The request went over HTTP/2 with a CORS preflight answered for this origin.
  const posts = net.filter((e) => e.kind === 'response' && e.url === `${peer.url}/api/v1/ckit/transport/message` && e.type !== 'Preflight');
  assert.ok(posts.length >= 2 && posts.every((p) => p.status === 200 && p.protocol === 'h2'), JSON.stringify(posts));
  await page.close();
});

test('browser → native: a stream exchange returns the node’s frames; preflight observed; screenshot', { timeout: 90_000 }, async () => {
  const { page, net } = await openPage(allowed.origin);
  // A packet first, so the screenshot shows both kinds of entries.
  await act(page, '#send', 'a packet first', 'packet', 1);
  assert.equal((await peer.packets(1, 15_000))[0].hex, hex(enc.encode('a packet first')));
  const text = 'ping over a stream — echo me, node';
  const [received] = await act(page, '#exchange', text, 'received', 1);
  const back = received.payloadHex;
  const sent = await page.$$eval('li.entry[data-kind="sent"]', (els) => els.map((e) => ({ payloadHex: e.dataset.payloadHex })));
  const want = hex(enc.encode(text));
  assert.equal(sent[0].payloadHex, want);
  assert.equal(back, want, 'the page shows what the node echoed');
  const closed = await peer.streamClose(15_000);
  assert.equal(closed.hex, want, 'the node received the stream byte-exact');
  assert.equal(closed.error, undefined);

  // The CORS preflight: an OPTIONS to the peer, answered 204 for this origin.
  const streamUrl = `${peer.url}/api/v1/ckit/transport/stream`;
  const options = net.find((e) => e.kind === 'request' && e.method === 'OPTIONS' && e.url === streamUrl);
  assert.ok(options, `an OPTIONS preflight went to ${streamUrl}: ${JSON.stringify(net)}`);
  const preflight = net.find((e) => e.kind === 'response' && e.type === 'Preflight' && e.url === streamUrl);
  assert.ok(preflight, 'the preflight got an answer');
  assert.equal(preflight.status, 204);
  assert.equal(preflight.headers['access-control-allow-origin'], allowed.origin);
  assert.match(preflight.headers['access-control-allow-headers'] ?? '', /content-type/i);
  const post = net.find((e) => e.kind === 'response' && e.type !== 'Preflight' && e.url === streamUrl);
  assert.equal(post?.status, 200);
  assert.equal(post?.protocol, 'h2');

  fs.mkdirSync(artifactsDir, { recursive: true });
  const shot = path.join(artifactsDir, 'www.png');
  await page.screenshot({ path: shot, fullPage: true });
  assert.ok(fs.statSync(shot).size > 10_000, 'the screenshot was written');
  await page.close();
});

test('a page from an origin outside the allowlist is refused: fetch fails, nothing delivered', { timeout: 90_000 }, async () => {
  const before = peer.events.length;
  const { page, net } = await openPage(other.origin);
  for (const button of ['#send', '#exchange']) {
    await page.fill('#text', `must not arrive (${button})`);
    const errors = await page.$$eval('li.entry[data-kind="error"]', (els) => els.length);
    await page.click(button);
    await page.waitForFunction((n) => document.querySelectorAll('li.entry[data-kind="error"]').length > n, errors, { timeout: 20_000 });
  }
  const shown = await page.$$eval('li.entry[data-kind="error"]', (els) => els.map((e) => e.innerText));
  assert.equal(shown.length, 2);
  for (const s of shown) assert.match(s, /network/, `the page reports a network error: ${s}`);
  // The peer refused the preflight (403) and saw no packet and no stream.
  const preflights = net.filter((e) => e.kind === 'response' && e.type === 'Preflight');
  assert.ok(preflights.length >= 1 && preflights.every((p) => p.status === 403), JSON.stringify(preflights));
  await sleep(500);
  const after = peer.events.slice(before);
  assert.deepEqual(after.filter((e) => e.event !== 'listening'), [], 'nothing reached the application');
  await page.close();
});

test('browser → worker (workerd, HTTP/1.1, corsAllowedOrigins): a packet and an exchange from the page', { timeout: 90_000 }, async () => {
  const worker = await startWorkerd({
    template: path.join(here, 'worker', 'config.capnp.in'),
    vars: { PAGE_ORIGIN: allowed.origin },
    files: {
      'worker.mjs': path.join(here, 'worker', 'worker.mjs'),
      'gossiphttp.js': path.join(pkgDir, 'gossiphttp.js'),
      'gossiphttp_bg.wasm': path.join(pkgDir, 'gossiphttp_bg.wasm'),
    },
  });
  try {
    const { page, net } = await openPage(allowed.origin);
    await page.fill('#url', `${worker.url}/cors`); // the worker's endpoints live under /cors/api/v1/ckit/transport
    const packet = 'to the worker, from a page';
    await act(page, '#send', packet, 'packet', 1);
    const text = 'echo me, worker';
    const [back] = await act(page, '#exchange', text, 'received', 1);
    assert.equal(back.payloadHex, hex(enc.encode(text)), 'the worker echoed the stream to the page');
    const seen = JSON.parse((await http1Request(`${worker.url}/received`, { method: 'GET' })).body.toString());
    assert.deepEqual(
      seen.map((g) => (g.stream ? ['stream', g.len] : ['packet', g.hex])),
      [
        ['packet', hex(enc.encode(packet))],
        ['stream', enc.encode(text).length],
      ],
    );
    const preflights = net.filter((e) => e.kind === 'response' && e.type === 'Preflight');
    assert.ok(preflights.length >= 1 && preflights.every((p) => p.status === 204), JSON.stringify(preflights));
    await page.close();
  } finally {
    await worker.stop();
  }
});
