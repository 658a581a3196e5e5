// A test worker: gossiphttp's endpoints through handleRequest, plus a few
// routes the test drives (packets seen, sending to a native peer with Peer).
//
//   POST /api/v1/ckit/transport/{message,stream}         default options
//   POST /secure/api/v1/ckit/transport/{message,stream}   token "s3cret"
//   POST /small/api/v1/ckit/transport/message             maxPacketSize 100
//   POST /fixed/api/v1/ckit/transport/stream              answers a fixed array (no onPacket: /message is 404)
//   POST /cors/api/v1/ckit/transport/{message,stream}     corsAllowedOrigins: http://allowed.example, env.PAGE_ORIGIN
//   GET  /received          packets seen so far: [{ base, from, len, hex }]
//   POST /reset             forget them
//   POST /send-to?peer=URL  body JSON { packets: [hex], stream: [hex] }: sends the packets
//                           with Peer.send / sendMany, runs one exchange, answers
//                           { echoed: hex } with what came back
import * as gossip from './gossiphttp.js';
import wasm from './gossiphttp_bg.wasm';

gossip.initSync({ module: wasm });

let received = [];

const hex = (b) => Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
const unhex = (s) => new Uint8Array((s.match(/../g) ?? []).map((x) => parseInt(x, 16)));

function handlers(base) {
  return {
    async onPacket(payload, from) {
      // Copy: the test checks the bytes are exactly what was sent.
      received.push({ base, from, len: payload.length, hex: hex(payload) });
    },
    async *onStream(incoming, from) {
      // Echo every byte back as it arrives; note the total once the peer is done.
      let total = 0;
      for await (const chunk of incoming) {
        total += chunk.length;
        yield chunk;
      }
      received.push({ base, from, stream: true, len: total });
    },
  };
}

// onStream may also return (a promise of) a plain iterable: here the caller's
// address, then 70,000 bytes where byte i = i mod 251, without reading `incoming`.
const fixed = {
  onStream(incoming, from) {
    const big = new Uint8Array(70_000).map((_, i) => i % 251);
    return Promise.resolve([new TextEncoder().encode(from), big]);
  },
};

const routes = [
  { base: '/fixed/api/v1/ckit/transport', options: {}, handlers: fixed },
  // PAGE_ORIGIN: a text binding from the workerd config (the test page's origin).
  { base: '/cors/api/v1/ckit/transport', options: (env) => ({ corsAllowedOrigins: ['http://allowed.example', env.PAGE_ORIGIN] }) },
  { base: '/secure/api/v1/ckit/transport', options: { token: 's3cret' } },
  { base: '/small/api/v1/ckit/transport', options: { maxPacketSize: 100 } },
  { base: '/api/v1/ckit/transport', options: {} },
];

async function sendTo(request, url) {
  const peerUrl = url.searchParams.get('peer');
  const spec = await request.json();
  const peer = new gossip.Peer(peerUrl, { timeoutMs: 10_000 });
  const packets = (spec.packets ?? []).map(unhex);
  if (packets.length > 0) await peer.send(packets[0]);
  if (packets.length > 1) await peer.sendMany(packets.slice(1));
  let echoed = null;
  if (spec.stream) {
    const ex = await peer.exchange(spec.stream.map(unhex));
    echoed = hex(await ex.bytes());
  }
  return Response.json({ sent: packets.length, echoed });
}

export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    for (const { base, options, handlers: h } of routes) {
      const opts = typeof options === 'function' ? options(env) : options;
      const answer = await gossip.handleRequest(request, h ?? handlers(base), { ...opts, basePath: base });
      if (answer) return answer;
    }
    try {
      if (url.pathname === '/received') return Response.json(received);
      if (url.pathname === '/reset' && request.method === 'POST') {
        received = [];
        return new Response('ok');
      }
      if (url.pathname === '/send-to' && request.method === 'POST') return await sendTo(request, url);
    } catch (e) {
      return Response.json({ error: String(e?.message ?? e), code: e?.code ?? null, status: e?.status ?? null }, { status: 500 });
    }
    return new Response('gossiphttp test worker\n', { status: url.pathname === '/' ? 200 : 404 });
  },
};
