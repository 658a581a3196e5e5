// members() and lookup() from Node, through the npm package (pkg/):
//
// - lookup() against ckit's Go sharding (../shared/vectors/shard.json): every hasher,
//   every node set and owner count, string and raw (bigint) keys, the ops over members
//   in mixed ckit states;
// - members() against a live `gossiphttp node` cluster (fetch over HTTP/1.1, and
//   node:http2 to a node that speaks HTTP/2 only), and against the Go memberlist peer
//   (node:http2: Go answers HTTP/1.1 with 505); neither lists a new member afterwards;
// - the label option (right label answers, wrong label: a "protocol" error naming it);
// - hostile answers from a fake node (node:http2 server answering crafted bytes):
//   truncated, wrong message, an error reply, over-cap lengths, garbage, silence and a
//   slow drip (both "timeout" within timeoutMs), non-200 statuses.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http2 from 'node:http2';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { concat, frame, pkgDir, repoRoot, sleep, startGoPeer, startNode, stopAll, waitUntil, withTimeout } from './support.mjs';

after(stopAll);

const gossip = await import(path.join(pkgDir, 'gossiphttp.js'));
gossip.initSync({ module: fs.readFileSync(path.join(pkgDir, 'gossiphttp_bg.wasm')) });
const { members, lookup } = gossip;

const shardVectors = () => JSON.parse(fs.readFileSync(path.join(repoRoot, '..', 'shared', 'vectors', 'shard.json'), 'utf8'));

/** The Member objects lookup() takes, for names all in `ckitState`. */
const asMembers = (names, ckitState = 'participant') =>
  names.map((name, i) => ({ name, addr: `10.0.0.${i + 1}:7946`, state: 'alive', incarnation: 1, meta: new Uint8Array(), ckitState }));

/** A lookup key of the vectors as lookup() takes it: the raw key as a bigint. */
const rawKey = (k) => BigInt(`0x${k.key_hex}`); // not k.key: JSON numbers lose precision past 2^53

/** The input of a lookup_keys entry derived from a string: its label (`key-7`), or Go's %q of it (`StringKey("node-1\\x00")`). */
function keyInput(k) {
  if (k.derivation !== 'shard.StringKey') return undefined;
  const m = /^StringKey\((".*")\)$/.exec(k.label);
  if (!m) return k.label;
  // \x80 and above are raw bytes, not characters: left out.
  if (/\\x[89a-f]/.test(m[1])) return undefined;
  try {
    return JSON.parse(m[1].replace(/\\x([0-9a-f]{2})/g, '\\u00$1'));
  } catch {
    return undefined; // an escape JSON does not share
  }
}

describe('lookup() picks the owners ckit picks (shard.json)', () => {
  const v = shardVectors();
  const hasherOptions = (name) =>
    name.startsWith('ring-') ? { hasher: 'ring', ringTokens: Number(name.slice(5)) } : { hasher: name };

  test('every hasher, node set and owner count, keys given raw (bigint)', () => {
    let checked = 0;
    for (const h of v.hashers) {
      for (const c of h.cases) {
        const ms = asMembers(c.nodes);
        for (const [i, k] of v.lookup_keys.entries()) {
          if (c.owners) {
            const owners = lookup(rawKey(k), c.n, ms, hasherOptions(h.name)).map((m) => m.name);
            assert.deepEqual(owners, c.owners[i], `${h.name} ${c.node_set} n=${c.n} key ${k.label}`);
            checked++;
          } else {
            assert.throws(() => lookup(rawKey(k), c.n, ms, hasherOptions(h.name)), (e) => e.code === 'not_enough_members' && e.message.startsWith(c.error_for_any_key ?? 'not enough nodes'));
          }
        }
      }
    }
    assert.ok(checked > 10_000, `only ${checked} lookups checked`);
  });

  test('string keys hash as shard.StringKey: a string gives the owners of its key', () => {
    const h = v.hashers.find((x) => x.name === 'rendezvous');
    const c = h.cases.find((x) => x.nodes.length >= 5 && x.n === 1);
    let checked = 0;
    for (const [i, k] of v.lookup_keys.entries()) {
      const input = keyInput(k);
      if (input === undefined) continue;
      const fromString = lookup(input, 1, asMembers(c.nodes), { hasher: 'rendezvous' }).map((m) => m.name);
      const fromBytes = lookup(new TextEncoder().encode(input), 1, asMembers(c.nodes), { hasher: 'rendezvous' }).map((m) => m.name);
      assert.deepEqual(fromString, c.owners[i], k.label);
      assert.deepEqual(fromBytes, fromString, k.label);
      checked++;
    }
    assert.ok(checked >= 150, `string keys matched the vectors' owners only ${checked} times`);
    // And the string_keys cases: the key of a string is the raw key with the same owners.
    for (const s of v.string_keys) {
      const bytes = Buffer.from(s.input_utf8_hex, 'hex');
      const ms = asMembers(['node-1', 'node-2', 'node-3', 'node-4', 'node-5']);
      assert.deepEqual(
        lookup(bytes, 3, ms, { hasher: 'multiprobe' }).map((m) => m.name),
        lookup(BigInt(`0x${s.key_hex}`), 3, ms, { hasher: 'multiprobe' }).map((m) => m.name),
        s.input_display,
      );
    }
  });

  test('ops over members in mixed ckit states (viewers never own, terminating ones own reads)', () => {
    const ms = v.op_semantics.peers_given_to_SetPeers.map((p, i) => ({ name: p.name, addr: `10.0.0.${i}:1`, state: 'alive', incarnation: 1, meta: new Uint8Array(), ckitState: p.state }));
    for (const c of v.op_semantics.cases) {
      const opts = { ...hasherOptions(c.hasher), op: c.op === 'Read' ? 'read' : 'readwrite' };
      for (const [i, k] of v.lookup_keys.slice(0, 40).entries()) {
        if (c.error) {
          assert.throws(() => lookup(rawKey(k), c.n, ms, opts), (e) => e.code === 'not_enough_members' && e.message.startsWith(c.error));
        } else {
          assert.deepEqual(lookup(rawKey(k), c.n, ms, opts).map((m) => m.name), c.owners_for_first_40_lookup_keys[i], `${c.hasher} ${c.op} n=${c.n}`);
        }
      }
    }
  });

  test('the owners are the objects given; dead and left members own nothing; defaults are ring-512 and readwrite', () => {
    const ms = asMembers(['a', 'b', 'c']);
    const [owner] = lookup('tenant-1', 1, ms);
    assert.ok(ms.includes(owner));
    assert.deepEqual(lookup('tenant-1', 1, ms), lookup('tenant-1', 1, ms, { hasher: 'ring', ringTokens: 512, op: 'write' }));
    for (const gone of ['dead', 'left']) {
      const out = ms.map((m) => (m === owner ? { ...m, state: gone } : m));
      assert.notEqual(lookup('tenant-1', 1, out)[0].name, owner.name);
      assert.equal(lookup('tenant-1', 2, out).length, 2);
      assert.throws(() => lookup('tenant-1', 3, out), { code: 'not_enough_members' });
    }
    // No ckitState: a viewer (a plain memberlist member), as ckit counts it.
    assert.throws(() => lookup('k', 1, ms.map(({ ckitState, ...m }) => m)), { code: 'not_enough_members' });
    assert.deepEqual(lookup('k', 0, ms), []);
    assert.throws(() => lookup('k', -1, ms), { code: 'invalid_argument' });
    assert.throws(() => lookup(42, 1, ms), { code: 'invalid_argument' });
    assert.throws(() => lookup('k', 1, 'nope'), { code: 'invalid_argument' });
    assert.throws(() => lookup('k', 1, [{ nom: 'x' }]), { code: 'invalid_argument' });
    assert.throws(() => lookup('k', 1, ms, { hasher: 'maglev' }), { code: 'invalid_options' });
    assert.throws(() => lookup('k', 1, ms, { op: 'delete' }), { code: 'invalid_options' });
    assert.throws(() => lookup('k', 1, ms, { ringTokens: 0 }), { code: 'invalid_options' });
    assert.throws(() => lookup(2n ** 64n, 1, ms), { code: 'invalid_argument' });
  });
});

/** Members by name, for comparisons. */
const byName = (list) => Object.fromEntries(list.map((m) => [m.name, m]));

describe('members() against live nodes', () => {
  test('a gossiphttp node cluster (fetch over HTTP/1.1): every member, its ckit state; no one added', { timeout: 60_000 }, async () => {
    const a = await startNode('rust-a', ['--accept-http1', '--preset', 'fast']);
    const b = await startNode('rust-b', ['--accept-http1', '--preset', 'fast', '--join', a.addr]);
    const c = await startNode('rust-c', ['--accept-http1', '--preset', 'fast', '--join', a.addr, '--ckit-state', 'viewer']);
    await waitUntil(async () => (await a.members()).length === 3 && (await c.members()).every((m) => m.ckit_state), { label: 'three members seen by rust-a', timeoutMs: 20_000 });
    // ckit states travel by gossip: wait until a's push-pull carries every one.
    let got;
    await waitUntil(
      async () => {
        got = await members(a.url, { timeoutMs: 3000 });
        const m = byName(got);
        return got.length === 3 && m['rust-a']?.ckitState === 'participant' && m['rust-b']?.ckitState === 'participant' && m['rust-c']?.ckitState === 'viewer';
      },
      { label: 'members() lists the three with their ckit states', timeoutMs: 20_000 },
    );
    const m = byName(got);
    for (const n of [a, b, c]) {
      assert.equal(m[n.name].addr, n.addr);
      assert.equal(m[n.name].state, 'alive');
      assert.ok(Number.isInteger(m[n.name].incarnation) && m[n.name].incarnation >= 1);
      assert.ok(m[n.name].meta instanceof Uint8Array);
    }
    // The same answer from another member, and the owners agree whoever answered.
    const fromB = await members(b.url);
    assert.deepEqual(Object.keys(byName(fromB)).sort(), ['rust-a', 'rust-b', 'rust-c']);
    assert.deepEqual(lookup('tenant-42', 2, got).map((x) => x.name), lookup('tenant-42', 2, fromB).map((x) => x.name));
    assert.ok(lookup('tenant-42', 2, got).every((x) => x.ckitState === 'participant'));
    // Nobody was added: each node still lists three members, and does a second later.
    await sleep(1000);
    for (const n of [a, b, c]) assert.deepEqual((await n.members()).map((x) => x.name).sort(), ['rust-a', 'rust-b', 'rust-c'], `${n.name}'s members`);
    await Promise.all([a.stop(), b.stop(), c.stop()]);
  });

  test('http2: true reaches a node that speaks HTTP/2 only (fetch gets 505 and says so)', { timeout: 60_000 }, async () => {
    const a = await startNode('h2-a', ['--preset', 'fast']);
    const b = await startNode('h2-b', ['--preset', 'fast', '--join', a.addr]);
    await waitUntil(async () => (await a.members()).length === 2, { label: 'two members' });
    await assert.rejects(members(a.url), (e) => e.code === 'status' && e.status === 505 && /HTTP\/1\.1/.test(e.message));
    const got = await members(a.url, { http2: true });
    assert.deepEqual(got.map((x) => x.name).sort(), ['h2-a', 'h2-b']);
    assert.equal(byName(got)['h2-b'].addr, b.addr);
    await sleep(500);
    assert.equal((await a.members()).length, 2);
    await Promise.all([a.stop(), b.stop()]);
  });

  test('the Go memberlist peer, through node:http2: both members, no ckit state, no one added', { timeout: 60_000 }, async () => {
    const g1 = await startGoPeer('go-1', ['--meta', 'hello']);
    const g2 = await startGoPeer('go-2', ['--join', g1.addr]);
    await waitUntil(async () => (await g1.members()).length === 2, { label: 'go-1 sees go-2' });
    await assert.rejects(members(g1.url), (e) => e.code === 'status' && e.status === 505);
    const got = await members(g1.url, { http2: true });
    const m = byName(got);
    assert.deepEqual(Object.keys(m).sort(), ['go-1', 'go-2']);
    assert.equal(m['go-1'].addr, g1.addr);
    assert.equal(m['go-2'].addr, g2.addr);
    assert.equal(new TextDecoder().decode(m['go-1'].meta), 'hello');
    assert.equal(m['go-1'].state, 'alive');
    // Its user state is the test peer's JSON, not ckit's: no ckit state.
    assert.equal(m['go-1'].ckitState, undefined);
    // Memberlist merged nothing: no member, no user state from us.
    await sleep(1000);
    for (const g of [g1, g2]) assert.deepEqual((await g.members()).map((x) => x.name).sort(), ['go-1', 'go-2'], `${g.name}'s members`);
    assert.ok(!g1.events.some((e) => e.event === 'merge_remote_state' && e.hex === ''), 'no empty user state was merged');
    await Promise.all([g1.stop(), g2.stop()]);
  });

  test('label: the right one answers; a wrong or missing one is a "protocol" error naming the label', { timeout: 60_000 }, async () => {
    const n = await startNode('label-a', ['--accept-http1', '--label', 'prod']);
    const g = await startGoPeer('label-go', ['--label', 'prod']);
    assert.deepEqual((await members(n.url, { label: 'prod' })).map((x) => x.name), ['label-a']);
    assert.deepEqual((await members(g.url, { label: 'prod', http2: true })).map((x) => x.name), ['label-go']);
    for (const [url, http2] of [[n.url, false], [g.url, true]]) {
      await assert.rejects(members(url, { label: 'staging', http2 }), (e) => e.code === 'protocol' && /label "staging"/.test(e.message) && /cluster\.name/.test(e.message));
      await assert.rejects(members(url, { http2 }), (e) => e.code === 'protocol' && /no label/.test(e.message));
    }
    await assert.rejects(members(n.url, { label: 'x'.repeat(256) }), { code: 'invalid_options' });
    await Promise.all([n.stop(), g.stop()]);
  });
});

// ---- a fake node: a node:http2 server (h2c) answering crafted bytes ----

/** A tiny msgpack writer (go-msgpack's forms: fixmap, raw strings, uints, bools). */
function mp(value) {
  const out = [];
  const uint = (n) => {
    if (n < 0x80) out.push(n);
    else if (n < 0x100) out.push(0xcc, n);
    else if (n < 0x10000) out.push(0xcd, n >> 8, n & 0xff);
    else out.push(0xce, (n >>> 24) & 0xff, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff);
  };
  const raw = (bytes) => {
    if (bytes.length < 32) out.push(0xa0 | bytes.length);
    else if (bytes.length < 0x10000) out.push(0xda, bytes.length >> 8, bytes.length & 0xff);
    else throw new Error('too long');
    out.push(...bytes);
  };
  const write = (v) => {
    if (v === null) out.push(0xc0);
    else if (typeof v === 'boolean') out.push(v ? 0xc3 : 0xc2);
    else if (typeof v === 'number') uint(v);
    else if (typeof v === 'string') raw(new TextEncoder().encode(v));
    else if (v instanceof Uint8Array) raw(v);
    else if (Array.isArray(v)) {
      out.push(0x90 | v.length);
      v.forEach(write);
    } else {
      const entries = Object.entries(v);
      out.push(0x80 | entries.length);
      for (const [k, x] of entries) {
        write(k);
        write(x);
      }
    }
  };
  write(value);
  return new Uint8Array(out);
}

const nodeState = (name, last, state = 0) => mp({ Name: name, Addr: new Uint8Array([127, 0, 0, last]), Port: 7946, Meta: null, Incarnation: 3, State: state, Vsn: new Uint8Array([1, 5, 2, 0, 0, 0]) });
const ckitUserState = mp({ CurrentTime: 9, NodeStates: [{ NewState: 1, NodeName: 'fake-a', Time: 5 }, { NewState: 2, NodeName: 'fake-b', Time: 7 }] });
/** A valid push-pull: two members (one suspect), ckit's user state. */
const validPushPull = concat([
  new Uint8Array([6]),
  mp({ Nodes: 2, UserStateLen: ckitUserState.length, Join: false }),
  nodeState('fake-a', 1),
  nodeState('fake-b', 2, 1),
  ckitUserState,
]);

/**
 * Starts an h2c server that answers every /stream request with `answer(req, res, body)`
 * (the request body read first). Returns `{ url, requests, close() }`.
 */
async function fakeNode(answer) {
  const requests = [];
  const server = http2.createServer();
  const sessions = new Set();
  server.on('session', (s) => {
    sessions.add(s);
    s.on('close', () => sessions.delete(s));
  });
  server.on('stream', (stream, headers) => {
    const chunks = [];
    stream.on('data', (c) => chunks.push(c));
    stream.on('error', () => {});
    stream.on('end', () => {
      const body = Buffer.concat(chunks);
      requests.push({ headers, body });
      answer(stream, body);
    });
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    requests,
    close: () =>
      new Promise((r) => {
        for (const s of sessions) s.destroy();
        server.close(() => r());
      }),
  };
}

const ok = (bytes) => (stream) => {
  stream.respond({ ':status': 200, 'content-type': 'application/x.ckit' });
  stream.end(Buffer.from(bytes));
};

describe('members() against a fake node (crafted answers)', () => {
  test('a valid answer: what we sent, and what came back', async () => {
    const fake = await fakeNode(ok(frame(validPushPull)));
    try {
      const got = await members(fake.url, { http2: true, token: 't0k', label: 'prod' });
      assert.deepEqual(got, [
        { name: 'fake-a', addr: '127.0.0.1:7946', state: 'alive', incarnation: 3, meta: new Uint8Array(), ckitState: 'participant' },
        { name: 'fake-b', addr: '127.0.0.2:7946', state: 'suspect', incarnation: 3, meta: new Uint8Array(), ckitState: 'terminating' },
      ]);
      const [req] = fake.requests;
      assert.equal(req.headers[':path'], '/api/v1/ckit/transport/stream');
      assert.equal(req.headers['content-type'], 'application/x.ckit');
      assert.equal(req.headers.authorization, 'Bearer t0k');
      // One frame: the label header, then a push-pull of no node, no user state, Join false.
      const expected = concat([new Uint8Array([0xf4, 4]), new TextEncoder().encode('prod'), new Uint8Array([6]), mp({ Join: false, Nodes: 0, UserStateLen: 0 })]);
      assert.equal(Buffer.from(req.body).toString('hex'), Buffer.from(frame(expected)).toString('hex'));
    } finally {
      await fake.close();
    }
  });

  test('the answer split in one-byte frames decodes too (compressed answers: the live nodes above send them)', async () => {
    const pieces = Array.from(validPushPull, (b) => frame(new Uint8Array([b])));
    const fake = await fakeNode(ok(concat(pieces)));
    try {
      assert.equal((await members(fake.url, { http2: true })).length, 2);
    } finally {
      await fake.close();
    }
  });

  const hostile = [
    ['truncated mid-member', frame(validPushPull.subarray(0, 40)), /truncated|ended/i],
    ['truncated inside a frame', frame(validPushPull).subarray(0, 30), /framing/i],
    ['a bad frame byte', new Uint8Array([0x00, 1, 2, 3]), /framing/i],
    ['an ack, not a push-pull', frame(concat([new Uint8Array([2]), mp({ SeqNo: 1, Payload: null })])), /ack/],
    ['an error reply', frame(concat([new Uint8Array([13]), mp({ Error: 'go away' })])), /go away/],
    ['an unknown message type', frame(new Uint8Array([0x77, 1, 2])), /type|119/i],
    ['a label in the answer', frame(concat([new Uint8Array([0xf4, 1, 0x78]), validPushPull])), /.+/],
    ['4 billion members announced', frame(concat([new Uint8Array([6]), mp({ Nodes: 0xffffffff, UserStateLen: 0, Join: false })])), /large|cap|MiB|exceed/i],
    ['a 4 GiB user state announced', frame(concat([new Uint8Array([6]), mp({ Nodes: 0, UserStateLen: 0xffffffff, Join: false })])), /large|cap|MiB|exceed/i],
    ['a member with a 5-byte address', frame(concat([new Uint8Array([6]), mp({ Nodes: 1, UserStateLen: 0, Join: false }), mp({ Name: 'x', Addr: new Uint8Array(5), Port: 1, Meta: null, Incarnation: 1, State: 0, Vsn: new Uint8Array(6) })])), /5 bytes/],
    ['a member state of 9', frame(concat([new Uint8Array([6]), mp({ Nodes: 1, UserStateLen: 0, Join: false }), nodeState('x', 1, 9)])), /.+/],
    ['only empty frames', concat([frame(new Uint8Array()), frame(new Uint8Array())]), /no message/],
    ['nothing at all', new Uint8Array(), /label/],
  ];
  for (const [name, bytes, message] of hostile) {
    test(`hostile answer: ${name} → "protocol"`, async () => {
      const fake = await fakeNode(ok(bytes));
      try {
        await assert.rejects(withTimeout(members(fake.url, { http2: true, timeoutMs: 3000 }), 5000, name), (e) => {
          assert.equal(e.code, 'protocol', `${name}: ${e.code} ${e.message}`);
          assert.match(e.message, message);
          return true;
        });
      } finally {
        await fake.close();
      }
    });
  }

  test('over 20 MiB of user state, sent for real: refused at the cap, not buffered past it', { timeout: 30_000 }, async () => {
    const big = 21 * 1024 * 1024;
    const fake = await fakeNode((stream) => {
      stream.respond({ ':status': 200 });
      stream.write(Buffer.from(frame(concat([new Uint8Array([6]), mp({ Nodes: 0, UserStateLen: 0xfffffff, Join: false })]))));
      const chunk = Buffer.from(frame(new Uint8Array(60_000)));
      let sent = 0;
      const pump = () => {
        while (sent < big && !stream.destroyed) {
          sent += 60_000;
          if (!stream.write(chunk)) return stream.once('drain', pump);
        }
        if (!stream.destroyed) stream.end();
      };
      pump();
    });
    try {
      await assert.rejects(members(fake.url, { http2: true, timeoutMs: 20_000 }), (e) => e.code === 'protocol' && /large|MiB|exceed/i.test(e.message));
    } finally {
      await fake.close();
    }
  });

  test('silence, and a slow drip of valid bytes: "timeout" once timeoutMs has passed in all', { timeout: 30_000 }, async () => {
    const silent = await fakeNode(() => {});
    const headersOnly = await fakeNode((stream) => stream.respond({ ':status': 200 }));
    // One byte of a valid answer every 100 ms: each chunk comes in time, the whole never does.
    const drip = await fakeNode((stream) => {
      stream.respond({ ':status': 200 });
      const bytes = frame(validPushPull);
      let i = 0;
      const t = setInterval(() => {
        if (stream.destroyed || i >= bytes.length) return clearInterval(t);
        stream.write(Buffer.from([bytes[i++]]));
      }, 100);
      stream.on('close', () => clearInterval(t));
    });
    try {
      for (const f of [silent, headersOnly, drip]) {
        const started = Date.now();
        await assert.rejects(members(f.url, { http2: true, timeoutMs: 1000 }), { code: 'timeout' });
        const took = Date.now() - started;
        assert.ok(took >= 900 && took < 5000, `timed out after ${took} ms`);
      }
    } finally {
      await Promise.all([silent.close(), headersOnly.close(), drip.close()]);
    }
  });

  test('non-200 statuses, refused connections and bad options', async () => {
    const fake = await fakeNode((stream) => {
      stream.respond({ ':status': 401 });
      stream.end('bad token');
    });
    try {
      await assert.rejects(members(fake.url, { http2: true }), (e) => e.code === 'status' && e.status === 401 && /bad token/.test(e.message));
    } finally {
      await fake.close();
    }
    const { url } = fake; // closed now: nothing listens there
    await assert.rejects(members(url, { http2: true, timeoutMs: 3000 }), { code: 'network' });
    await assert.rejects(members(url, { timeoutMs: 3000 }), { code: 'network' });
    await assert.rejects(members('ftp://x'), { code: 'invalid_address' });
    await assert.rejects(members(url, { http2: 'yes' }), { code: 'invalid_options' });
    await assert.rejects(members(url, { timeoutMs: -1 }), { code: 'invalid_options' });
    await assert.rejects(members(url, { label: 5 }), { code: 'invalid_options' });
  });
});
