#!/usr/bin/env bash
# Every wasm check, set-up included (idempotent: what is already there is skipped).
#
#   1. tools: wasm32 target, wasm-bindgen-cli =0.2.130 (the crate's pinned version),
#      wasm-pack, chromium + chromium-driver (apt), the JS test packages (npm ci)
#   2. clippy on the wasm32 code (lib + tests/wasm_codec.rs), warnings denied
#   3. the npm package, release (scripts/build-pkg.sh), with its .wasm size raw and gzip
#   4. tests/wasm_codec.rs under wasm-bindgen-test: in Node, then in headless Chromium
#   5. node --test tests/wasm/: Node, workerd and Chromium (playwright-core) against
#      the native peer, `gossiphttp listen` (target/debug/gossiphttp)
#
# Expects ../shared/vectors/frames.json next to the repository (compiled into the wasm
# tests). Set WASM_TEST_SKIP_INSTALL=1 to fail instead of installing missing tools.
set -euo pipefail
cd "$(dirname "$0")/.."

WASM_BINDGEN_VERSION=0.2.130
export PATH="$HOME/.cargo/bin:$PATH"

step() { printf '\n==> %s\n' "$*"; }
as_root() { if [[ $(id -u) -eq 0 ]]; then "$@"; else sudo "$@"; fi; }
need_install() {
  if [[ -n "${WASM_TEST_SKIP_INSTALL:-}" ]]; then
    echo "missing: $1 (WASM_TEST_SKIP_INSTALL is set)" >&2
    exit 1
  fi
}

[[ -f ../shared/vectors/frames.json ]] || {
  echo "../shared/vectors/frames.json is missing (the reference's frame vectors)" >&2
  exit 1
}

step "tools"
if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
  need_install "rust target wasm32-unknown-unknown"
  rustup target add wasm32-unknown-unknown
fi
if [[ "$(wasm-bindgen --version 2>/dev/null || true)" != "wasm-bindgen $WASM_BINDGEN_VERSION" ]]; then
  need_install "wasm-bindgen-cli $WASM_BINDGEN_VERSION"
  # Not --locked: its lock file wants a webpki-roots release the registry mirror lacks.
  cargo install wasm-bindgen-cli --version "$WASM_BINDGEN_VERSION"
fi
if ! command -v wasm-pack >/dev/null; then
  need_install wasm-pack
  cargo install wasm-pack --locked
fi
missing_debs=()
for deb in chromium chromium-driver; do
  dpkg -s "$deb" >/dev/null 2>&1 || missing_debs+=("$deb")
done
if ((${#missing_debs[@]})); then
  need_install "${missing_debs[*]}"
  as_root apt-get update
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y "${missing_debs[@]}"
fi
# npm ci only when node_modules is missing or older than the lock file.
if [[ ! -f tests/wasm/node_modules/.package-lock.json || tests/wasm/package-lock.json -nt tests/wasm/node_modules/.package-lock.json ]]; then
  need_install "tests/wasm/node_modules"
  (cd tests/wasm && npm ci --no-audit --no-fund)
fi
echo "rustc $(rustc --version | cut -d' ' -f2), $(wasm-bindgen --version), $(wasm-pack --version), node $(node --version), $(chromium --version 2>/dev/null | head -1)"

# The wasm32 code only: the binary, benches, examples and the other tests are native.
# (--no-default-features: the `cli` feature would ask for the native binary.)
step "clippy (wasm32: lib + tests/wasm_codec.rs)"
cargo clippy --locked --target wasm32-unknown-unknown --no-default-features --lib --test wasm_codec -- -D warnings

step "npm package (release)"
scripts/build-pkg.sh

step "the CLI (the JS tests run \`gossiphttp listen\` as their native peer)"
cargo build --locked --bin gossiphttp

step "the Go memberlist peer (members.test.mjs asks it for its members over node:http2; cluster-page.test.mjs runs it in a mixed cluster)"
GO_PEER_SKIP_INSTALL="${WASM_TEST_SKIP_INSTALL:-}" scripts/go-peer.sh

export CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER=wasm-bindgen-test-runner
step "wasm-bindgen tests in Node"
cargo test --locked --no-default-features --target wasm32-unknown-unknown --test wasm_codec

step "wasm-bindgen tests in headless Chromium"
WASM_BINDGEN_USE_BROWSER=1 CHROMEDRIVER="$(command -v chromedriver || echo /usr/bin/chromedriver)" \
  cargo test --locked --no-default-features --target wasm32-unknown-unknown --test wasm_codec

step "node --test tests/wasm/ (Node, workerd, Chromium against gossiphttp listen)"
node --test tests/wasm/

echo
echo "wasm tests: all passed"
