// members() and lookup() in headless Chromium, through the npm package (pkg/):
// lookup() against ckit's Go sharding (../shared/vectors/shard.json, read here and
// handed to the page), members() from a page against a `gossiphttp node` over TLS
// (HTTP/2, the page's origin allowed by --cors), and http2: true refused outside Node.
//
// Needs pkg/ (scripts/build-pkg.sh), target/debug/gossiphttp and /usr/bin/chromium.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { chromium } from 'playwright-core';
import { makeCert, repoRoot, serveStatic, startNode, stopAll, waitUntil, withTimeout } from './support.mjs';

const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';
let browser, site, page;
const certDir = fs.mkdtempSync(path.join(os.tmpdir(), 'gossiphttp-members-tls-'));

before(async () => {
  site = await serveStatic();
  browser = await withTimeout(chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox', '--ignore-certificate-errors'] }), 30_000, 'launching chromium');
  page = await browser.newPage();
  await page.goto(`${site.origin}/pkg/package.json`);
  await page.evaluate(async () => {
    const gossip = await import('/pkg/gossiphttp.js');
    await gossip.default('/pkg/gossiphttp_bg.wasm');
    globalThis.gossip = gossip;
  });
});

after(async () => {
  await browser?.close().catch(() => {});
  await stopAll();
  fs.rmSync(certDir, { recursive: true, force: true });
});

test('lookup() in Chromium picks the owners ckit picks (every shard.json case)', async () => {
  const vectors = JSON.parse(fs.readFileSync(path.join(repoRoot, '..', 'shared', 'vectors', 'shard.json'), 'utf8'));
  const result = await page.evaluate((v) => {
    const { lookup } = globalThis.gossip;
    const failures = [];
    let checked = 0;
    const opts = (name) => (name.startsWith('ring-') ? { hasher: 'ring', ringTokens: Number(name.slice(5)) } : { hasher: name });
    const key = (k) => BigInt(`0x${k.key_hex}`);
    const member = (name, ckitState) => ({ name, addr: '10.0.0.1:7946', state: 'alive', incarnation: 1, meta: new Uint8Array(), ckitState });
    const same = (a, b) => JSON.stringify(a) === JSON.stringify(b);
    for (const h of v.hashers) {
      for (const c of h.cases) {
        const ms = c.nodes.map((n) => member(n, 'participant'));
        v.lookup_keys.forEach((k, i) => {
          let got;
          try {
            got = lookup(key(k), c.n, ms, opts(h.name)).map((m) => m.name);
          } catch (e) {
            got = e.code;
          }
          const want = c.owners ? c.owners[i] : 'not_enough_members';
          if (!same(got, want)) failures.push(`${h.name} ${c.node_set} n=${c.n} ${k.label}: ${JSON.stringify(got)}`);
          checked++;
        });
      }
    }
    const stated = v.op_semantics.peers_given_to_SetPeers.map((p) => member(p.name, p.state));
    for (const c of v.op_semantics.cases) {
      v.lookup_keys.slice(0, 40).forEach((k, i) => {
        let got;
        try {
          got = lookup(key(k), c.n, stated, { ...opts(c.hasher), op: c.op === 'Read' ? 'read' : 'readwrite' }).map((m) => m.name);
        } catch (e) {
          got = e.code;
        }
        const want = c.error ? 'not_enough_members' : c.owners_for_first_40_lookup_keys[i];
        if (!same(got, want)) failures.push(`${c.hasher} ${c.op} n=${c.n} ${k.label}: ${JSON.stringify(got)}`);
        checked++;
      });
    }
    for (const s of v.string_keys) {
      const bytes = new Uint8Array(s.input_utf8_hex.match(/../g)?.map((x) => parseInt(x, 16)) ?? []);
      const ms = ['node-1', 'node-2', 'node-3'].map((n) => member(n, 'participant'));
      const a = lookup(bytes, 3, ms, { hasher: 'rendezvous' }).map((m) => m.name);
      const b = lookup(BigInt(`0x${s.key_hex}`), 3, ms, { hasher: 'rendezvous' }).map((m) => m.name);
      if (!same(a, b)) failures.push(`string key ${s.input_display}`);
      checked++;
    }
    return { checked, failures: failures.slice(0, 20), failed: failures.length };
  }, vectors);
  assert.equal(result.failed, 0, result.failures.join('\n'));
  assert.ok(result.checked > 10_000, `only ${result.checked} cases checked`);
});

test('members() from a page: a gossiphttp node over TLS (HTTP/2, CORS); http2: true is for Node only', { timeout: 60_000 }, async () => {
  const { cert, key } = makeCert(certDir);
  const tls = ['--tls-cert', cert, '--tls-key', key, '--cors', site.origin, '--preset', 'fast'];
  const a = await startNode('page-a', tls, { scheme: 'https' });
  const b = await startNode('page-b', [...tls, '--join', a.addr], { scheme: 'https' });
  await waitUntil(async () => (await a.members()).length === 2, { label: 'two members', timeoutMs: 20_000 });
  const url = `https://${a.addr}`;
  let got;
  await waitUntil(
    async () => {
      got = await page.evaluate(async (u) => {
        try {
          return (await globalThis.gossip.members(u, { timeoutMs: 3000 })).map((m) => ({ name: m.name, addr: m.addr, state: m.state, ckitState: m.ckitState }));
        } catch (e) {
          return { code: e.code, message: e.message };
        }
      }, url);
      return Array.isArray(got) && got.length === 2 && got.every((m) => m.ckitState === 'participant');
    },
    { label: `members() in the page (last: ${JSON.stringify(got)})`, timeoutMs: 20_000 },
  );
  assert.deepEqual(got.map((m) => m.name).sort(), ['page-a', 'page-b']);
  assert.equal(got.find((m) => m.name === 'page-b').addr, b.addr);
  const refused = await page.evaluate(async (u) => {
    try {
      await globalThis.gossip.members(u, { http2: true });
      return 'resolved';
    } catch (e) {
      return { code: e.code, message: e.message };
    }
  }, url);
  assert.equal(refused.code, 'invalid_options');
  assert.match(refused.message, /Node/);
  await Promise.all([a.stop(), b.stop()]);
});
