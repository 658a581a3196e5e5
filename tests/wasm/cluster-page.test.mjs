// The cluster page (www/cluster.html, served by a node at `/`) in headless Chromium,
// against a live mixed cluster on 127.0.0.1: four Rust `gossiphttp node` processes
// (--preset fast; three ckit participants and a viewer) and two Go memberlist peers
// (tests/go/memberlist-peer, which announce no ckit state). The page must show every member alive,
// a `kill -9` of one as dead on its card and in the timeline, and the key space split
// between the participants. Saves target/artifacts/cluster-page.png (and
// cluster-page-dark.png, the same page in the dark scheme).
//
// Needs target/debug/gossiphttp (cargo build --bin gossiphttp), the Go peer
// (scripts/go-peer.sh) and /usr/bin/chromium.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { chromium } from 'playwright-core';
import { artifactsDir, cliBin, repoRoot, spawnTracked, stopAll, withTimeout } from './support.mjs';

const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';
const GO_PEER = path.join(repoRoot, 'target', 'go-peer', 'memberlist-peer');
const WAIT = 30_000; // the bound on every cluster change the page must show

// name -> how it runs. rust-3 is killed with SIGKILL mid-test.
const RUST = [
  { name: 'rust-1', ckit: 'participant' },
  { name: 'rust-2', ckit: 'participant' },
  { name: 'rust-3', ckit: 'participant' },
  { name: 'rust-viewer', ckit: 'viewer' },
];
const GO = ['go-1', 'go-2'];
const ALL = [...RUST.map((r) => r.name), ...GO];

let browser;
const procs = new Map(); // name -> child

/**
 * Resolves the first match of `re` in `child`'s stdout, bounded. Stdout is read to
 * the end either way (a full pipe would stall the child).
 */
function lineMatching(child, re, label) {
  return withTimeout(
    new Promise((resolve, reject) => {
      let buf = '';
      let found = false;
      child.stdout.setEncoding('utf8');
      child.stdout.on('data', (d) => {
        if (found) return;
        buf += d;
        const m = re.exec(buf);
        if (m) {
          found = true;
          buf = '';
          resolve(m);
        }
      });
      child.once('exit', (code, sig) => reject(new Error(`${label} exited (${code ?? sig}):\n${child.output}`)));
    }),
    20_000,
    label,
  );
}

async function startRust({ name, ckit }, join) {
  const args = ['node', '--name', name, '--listen', '127.0.0.1:0', '--preset', 'fast', '--ckit-state', ckit];
  if (join) args.push('--join', join);
  const child = spawnTracked(cliBin, args, { cwd: repoRoot });
  procs.set(name, child);
  const [, addr] = await lineMatching(child, /listening on (\S+)/, `gossiphttp node ${name}`);
  return addr;
}

async function startGo(name, join) {
  const args = ['--name', name, '--bind', '127.0.0.1:0', '--join', join, '--probe-interval', '200ms', '--push-pull-interval', '2s'];
  const child = spawnTracked(GO_PEER, args, { cwd: repoRoot });
  procs.set(name, child);
  await lineMatching(child, /"event":"ready"/, `Go peer ${name}`);
}

let seedAddr;

before(async () => {
  assert.ok(fs.existsSync(cliBin), `${cliBin} is missing: run cargo build --bin gossiphttp`);
  assert.ok(fs.existsSync(GO_PEER), `${GO_PEER} is missing: run scripts/go-peer.sh`);
  seedAddr = await startRust(RUST[0]);
  for (const r of RUST.slice(1)) await startRust(r, seedAddr);
  for (const g of GO) await startGo(g, seedAddr);
  browser = await withTimeout(chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] }), 30_000, 'launching chromium');
});

after(async () => {
  await browser?.close().catch(() => {});
  await stopAll();
});

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
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  const logs = [];
  page.on('console', (m) => logs.push(`${m.type()}: ${m.text()}`));
  page.on('pageerror', (e) => logs.push(`pageerror: ${e.message}`));
  await page.goto(`http://${seedAddr}/`, { timeout: 15_000 });
  await page.waitForSelector('body[data-ready="1"]', { timeout: 15_000 }).catch((e) => {
    throw new Error(`the page did not get ready: ${e.message}\n${logs.join('\n')}`);
  });

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
  // timeline, and its keys go to the two left.
  procs.get('rust-3').kill('SIGKILL');
  const afterKill = await untilShown(
    page,
    (v) => v.members['rust-3'] === 'dead' && v.timeline.some((e) => e.kind === 'dead' && e.name === 'rust-3') && v.shares.length === 2,
    'rust-3 dead',
  );
  assert.match(afterKill.cardText['rust-3'], /\bdead\b/);
  assert.match(afterKill.timeline.find((e) => e.kind === 'dead' && e.name === 'rust-3').text, /rust-3 was declared dead/);
  assert.deepEqual(afterKill.shares.map((s) => s.name), ['rust-1', 'rust-2']);
  for (const n of ALL.filter((n) => n !== 'rust-3')) assert.equal(afterKill.members[n], 'alive', `${n} still alive`);
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
