// A Cloudflare Worker (module syntax) that reports a gossip cluster: it asks one
// node for every member with members() (one memberlist push-pull on the node's
// /stream endpoint, which joins nothing) and answers which members own a key with
// lookup() (ckit's sharding).
//
//   GET /members                     the members, as JSON
//   GET /owner?key=K[&n=N][&op=OP]   the N (default 1) owners of key K, as JSON;
//                                    op: readwrite (default), write or read
//
// Configuration (wrangler.toml [vars] / secrets, or workerd bindings):
//   NODE_URL       the node to ask, e.g. https://alloy-0.example.com:12345 (required)
//   CLUSTER_LABEL  the cluster's label (Alloy's --cluster.name), if it has one
//   GOSSIP_TOKEN   a bearer token, for nodes that require one
//   HASHER         ckit's hasher the cluster uses: ring (default, 512 tokens, as Alloy),
//                  rendezvous or multiprobe
//   TIMEOUT_MS     how long to wait for the node (default 5000)
//
// Outbound fetch from a worker speaks HTTP/1.1 (locally in workerd at least), so the
// node must accept it: `gossiphttp node --accept-http1`. Go nodes (ckit, Alloy) answer
// HTTP/1.1 with 505, which this worker reports as a 502 naming the cause.
import { initSync, members, lookup } from 'gossiphttp';
import wasm from 'gossiphttp/gossiphttp_bg.wasm';

initSync({ module: wasm });

/** A member as JSON: its metadata in base64 (bytes have no JSON form). */
function memberJson(m) {
  let meta = '';
  for (const b of m.meta) meta += String.fromCharCode(b);
  return { ...m, meta: btoa(meta) };
}

function json(body, status = 200) {
  return new Response(JSON.stringify(body, null, 2) + '\n', {
    status,
    headers: { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store' },
  });
}

/** The HTTP status that tells a caller what went wrong, from the package's error code. */
function statusFor(code) {
  switch (code) {
    case 'invalid_argument':
    case 'invalid_options':
      return 400;
    case 'not_enough_members':
      return 409; // fewer members own keys than owners asked for: the cluster's state
    case 'timeout':
      return 504;
    case 'invalid_address':
      return 500; // NODE_URL is misconfigured
    default:
      return 502; // status, network, protocol: the node did not give a usable answer
  }
}

export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    if (request.method !== 'GET') return json({ error: 'only GET' }, 405);
    if (!env.NODE_URL) return json({ error: 'NODE_URL is not configured: set it to the URL of a cluster node' }, 500);
    const options = {
      timeoutMs: env.TIMEOUT_MS ? Number(env.TIMEOUT_MS) : undefined,
      token: env.GOSSIP_TOKEN || undefined,
      label: env.CLUSTER_LABEL || undefined,
    };
    try {
      if (url.pathname === '/members') {
        const list = await members(env.NODE_URL, options);
        return json({ node: env.NODE_URL, members: list.map(memberJson) });
      }
      if (url.pathname === '/owner') {
        const key = url.searchParams.get('key');
        if (key === null) return json({ error: 'the key query parameter is required: /owner?key=K' }, 400);
        const n = Number(url.searchParams.get('n') ?? '1');
        const op = url.searchParams.get('op') ?? undefined;
        const list = await members(env.NODE_URL, options);
        const owners = lookup(key, n, list, { hasher: env.HASHER || undefined, op });
        return json({ key, n, owners: owners.map(memberJson) });
      }
      return json({ error: 'not found: GET /members or /owner?key=K' }, 404);
    } catch (err) {
      if (typeof err?.code !== 'string') throw err;
      return json({ error: err.message, code: err.code, status: err.status }, statusFor(err.code));
    }
  },
};
