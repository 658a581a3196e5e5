// examples/worker-members in workerd against a live `gossiphttp node` cluster on
// 127.0.0.1: GET /members lists every member with its ckit state, GET /owner answers
// the owners lookup() picks here in Node for the same members, errors map to statuses.
//
// Needs pkg/ (scripts/build-pkg.sh), target/debug/gossiphttp and workerd (npm ci).
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, test } from 'node:test';
import { http1Request, pkgDir, repoRoot, startNode, startWorkerd, stopAll, waitUntil } from './support.mjs';

after(stopAll);

const example = path.join(repoRoot, 'examples', 'worker-members');
const gossip = await import(path.join(pkgDir, 'gossiphttp.js'));
gossip.initSync({ module: fs.readFileSync(path.join(pkgDir, 'gossiphttp_bg.wasm')) });

async function getJson(url) {
  const res = await http1Request(url, { method: 'GET', timeoutMs: 10_000 });
  return { status: res.status, body: JSON.parse(res.body.toString('utf8')) };
}

function startExample(vars) {
  return startWorkerd({
    template: path.join(example, 'config.capnp.in'),
    vars: { CLUSTER_LABEL: '', ...vars },
    files: {
      'worker.mjs': path.join(example, 'worker.mjs'),
      'gossiphttp.js': path.join(pkgDir, 'gossiphttp.js'),
      'gossiphttp_bg.wasm': path.join(pkgDir, 'gossiphttp_bg.wasm'),
    },
  });
}

test('the worker example reports a live cluster: /members and /owner', { timeout: 90_000 }, async () => {
  const args = ['--accept-http1', '--preset', 'fast', '--label', 'edge'];
  const a = await startNode('wk-a', args);
  const b = await startNode('wk-b', [...args, '--join', a.addr]);
  const c = await startNode('wk-c', [...args, '--join', a.addr, '--ckit-state', 'viewer']);
  const wd = await startExample({ NODE_URL: a.url, CLUSTER_LABEL: 'edge' });
  try {
    let listed;
    await waitUntil(
      async () => {
        const { status, body } = await getJson(`${wd.url}/members`);
        if (status !== 200) throw new Error(`GET /members: ${status} ${JSON.stringify(body)}`);
        listed = body.members;
        const states = Object.fromEntries(listed.map((m) => [m.name, m.ckitState]));
        return listed.length === 3 && states['wk-a'] === 'participant' && states['wk-b'] === 'participant' && states['wk-c'] === 'viewer';
      },
      { timeoutMs: 30_000, intervalMs: 250, label: 'the worker lists three members with their ckit states' },
    );
    const byName = Object.fromEntries(listed.map((m) => [m.name, m]));
    for (const n of [a, b, c]) {
      assert.equal(byName[n.name].addr, n.addr);
      assert.equal(byName[n.name].state, 'alive');
      assert.equal(typeof byName[n.name].meta, 'string'); // base64
    }

    // The owners: what lookup() gives here for the members the node reports.
    const here = await gossip.members(a.url, { label: 'edge' });
    for (const key of ['tenant-1', 'tenant-42', 'ünïcode']) {
      const { status, body } = await getJson(`${wd.url}/owner?key=${encodeURIComponent(key)}&n=2`);
      assert.equal(status, 200, JSON.stringify(body));
      assert.equal(body.key, key);
      const expected = gossip.lookup(key, 2, here).map((m) => m.name);
      assert.deepEqual(body.owners.map((m) => m.name), expected, key);
      assert.ok(body.owners.every((m) => m.ckitState === 'participant'), 'a viewer owns nothing');
    }
    // Reads: still only the two participants (the viewer never owns).
    assert.equal((await getJson(`${wd.url}/owner?key=k&n=2&op=read`)).status, 200);

    // Errors, as statuses with the package's code.
    let r = await getJson(`${wd.url}/owner?key=k&n=3`);
    assert.equal(r.status, 409);
    assert.equal(r.body.code, 'not_enough_members');
    r = await getJson(`${wd.url}/owner`);
    assert.equal(r.status, 400);
    r = await getJson(`${wd.url}/owner?key=k&op=delete`);
    assert.equal(r.status, 400);
    assert.equal(r.body.code, 'invalid_options');
  } finally {
    await wd.stop();
  }

  // Another label: the node ignores the worker, which says why.
  const wrong = await startExample({ NODE_URL: a.url, CLUSTER_LABEL: 'other' });
  try {
    const r = await getJson(`${wrong.url}/members`);
    assert.equal(r.status, 502);
    assert.equal(r.body.code, 'protocol');
    assert.match(r.body.error, /label "other"/);
  } finally {
    await wrong.stop();
  }
  await Promise.all([a.stop(), b.stop(), c.stop()]);
});
