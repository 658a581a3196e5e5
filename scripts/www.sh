#!/usr/bin/env bash
# One command for the browser demos: builds the wasm package if needed, starts a
# local native node (TLS, HTTP/2) that allows the page's origin, a three-member
# cluster for the cluster page, and serves the pages. Ctrl-C stops them all.
#
#   scripts/www.sh            node on https://127.0.0.1:7946, cluster on 127.0.0.1:7947-7949,
#                             pages on http://127.0.0.1:8080
#   NODE_PORT=9000 CLUSTER_PORT=9100 WWW_PORT=9001 scripts/www.sh
set -euo pipefail
cd "$(dirname "$0")/.."

NODE_PORT="${NODE_PORT:-7946}"
CLUSTER_PORT="${CLUSTER_PORT:-$((NODE_PORT + 1))}"
WWW_PORT="${WWW_PORT:-8080}"
ORIGIN="http://127.0.0.1:${WWW_PORT}"
TLS_DIR="target/www-tls"

# 1. The npm package (pkg/), rebuilt when a Rust source is newer than it.
if [[ ! -f pkg/gossiphttp_bg.wasm || -n "$(find src Cargo.toml -newer pkg/gossiphttp_bg.wasm -print -quit)" ]]; then
  echo "==> building the wasm package (pkg/)"
  scripts/build-pkg.sh
fi

# 2. The native node, `gossiphttp listen`: one JSON line per packet and stream event,
#    streams echoed. Its certificate is kept, so the browser accepts it once.
echo "==> building the native node (gossiphttp listen)"
cargo build --quiet --bin gossiphttp
if [[ ! -f "$TLS_DIR/cert.pem" || ! -f "$TLS_DIR/key.pem" ]]; then
  # The JS tests' helper makes it (openssl), so both make the same kind.
  node --input-type=module -e "import { makeCert } from './tests/wasm/support.mjs'; makeCert(process.argv[1]);" "$TLS_DIR"
fi

pids=()
members=() # the cluster's, not waited for: one may be killed to watch it die
cleanup() {
  trap - INT TERM EXIT
  for pid in "${pids[@]}" "${members[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup INT TERM EXIT

target/debug/gossiphttp listen --addr "127.0.0.1:${NODE_PORT}" --echo-streams \
  --tls-cert "$TLS_DIR/cert.pem" --tls-key "$TLS_DIR/key.pem" --cors "$ORIGIN" &
pids+=($!)

# 3. A cluster for the cluster page (www/cluster.html?url=...): three `gossiphttp node`
#    members, two ckit participants and a viewer. Plain HTTP, HTTP/1.1 accepted (what a
#    page's fetch speaks to it) and the page's origin allowed. Their logs go to a file.
CLUSTER_LOG=target/www-cluster.log
: >"$CLUSTER_LOG"
for i in 0 1 2; do
  port=$((CLUSTER_PORT + i))
  args=(node --name "www-$((i + 1))" --listen "127.0.0.1:$port" --preset fast --cors "$ORIGIN" --accept-http1)
  ((i > 0)) && args+=(--join "127.0.0.1:$CLUSTER_PORT")
  ((i == 2)) && args+=(--ckit-state viewer)
  target/debug/gossiphttp "${args[@]}" >>"$CLUSTER_LOG" 2>&1 &
  members+=($!)
done

# 4. The pages: www/ and pkg/ only, with the right MIME types (application/wasm).
node --input-type=module - "$WWW_PORT" <<'JS' &
import http from 'node:http';
import fs from 'node:fs';
import path from 'node:path';
const port = Number(process.argv[2]);
const root = process.cwd();
const types = { '.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8', '.wasm': 'application/wasm', '.json': 'application/json',
  '.ts': 'text/plain; charset=utf-8', '.png': 'image/png', '.svg': 'image/svg+xml' };
http.createServer((req, res) => {
  let p;
  try { p = decodeURIComponent(new URL(req.url, 'http://x').pathname); } catch { return res.writeHead(400).end(); }
  if (p === '/' || p === '/www') return res.writeHead(302, { location: '/www/' }).end();
  if (p.endsWith('/')) p += 'index.html';
  const file = path.resolve(root, '.' + p);
  const allowed = ['www', 'pkg'].some((d) => file.startsWith(path.join(root, d) + path.sep));
  if (!allowed || req.method !== 'GET') return res.writeHead(404).end('not found\n');
  fs.readFile(file, (err, data) => {
    if (err) return res.writeHead(404).end('not found\n');
    res.writeHead(200, { 'content-type': types[path.extname(file)] ?? 'application/octet-stream', 'cache-control': 'no-store' });
    res.end(data);
  });
}).listen(port, '127.0.0.1');
JS
pids+=($!)

sleep 1
cat <<MSG

  gossiphttp in the browser
  -------------------------
  1. Open https://127.0.0.1:${NODE_PORT}/ once and accept the self-signed certificate
     (the node answers 404 there; that's fine: the browser now trusts it for this session).
  2. Open ${ORIGIN}/www/  — enter text, "Send as a packet" or "Exchange on a stream".
  3. The cluster page, through the npm package's members() and lookup():
     ${ORIGIN}/www/cluster.html?url=http://127.0.0.1:${CLUSTER_PORT}
     (each member also serves it itself: http://127.0.0.1:${CLUSTER_PORT}/). Stop one
     member (kill -9) and watch it turn suspect, then dead. Their logs: ${CLUSTER_LOG}.

  The node prints a JSON line per packet and stream below. Ctrl-C stops everything.

MSG
wait -n "${pids[@]}"
