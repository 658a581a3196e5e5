#!/usr/bin/env bash
# Builds the Go memberlist test peer (tests/go/memberlist-peer; with --ckit it
# is a grafana/ckit node) into target/go-peer/memberlist-peer, installing what
# it needs first:
#
#   golang-go                               Go 1.19 (Debian 12)
#   golang-github-hashicorp-memberlist-dev  memberlist 0.2.2 and its dependencies
#   golang-github-hashicorp-go-msgpack-dev  go-msgpack 0.5 (memberlist's; ckit mode's codec)
#   golang-golang-x-net-dev                 golang.org/x/net/http2 and http2/h2c
#
# GOPATH mode over the packages' sources (/usr/share/gocode): no module proxy is
# needed. The build is skipped when neither the sources nor those packages changed
# since the last one (a stamp beside the binary). Prints the binary's path last.
#
# Set GO_PEER_SKIP_INSTALL=1 to fail instead of installing missing packages
# (the Rust tests build through this script with it set).
set -euo pipefail
cd "$(dirname "$0")/.."

src=tests/go/memberlist-peer
out=target/go-peer
bin=$out/memberlist-peer
debs=(golang-go golang-github-hashicorp-memberlist-dev golang-github-hashicorp-go-msgpack-dev golang-golang-x-net-dev)

as_root() { if [[ $(id -u) -eq 0 ]]; then "$@"; else sudo "$@"; fi; }

missing=()
for deb in "${debs[@]}"; do
  dpkg -s "$deb" >/dev/null 2>&1 || missing+=("$deb")
done
if ((${#missing[@]})); then
  if [[ -n "${GO_PEER_SKIP_INSTALL:-}" ]]; then
    echo "go-peer: missing Debian packages: ${missing[*]} (GO_PEER_SKIP_INSTALL is set; run scripts/go-peer.sh to install them)" >&2
    exit 1
  fi
  as_root apt-get update
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y "${missing[@]}"
fi

# What the binary depends on: its sources and the packages' versions.
stamp=$(
  {
    for f in "$src"/*.go; do sha256sum "$f"; done
    dpkg-query -W -f '${Package} ${Version}\n' "${debs[@]}"
  } | sha256sum | cut -d' ' -f1
)
if [[ -x $bin && -f $out/stamp && "$(cat "$out/stamp")" == "$stamp" ]]; then
  echo "$bin"
  exit 0
fi

mkdir -p "$out/gopath" "$out/cache"
rm -f "$out/stamp"
start=$(date +%s)
# GOPATH's first entry is a private, empty one (Go writes nothing to the
# packages' tree); GOCACHE is kept beside it so rebuilds are incremental.
# No cgo: nothing to compile but Go, so no C compiler is needed.
CGO_ENABLED=0 GO111MODULE=off GOFLAGS= GOPATH="$PWD/$out/gopath:/usr/share/gocode" GOCACHE="$PWD/$out/cache" \
  go build -o "$bin" "./$src"
echo "$stamp" >"$out/stamp"
echo "go-peer: built $bin in $(($(date +%s) - start)) s ($(go version))" >&2
echo "$bin"
