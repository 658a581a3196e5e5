#!/usr/bin/env bash
# Runs every check and test of gossiphttp, installing what they need first
# (idempotent: tools already present are skipped). CI runs exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

step "toolchain components"
command -v rustup >/dev/null || { echo "rustup is required (https://rustup.rs)"; exit 1; }
installed_components=$(rustup component list --installed 2>/dev/null || true)
for c in rustfmt clippy; do
  grep -q "^$c" <<<"$installed_components" || rustup component add "$c"
done
rustup target list --installed | grep -qx wasm32-unknown-unknown || rustup target add wasm32-unknown-unknown

step "test vectors"
if [ ! -f ../shared/vectors/frames.json ]; then
  echo "missing ../shared/vectors/frames.json (the reference's frame vectors; CI has them beside the clone)"
  exit 1
fi

step "format"
cargo fmt --all -- --check

step "clippy (native)"
cargo clippy --all-targets -- -D warnings

step "clippy + build (wasm32-unknown-unknown)"
cargo clippy --lib --target wasm32-unknown-unknown -- -D warnings
cargo build --lib --target wasm32-unknown-unknown

step "tests (native)"
cargo test --lib --bins --tests
cargo test --doc

step "wasm: codec in Node and Chromium, the npm package, browser/Node/workerd end to end"
./scripts/wasm-test.sh

step "fuzzing: frame decoder and server handler, 60 s each (ASan)"
./scripts/fuzz.sh 60

step "benchmark harness (smoke: --quick; the real table is in benches/RESULTS.md)"
cargo bench --bench transport -- --quick
