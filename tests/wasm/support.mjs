// Shared helpers for the JS end-to-end tests (node --test tests/wasm/).
//
// - makeCert(dir):      a self-signed certificate for 127.0.0.1 and localhost (openssl)
// - startPeer(args):    spawn `gossiphttp listen`, parse its JSON lines
// - serveStatic(opts):  a tiny static file server (right MIME type for .wasm)
// - startWorkerd(opts): run workerd with a config generated from a template
// - freePort(), withTimeout(), waitUntil(), stopAll()
//
// Every wait is bounded, and every child process started here is killed by
// stopAll() (call it from `after()`), on process exit, and on SIGINT/SIGTERM.

import { execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const here = path.dirname(fileURLToPath(import.meta.url));
export const repoRoot = path.resolve(here, '..', '..');
export const pkgDir = path.join(repoRoot, 'pkg');
export const wwwDir = path.join(repoRoot, 'www');
export const cliBin = path.join(repoRoot, 'target', 'debug', 'gossiphttp');
export const workerdBin = path.join(here, 'node_modules', '.bin', 'workerd');
export const artifactsDir = path.join(repoRoot, 'target', 'artifacts');

const children = new Set();
const servers = new Set();

function killChild(child) {
  if (child.exitCode === null && child.signalCode === null) {
    try {
      child.kill('SIGKILL');
    } catch {
      /* already gone */
    }
  }
}

process.on('exit', () => {
  for (const c of children) killChild(c);
});
for (const sig of ['SIGINT', 'SIGTERM']) {
  process.once(sig, () => {
    for (const c of children) killChild(c);
    process.exit(130);
  });
}

/** Rejects after `ms` with a message naming `label`, unless `promise` settles first. */
export function withTimeout(promise, ms, label = 'operation') {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${label}: timed out after ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Polls `check` (sync or async) until it returns a truthy value; bounded. */
export async function waitUntil(check, { timeoutMs = 10_000, intervalMs = 50, label = 'condition' } = {}) {
  const deadline = Date.now() + timeoutMs;
  let lastErr;
  for (;;) {
    try {
      const v = await check();
      if (v) return v;
    } catch (e) {
      lastErr = e;
    }
    if (Date.now() > deadline) {
      throw new Error(`${label}: not met within ${timeoutMs} ms${lastErr ? ` (last error: ${lastErr.message})` : ''}`);
    }
    await sleep(intervalMs);
  }
}

/** A TCP port that was free a moment ago on 127.0.0.1. */
export async function freePort() {
  const srv = net.createServer();
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  const { port } = srv.address();
  await new Promise((r) => srv.close(r));
  return port;
}

/** Lower-case hex of a byte array. */
export function hex(bytes) {
  return Buffer.from(bytes).toString('hex');
}

/** `len` bytes where byte i = (i * mul + add) mod 251: recognisable, not periodic at frame sizes. */
export function pattern(len, add = 0, mul = 1) {
  const out = new Uint8Array(len);
  for (let i = 0; i < len; i++) out[i] = (i * mul + add) % 251;
  return out;
}

/** Spawns a child that stopAll() will kill; stdout/stderr are collected as text. */
export function spawnTracked(cmd, args, opts = {}) {
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], ...opts });
  children.add(child);
  child.on('exit', () => children.delete(child));
  child.output = '';
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (d) => {
    child.output += d;
    if (process.env.GOSSIPHTTP_TEST_VERBOSE) process.stderr.write(`[${path.basename(cmd)}] ${d}`);
  });
  return child;
}

/** Stops one child: SIGTERM, then SIGKILL after `graceMs`. */
export async function stopChild(child, { signal = 'SIGTERM', graceMs = 3000 } = {}) {
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, 'exit');
  try {
    child.kill(signal);
  } catch {
    /* already gone */
  }
  try {
    await withTimeout(exited, graceMs, 'child exit');
  } catch {
    killChild(child);
    await withTimeout(exited, 2000, 'child exit after SIGKILL').catch(() => {});
  }
}

/** Kills every child and closes every server started through this module. */
export async function stopAll() {
  await Promise.all([...children].map((c) => stopChild(c, { graceMs: 2000 })));
  await Promise.all(
    [...servers].map(
      (s) =>
        new Promise((r) => {
          s.closeAllConnections?.();
          s.close(() => r());
        }),
    ),
  );
  servers.clear();
}

/**
 * Writes a self-signed certificate for 127.0.0.1 and localhost, and its key, to
 * `dir` (made if missing) as cert.pem and key.pem, with openssl. It is marked
 * `CA:FALSE`: a certificate that is its own CA is refused as a server's by rustls.
 * Returns `{ cert, key }` (paths).
 */
export function makeCert(dir) {
  fs.mkdirSync(dir, { recursive: true });
  const cert = path.join(dir, 'cert.pem');
  const key = path.join(dir, 'key.pem');
  // prettier-ignore
  execFileSync('openssl', [
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes',
    '-keyout', key, '-out', cert, '-days', '7', '-subj', '/CN=127.0.0.1',
    '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost',
    '-addext', 'basicConstraints=critical,CA:FALSE',
  ], { stdio: ['ignore', 'ignore', 'pipe'], timeout: 20_000 });
  return { cert, key };
}

/** Calls `handle` with each non-empty, trimmed line `readable` prints. */
function onLines(readable, handle) {
  let buf = '';
  readable.setEncoding('utf8');
  readable.on('data', (d) => {
    buf += d;
    let nl;
    while ((nl = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, nl).trim();
      buf = buf.slice(nl + 1);
      if (line) handle(line);
    }
  });
}

/**
 * Starts `target/debug/gossiphttp listen --addr 127.0.0.1:0 --echo-streams` with the
 * CLI's flags `args` (e.g. `['--accept-http1']`, `['--cors', 'http://127.0.0.1:8080']`,
 * `['--tls-cert', cert, '--tls-key', key]`) and waits until it listens.
 *
 * Its first line (`listening on ADDR`) becomes the event `{ event: 'listening', addr, url }`;
 * every later line is a JSON event (`packet`, `stream_open`, `stream_data`, `stream_close`).
 * A `stream_close` event also gets `hex`: every byte its stream sent, from its
 * `stream_data` events (each was echoed back as it arrived).
 *
 * Returns `{ url, addr, listening, events, child, next(pred, ms), packets(n, ms),
 * streamClose(ms), stop() }`. `events` holds every event seen so far; `next` waits
 * for the first event (already seen or still to come) matching `pred` that no earlier
 * `next` call took.
 */
export async function startPeer(args = [], { timeoutMs = 20_000 } = {}) {
  if (!fs.existsSync(cliBin)) {
    throw new Error(`${cliBin} is missing: run \`cargo build --bin gossiphttp\` first`);
  }
  const scheme = args.includes('--tls-cert') ? 'https' : 'http';
  const child = spawnTracked(cliBin, ['listen', '--addr', '127.0.0.1:0', '--echo-streams', ...args], { cwd: repoRoot });
  const events = [];
  const taken = new Set();
  const waiters = new Set();
  const received = new Map(); // stream number -> hex received so far
  onLines(child.stdout, (line) => {
    let ev;
    const listening = /^listening on (\S+)$/.exec(line);
    if (listening) {
      ev = { event: 'listening', addr: listening[1], url: `${scheme}://${listening[1]}` };
    } else {
      try {
        ev = JSON.parse(line);
      } catch {
        ev = { event: 'unparsed', line };
      }
    }
    if (ev.event === 'stream_data') received.set(ev.stream, (received.get(ev.stream) ?? '') + ev.hex);
    if (ev.event === 'stream_close') {
      ev.hex = received.get(ev.stream) ?? '';
      received.delete(ev.stream);
    }
    events.push(ev);
    for (const w of waiters) w();
  });

  function next(pred, ms = 10_000, label = 'peer event') {
    return new Promise((resolve, reject) => {
      const check = () => {
        for (let i = 0; i < events.length; i++) {
          if (!taken.has(i) && pred(events[i])) {
            taken.add(i);
            cleanup();
            resolve(events[i]);
            return true;
          }
        }
        return false;
      };
      const onExit = () => {
        if (!check()) {
          cleanup();
          reject(new Error(`${label}: gossiphttp listen exited (${child.exitCode ?? child.signalCode}); stderr:\n${child.output}`));
        }
      };
      const timer = setTimeout(() => {
        cleanup();
        reject(new Error(`${label}: not seen within ${ms} ms; events so far: ${JSON.stringify(events).slice(0, 2000)}`));
      }, ms);
      const cleanup = () => {
        clearTimeout(timer);
        waiters.delete(check);
        child.off('exit', onExit);
      };
      if (check()) return;
      waiters.add(check);
      child.once('exit', onExit);
    });
  }

  const listening = await next((e) => e.event === 'listening', timeoutMs, 'gossiphttp listen listening');
  return {
    child,
    events,
    listening,
    url: listening.url,
    addr: listening.addr,
    next,
    /** The next `n` packet events, in arrival order. */
    async packets(n, ms = 10_000) {
      const out = [];
      for (let i = 0; i < n; i++) out.push(await next((e) => e.event === 'packet', ms, `packet ${i + 1} of ${n}`));
      return out;
    },
    /** The next `stream_close` event, with `hex` (every byte the stream sent). */
    streamClose(ms = 10_000) {
      return next((e) => e.event === 'stream_close', ms, 'stream_close');
    },
    /** Every packet event seen so far (taken or not). */
    seenPackets() {
      return events.filter((e) => e.event === 'packet');
    },
    stop() {
      return stopChild(child);
    },
  };
}

const MIME = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json',
  '.wasm': 'application/wasm',
  '.png': 'image/png',
  '.svg': 'image/svg+xml',
  '.ts': 'text/plain; charset=utf-8',
  '.txt': 'text/plain; charset=utf-8',
};

/**
 * Serves files under `root` (default: the repository root, so both `/www/` and `/pkg/`
 * resolve) on 127.0.0.1:`port` (0 = any). Paths outside `root` are refused.
 * Returns `{ url, port, origin, requests, close() }`; `requests` lists `METHOD path` seen.
 */
export async function serveStatic({ root = repoRoot, port = 0, host = '127.0.0.1' } = {}) {
  const absRoot = path.resolve(root);
  const requests = [];
  const server = http.createServer((req, res) => {
    requests.push(`${req.method} ${req.url}`);
    let rel;
    try {
      rel = decodeURIComponent(new URL(req.url, 'http://x').pathname);
    } catch {
      res.writeHead(400).end();
      return;
    }
    let file = path.resolve(absRoot, '.' + rel);
    if (file !== absRoot && !file.startsWith(absRoot + path.sep)) {
      res.writeHead(403).end();
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405).end();
      return;
    }
    fs.stat(file, (err, st) => {
      if (!err && st.isDirectory()) {
        if (!rel.endsWith('/')) {
          res.writeHead(301, { location: rel + '/' }).end();
          return;
        }
        file = path.join(file, 'index.html');
      }
      fs.readFile(file, (err2, data) => {
        if (err2) {
          res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
          return;
        }
        res.writeHead(200, {
          'content-type': MIME[path.extname(file)] ?? 'application/octet-stream',
          'cache-control': 'no-store',
          'content-length': data.length,
        });
        res.end(req.method === 'HEAD' ? undefined : data);
      });
    });
  });
  servers.add(server);
  server.listen(port, host);
  await withTimeout(once(server, 'listening'), 5000, 'static server listen');
  const actual = server.address().port;
  const origin = `http://${host}:${actual}`;
  return {
    server,
    port: actual,
    origin,
    url: origin,
    requests,
    close: () =>
      new Promise((r) => {
        servers.delete(server);
        server.closeAllConnections?.();
        server.close(() => r());
      }),
  };
}

/**
 * Runs `workerd serve` on a config made from `template` (a file path), where every
 * `{{NAME}}` is replaced by `vars.NAME` and `{{PORT}}` by a free port (unless given).
 * The config is written next to the template's directory copy in a temp dir, with
 * `files` (name → absolute path) copied beside it so the config can embed them.
 * Waits until `GET http://127.0.0.1:PORT/` gets any HTTP answer.
 *
 * Returns `{ url, port, child, dir, stop() }`.
 */
export async function startWorkerd({ template, vars = {}, files = {}, timeoutMs = 30_000 } = {}) {
  if (!fs.existsSync(workerdBin)) throw new Error(`${workerdBin} is missing: run npm install in tests/wasm`);
  const port = vars.PORT ?? (await freePort());
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gossiphttp-workerd-'));
  for (const [name, src] of Object.entries(files)) fs.copyFileSync(src, path.join(dir, name));
  let config = fs.readFileSync(template, 'utf8');
  const all = { ...vars, PORT: String(port) };
  config = config.replace(/\{\{(\w+)\}\}/g, (m, name) => {
    if (!(name in all)) throw new Error(`workerd template: no value for ${m}`);
    return String(all[name]);
  });
  const configPath = path.join(dir, 'config.capnp');
  fs.writeFileSync(configPath, config);
  const child = spawnTracked(workerdBin, ['serve', configPath, '--verbose'], { cwd: dir });
  child.stdout.setEncoding('utf8');
  child.stdout.on('data', (d) => {
    child.output += d;
    if (process.env.GOSSIPHTTP_TEST_VERBOSE) process.stderr.write(`[workerd] ${d}`);
  });
  const url = `http://127.0.0.1:${port}`;
  await waitUntil(
    async () => {
      if (child.exitCode !== null) throw new Error(`workerd exited (${child.exitCode}):\n${child.output}`);
      const res = await fetch(url + '/', { signal: AbortSignal.timeout(1000) });
      await res.arrayBuffer();
      return true;
    },
    { timeoutMs, intervalMs: 100, label: 'workerd answering' },
  ).catch((e) => {
    throw new Error(`${e.message}\nworkerd output:\n${child.output}`);
  });
  return {
    url,
    port,
    child,
    dir,
    async stop() {
      await stopChild(child);
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

/**
 * One raw HTTP/1.1 request with node:http (what a local workerd speaks).
 * `body` is a Uint8Array, an array of chunks written one by one, or undefined.
 * Resolves `{ status, headers, body: Buffer }`; bounded by `timeoutMs`.
 */
export function http1Request(url, { method = 'POST', headers = {}, body, timeoutMs = 10_000, insecure = false } = {}) {
  const client = url.startsWith('https:') ? https : http;
  const tls = insecure ? { rejectUnauthorized: false } : {};
  return withTimeout(
    new Promise((resolve, reject) => {
      const req = client.request(url, { method, headers, agent: false, ...tls }, (res) => {
        const chunks = [];
        res.on('data', (c) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks) }));
        res.on('error', reject);
      });
      req.on('error', reject);
      req.setTimeout(timeoutMs, () => req.destroy(new Error('request timeout')));
      const parts = body === undefined ? [] : Array.isArray(body) ? body : [body];
      for (const p of parts) req.write(p);
      req.end();
    }),
    timeoutMs + 1000,
    `${method} ${url}`,
  );
}

/** Concatenates Uint8Arrays. */
export function concat(chunks) {
  const total = chunks.reduce((n, c) => n + c.length, 0);
  const out = new Uint8Array(total);
  let off = 0;
  for (const c of chunks) {
    out.set(c, off);
    off += c.length;
  }
  return out;
}

/** A frame as the protocol writes it (0xCC up to 65535 bytes, 0xCD above), built in JS. */
export function frame(payload) {
  const p = payload instanceof Uint8Array ? payload : new TextEncoder().encode(String(payload));
  if (p.length <= 0xffff) {
    const out = new Uint8Array(3 + p.length);
    out[0] = 0xcc;
    out[1] = p.length >> 8;
    out[2] = p.length & 0xff;
    out.set(p, 3);
    return out;
  }
  const out = new Uint8Array(5 + p.length);
  out[0] = 0xcd;
  new DataView(out.buffer).setUint32(1, p.length);
  out.set(p, 5);
  return out;
}

/** Splits a body of frames into payloads; throws on anything malformed. */
export function unframe(body) {
  const b = body instanceof Uint8Array ? body : new Uint8Array(body);
  const out = [];
  let i = 0;
  while (i < b.length) {
    let len, h;
    if (b[i] === 0xcc && i + 3 <= b.length) {
      len = (b[i + 1] << 8) | b[i + 2];
      h = 3;
    } else if (b[i] === 0xcd && i + 5 <= b.length) {
      len = new DataView(b.buffer, b.byteOffset + i + 1, 4).getUint32(0);
      h = 5;
    } else {
      throw new Error(`bad frame at ${i}: ${hex(b.subarray(i, i + 5))}`);
    }
    if (i + h + len > b.length) throw new Error(`truncated frame at ${i}`);
    out.push(b.slice(i + h, i + h + len));
    i += h + len;
  }
  return out;
}

export const goPeerBin = path.join(repoRoot, 'target', 'go-peer', 'memberlist-peer');

/**
 * Starts `target/debug/gossiphttp node --name NAME --listen 127.0.0.1:PORT` (a free
 * port) with the CLI's flags `args` (e.g. `['--join', addr]`, `['--accept-http1']`,
 * `['--label', 'prod']`) and waits until its `/api/v1/members` answers.
 * Returns `{ name, addr, url, child, members(), stop() }`; `members()` is that route's list.
 * With `scheme: 'https'` (the node runs with --tls-cert) the route is read over TLS
 * without checking the certificate (a test's own, self-signed).
 */
export async function startNode(name, args = [], { timeoutMs = 20_000, scheme = 'http' } = {}) {
  if (!fs.existsSync(cliBin)) {
    throw new Error(`${cliBin} is missing: run \`cargo build --bin gossiphttp\` first`);
  }
  const port = await freePort();
  const addr = `127.0.0.1:${port}`;
  const child = spawnTracked(cliBin, ['node', '--name', name, '--listen', addr, ...args], { cwd: repoRoot });
  child.stdout.setEncoding('utf8');
  child.stdout.on('data', (d) => (child.output += d));
  const url = `${scheme}://${addr}`;
  const members = async () => {
    const res = await http1Request(`${url}/api/v1/members`, { method: 'GET', timeoutMs: 2000, insecure: scheme === 'https' });
    if (res.status !== 200) throw new Error(`GET /api/v1/members: ${res.status}`);
    return JSON.parse(res.body.toString('utf8')).members;
  };
  await waitUntil(
    async () => {
      if (child.exitCode !== null) throw new Error(`gossiphttp node ${name} exited (${child.exitCode}):\n${child.output}`);
      return (await members()).length > 0;
    },
    { timeoutMs, intervalMs: 100, label: `gossiphttp node ${name} answering` },
  );
  return { name, addr, url, child, members, stop: () => stopChild(child) };
}

/**
 * Starts the Go memberlist test peer (`target/go-peer/memberlist-peer`, built by
 * scripts/go-peer.sh) with `--name NAME --bind 127.0.0.1:0` and `args`, and waits for
 * its `ready` event. Returns `{ name, addr, url, child, events, members(), stop() }`;
 * `members()` is its `/debug/members` (dead and left members too).
 */
export async function startGoPeer(name, args = [], { timeoutMs = 20_000 } = {}) {
  if (!fs.existsSync(goPeerBin)) throw new Error(`${goPeerBin} is missing: run scripts/go-peer.sh first`);
  const child = spawnTracked(goPeerBin, ['--name', name, '--bind', '127.0.0.1:0', ...args], { cwd: repoRoot });
  const events = [];
  onLines(child.stdout, (line) => events.push(JSON.parse(line)));
  const ready = await waitUntil(
    () => {
      if (child.exitCode !== null) throw new Error(`memberlist-peer ${name} exited (${child.exitCode}):\n${child.output}`);
      return events.find((e) => e.event === 'ready');
    },
    { timeoutMs, intervalMs: 50, label: `memberlist-peer ${name} ready` },
  );
  const addr = ready.bind;
  const url = `http://${addr}`;
  const members = async () => {
    const res = await http1Request(`${url}/debug/members`, { method: 'GET', timeoutMs: 2000 });
    if (res.status !== 200) throw new Error(`GET /debug/members: ${res.status}`);
    const body = JSON.parse(res.body.toString('utf8'));
    return Array.isArray(body) ? body : body.members;
  };
  return { name, addr, url, child, events, members, stop: () => stopChild(child) };
}
