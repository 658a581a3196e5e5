#!/usr/bin/env bash
# Starts a gossiphttp node on 127.0.0.1 (h2c), sends it packets and a
# stream with the same CLI, shows what the node saw and its metrics, then
# keeps the node running until Ctrl-C.
#
#   ./scripts/demo.sh [ADDR]        ADDR defaults to 127.0.0.1:7946
set -euo pipefail
cd "$(dirname "$0")/.."
addr=${1:-127.0.0.1:7946}

cargo build --release --quiet
bin=target/release/gossiphttp
log=$(mktemp)
"$bin" listen --addr "$addr" --echo-streams >"$log" &
node=$!
trap 'kill $node 2>/dev/null; rm -f "$log"' EXIT

for _ in $(seq 50); do grep -q '^listening on' "$log" && break; sleep 0.1; done
grep -q '^listening on' "$log" || { echo "the node did not start:"; cat "$log"; exit 1; }
head -1 "$log"

echo "\$ gossiphttp send --to $addr --hex 68656c6c6f --count 3"
"$bin" send --to "$addr" --hex 68656c6c6f --count 3
echo "\$ gossiphttp stream --to $addr --hex 73747265616d"
"$bin" stream --to "$addr" --hex 73747265616d
sleep 0.2
echo "--- what the node printed:"
tail -n +2 "$log"
echo "--- metrics (http://$addr/metrics):"
if command -v curl >/dev/null; then
  curl -s "http://$addr/metrics" | grep -E '^cluster_transport_(rx_packets|rx_bytes|streams)' || true
fi
echo "--- the node keeps running on $addr; Ctrl-C to stop"
tail -f -n 0 "$log" &
wait $node
