// The contract's request table (tests/contract/requests.json) against the worker handler:
// every row becomes a `Request` handed to `handleRequest` in Node and must get its status,
// headers and delivered packets. tests/contract_table.rs runs the same table against the
// native server, so the two cannot drift apart unnoticed.
//
// Needs pkg/ (scripts/build-pkg.sh). Rows marked "only": "native" (HTTP/1.1 505, shutdown
// 503) are skipped: the runtime picks the HTTP version, and a worker shutting down is not called.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { pkgDir, repoRoot } from './support.mjs';

const table = JSON.parse(fs.readFileSync(path.join(repoRoot, 'tests', 'contract', 'requests.json'), 'utf8'));
const hex = (b) => Buffer.from(b).toString('hex');

/** handleRequest's options and handlers for a profile; `delivered` collects onPacket's payloads. */
function setup(profile, delivered) {
  const options = {};
  for (const key of ['maxPacketSize', 'token', 'corsAllowedOrigins', 'basePath']) {
    if (profile[key] !== undefined) options[key] = profile[key];
  }
  const all = {
    onPacket(payload) {
      delivered.push(hex(payload));
    },
    async *onStream(incoming) {
      for await (const chunk of incoming) yield chunk;
    },
  };
  const names = profile.handlers ?? Object.keys(all);
  const handlers = Object.fromEntries(names.map((n) => [n, all[n]]));
  return { options, handlers };
}

test('the worker handler answers every row of the contract table', async () => {
  const gossip = await import(path.join(pkgDir, 'gossiphttp.js'));
  gossip.initSync({ module: fs.readFileSync(path.join(pkgDir, 'gossiphttp_bg.wasm')) });
  const failures = [];
  let ran = 0;
  for (const row of table.requests) {
    if (row.only === 'native') continue;
    const profile = table.profiles[row.profile];
    assert.ok(profile, `${row.name}: unknown profile ${row.profile}`);
    assert.ok(!profile.shutDown && !profile.acceptHttp1, `${row.name}: a worker row uses a native-only profile`);
    ran += 1;
    const delivered = [];
    const { options, handlers } = setup(profile, delivered);
    const body = row.body === '' ? undefined : Buffer.from(row.body, 'hex');
    const request = new Request(`http://worker.test${row.path}`, { method: row.method, headers: row.headers, body });
    const answer = await gossip.handleRequest(request, handlers, options);
    // Outside the base path the worker's own router answers: 404 in the table.
    const status = answer === null ? 404 : answer.status;
    const headers = answer?.headers ?? new Headers();
    await answer?.body?.cancel();
    const wrong = [];
    if (status !== row.status) wrong.push(`status ${status} (want ${row.status})`);
    for (const [h, want] of Object.entries(row.response_headers ?? {})) {
      if (headers.get(h) !== want) wrong.push(`${h}: ${headers.get(h)} (want ${want})`);
    }
    for (const h of row.absent_headers ?? []) {
      if (headers.has(h)) wrong.push(`${h}: ${headers.get(h)} (want none)`);
    }
    if (row.delivered && JSON.stringify(delivered) !== JSON.stringify(row.delivered)) {
      wrong.push(`delivered ${JSON.stringify(delivered)} (want ${JSON.stringify(row.delivered)})`);
    }
    if (wrong.length) failures.push(`[${row.profile}] ${row.name}: ${wrong.join('; ')}`);
  }
  assert.ok(ran > 30, `only ${ran} worker rows`);
  assert.deepEqual(failures, [], `rows answered wrong:\n${failures.join('\n')}`);
});

test('the worker refuses a token no request could carry, as the native server refuses such an auth_token', async () => {
  const gossip = await import(path.join(pkgDir, 'gossiphttp.js'));
  gossip.initSync({ module: fs.readFileSync(path.join(pkgDir, 'gossiphttp_bg.wasm')) });
  const request = new Request('http://worker.test/api/v1/ckit/transport/message', { method: 'POST' });
  for (const token of ['has space', '', 'tab\tinside']) {
    await assert.rejects(
      gossip.handleRequest(request, { onPacket() {} }, { token }),
      (e) => e.code === 'invalid_options' && /token must be non-empty visible ASCII/.test(e.message),
      `token ${JSON.stringify(token)} accepted`,
    );
  }
});
