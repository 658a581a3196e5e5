// The cluster page (www/cluster.html) in headless Chromium, against a live mixed
// cluster on 127.0.0.1: four Rust `gossiphttp node` processes (--preset fast; three
// ckit participants and a viewer) and two Go memberlist peers (tests/go/memberlist-peer,
// which announce no ckit state).
//
// 1. Served by a node at `/`: the page shows every member alive, a `kill -9` of one as
//    dead on its card and in the timeline, and the key space split between the
//    participants. Saves target/artifacts/cluster-page.png (and -dark.png, -narrow.png).
// 2. Given ?url= (served beside the npm package, as scripts/www.sh does): the page asks
//    that node with the package's members() and lookup(), and a `kill -9` shows up from
//    successive answers. Saves target/artifacts/cluster-page-url.png.
//
// Needs target/debug/gossiphttp (cargo build --bin gossiphttp), the Go peer
// (scripts/go-peer.sh), pkg/ (scripts/build-pkg.sh) and /usr/bin/chromium.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { chromium } from 'playwright-core';
import { artifactsDir, cliBin, goPeerBin, pkgDir, serveStatic, startGoPeer, startNode, stopAll, withTimeout } from './support.mjs';

const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';
const WAIT = 30_000; // the bound on every cluster change the page must show

const RUST = [
  { name: 'rust-1', ckit: 'participant' },
  { name: 'rust-2', ckit: 'participant' },
  { name: 'rust-3', ckit: 'participant' }, // killed in the first test
  { name: 'rust-viewer', ckit: 'viewer' },
];
const GO = ['go-1', 'go-2']; // go-2 is killed in the second test
const ALL = [...RUST.map((r) => r.name), ...GO];

let browser, site;
const nodes = new Map(); // name -> { addr, child, ... }

before(async () => {
  assert.ok(fs.existsSync(cliBin), `${cliBin} is missing: run cargo build --bin gossiphttp`);
  assert.ok(fs.existsSync(goPeerBin), `${goPeerBin} is missing: run scripts/go-peer.sh`);
  site = await serveStatic(); // www/ and pkg/, for the ?url= page
  // Every Rust node lets the static site's pages ask it (CORS, and HTTP/1.1: what
  // Chromium's fetch speaks to a plain-http node).
  const web = ['--cors', site.origin, '--accept-http1'];
  let seed;
  for (const { name, ckit } of RUST) {
    const join = seed ? ['--join', seed] : [];
    const node = await startNode(name, ['--preset', 'fast', '--ckit-state', ckit, ...web, ...join]);
    nodes.set(name, node);
    seed ??= node.addr;
  }
  for (const name of GO) {
    nodes.set(name, await startGoPeer(name, ['--join', seed, '--probe-interval', '200ms', '--push-pull-interval', '2s']));
  }
  browser = await withTimeout(chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] }), 30_000, 'launching chromium');
});

after(async () => {
  await browser?.close().catch(() => {});
  await stopAll();
});

/** A page at `url`, ready (its first poll answered), with its console kept. */
async function open(url) {
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  const logs = [];
  page.on('console', (m) => logs.push(`${m.type()}: ${m.text()}`));
  page.on('pageerror', (e) => logs.push(`pageerror: ${e.message}`));
  await page.goto(url, { timeout: 15_000 });
  await page.waitForSelector('body[data-ready="1"]', { timeout: 20_000 }).catch(async (e) => {
    const error = await page.locator('#error').textContent().catch(() => '');
    throw new Error(`the page did not get ready: ${e.message}\nshown: ${error}\n${logs.join('\n')}`);
  });
  return { page, logs };
}

/** What the page shows: each member card's state, the key-share legend, the timeline. */
function shown(page) {
  return page.evaluate(() => ({
    members: Object.fromEntries([...document.querySelectorAll('#members li.member')].map((li) => [li.dataset.name, li.dataset.state])),
    cardText: Object.fromEntries([...document.querySelectorAll('#members li.member')].map((li) => [li.dataset.name, li.innerText])),
    shares: [...document.querySelectorAll('#shares li')].map((li) => ({ name: li.dataset.name, share: Number(li.dataset.share), text: li.innerText })),
    timeline: [...document.querySelectorAll('#timeline li')].map((li) => ({ kind: li.dataset.kind, name: li.dataset.name, text: li.innerText })),
    summary: document.getElementById('summary').innerText,
    error: document.getElementById('error').hidden ? null : document.getElementById('error').innerText,
  }));
}

/** Polls what the page shows until `ok(view)` holds; fails with the last view. */
async function untilShown(page, ok, label) {
  const deadline = Date.now() + WAIT;
  let last;
  for (;;) {
    last = await shown(page);
    if (ok(last)) return last;
    if (Date.now() > deadline) assert.fail(`${label}: not shown within ${WAIT} ms; the page shows ${JSON.stringify(last, null, 1)}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

test('the cluster page served by a node shows a mixed cluster, a kill -9, and the key space', { timeout: 180_000 }, async () => {
  const { page, logs } = await open(`http://${nodes.get('rust-1').addr}/`);

  // Every member, Rust and Go, by name and alive; the states are written out.
  const all = await untilShown(
    page,
    (v) => ALL.every((n) => v.members[n] === 'alive') && Object.keys(v.members).length === ALL.length,
    'every member alive',
  );
  for (const n of ALL) assert.match(all.cardText[n], /\balive\b/, `${n}'s card says alive in words`);
  assert.match(all.cardText['rust-1'], /this node/);
  assert.match(all.summary, /6\s*alive/);

  // The key space: the Rust participants, and only them (the viewer and the
  // Go peers, which announce no ckit state, own no keys).
  const split = await untilShown(page, (v) => v.shares.map((s) => s.name).join() === 'rust-1,rust-2,rust-3', 'the participants in the key space');
  const total = split.shares.reduce((n, s) => n + s.share, 0);
  assert.ok(Math.abs(total - 1) < 1e-3, `the shares add up to 1: ${JSON.stringify(split.shares)}`);
  for (const s of split.shares) assert.match(s.text, /\d+\.\d%/, 'each share is written as a percentage');
  assert.match(await page.locator('#donut title').textContent(), /rust-1 \d+\.\d%/, 'the drawing has a text alternative');

  // The timeline: every member's arrival.
  for (const n of ALL) assert.ok(all.timeline.some((e) => e.kind === 'joined' && e.name === n), `${n} joined, on the timeline`);

  // kill -9 a participant: dead on its card (maybe suspect first), dead on the
  // timeline, and its keys go to the two left; the others stay (or, after a
  // moment's suspicion on a loaded machine, are again) alive.
  nodes.get('rust-3').child.kill('SIGKILL');
  const others = ALL.filter((n) => n !== 'rust-3');
  const afterKill = await untilShown(
    page,
    (v) =>
      v.members['rust-3'] === 'dead' &&
      v.timeline.some((e) => e.kind === 'dead' && e.name === 'rust-3') &&
      v.shares.length === 2 &&
      others.every((n) => v.members[n] === 'alive'),
    'rust-3 dead, the others alive',
  );
  assert.match(afterKill.cardText['rust-3'], /\bdead\b/);
  assert.match(afterKill.timeline.find((e) => e.kind === 'dead' && e.name === 'rust-3').text, /rust-3 was declared dead/);
  assert.deepEqual(afterKill.shares.map((s) => s.name), ['rust-1', 'rust-2']);
  assert.equal(afterKill.error, null);

  fs.mkdirSync(artifactsDir, { recursive: true });
  const shot = path.join(artifactsDir, 'cluster-page.png');
  await page.screenshot({ path: shot, fullPage: true });
  assert.ok(fs.statSync(shot).size > 10_000, 'the screenshot was written');
  await page.emulateMedia({ colorScheme: 'dark' });
  await page.screenshot({ path: path.join(artifactsDir, 'cluster-page-dark.png'), fullPage: true });
  await page.setViewportSize({ width: 390, height: 844 });
  await page.emulateMedia({ colorScheme: 'light' });
  await page.screenshot({ path: path.join(artifactsDir, 'cluster-page-narrow.png'), fullPage: true });
  // Narrow: no horizontal scrolling.
  assert.ok(await page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth), 'no sideways scroll at 390 px');
  assert.deepEqual(logs.filter((l) => l.startsWith('pageerror') || l.startsWith('error')), []);
  await page.close();
});

test('given ?url=, the page asks that node with members() and lookup() from the npm package', { timeout: 180_000 }, async () => {
  for (const f of ['gossiphttp.js', 'gossiphttp_bg.wasm']) {
    assert.ok(fs.existsSync(path.join(pkgDir, f)), `pkg/${f} is missing: run scripts/build-pkg.sh first`);
  }
  const target = `http://${nodes.get('rust-2').addr}`;
  const { page, logs } = await open(`${site.origin}/www/cluster.html?url=${encodeURIComponent(target)}`);
  assert.equal(await page.evaluate(() => document.body.dataset.source), 'url');
  assert.match(await page.locator('#source').innerText(), /members\(\)/);
  // Whatever the first test left running (it kills rust-3).
  const running = (n) => nodes.get(n).child.exitCode === null && nodes.get(n).child.signalCode === null;
  const live = ALL.filter(running);
  const participants = RUST.filter((r) => r.ckit === 'participant' && running(r.name)).map((r) => r.name);
  const first = await untilShown(page, (v) => live.every((n) => v.members[n] === 'alive'), 'every live member, through members()');
  for (const n of live) assert.match(first.cardText[n], /\balive\b/);
  // The same split the node measures: the live participants, by lookup() in the page.
  const split = await untilShown(page, (v) => v.shares.map((s) => s.name).join() === participants.join(), 'the participants, by lookup()');
  const total = split.shares.reduce((n, s) => n + s.share, 0);
  assert.ok(Math.abs(total - 1) < 1e-3, JSON.stringify(split.shares));
  // The same 10,000 keys as the node's /api/v1/shards: the same split, key for key.
  const fromNode = await (await fetch(`${target}/api/v1/shards`)).json();
  assert.equal(fromNode.sample_keys, 10000);
  assert.deepEqual(
    split.shares.map((s) => [s.name, s.share]),
    fromNode.shares.map((s) => [s.name, s.share]),
  );

  // kill -9 a Go peer: the next answers say it is dead (suspect first, maybe), and the
  // page's own diff of them puts it on the timeline.
  nodes.get('go-2').child.kill('SIGKILL');
  const afterKill = await untilShown(
    page,
    (v) => v.members['go-2'] === 'dead' && v.timeline.some((e) => e.kind === 'dead' && e.name === 'go-2'),
    'go-2 dead, through members()',
  );
  assert.match(afterKill.cardText['go-2'], /\bdead\b/);
  assert.equal(afterKill.error, null);

  fs.mkdirSync(artifactsDir, { recursive: true });
  await page.screenshot({ path: path.join(artifactsDir, 'cluster-page-url.png'), fullPage: true });
  assert.deepEqual(logs.filter((l) => l.startsWith('pageerror') || l.startsWith('error')), []);
  await page.close();
});
