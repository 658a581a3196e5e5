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

# Every cargo command runs --locked: a Cargo.lock that no longer matches
# Cargo.toml fails here instead of being rewritten quietly.
step "clippy (native)"
cargo clippy --locked --all-targets -- -D warnings

step "clippy + build (wasm32-unknown-unknown)"
cargo clippy --locked --lib --target wasm32-unknown-unknown -- -D warnings
cargo build --locked --lib --target wasm32-unknown-unknown

step "every feature combination builds, warnings denied (cargo hack --feature-powerset)"
if ! cargo hack --version >/dev/null 2>&1; then
  cargo install cargo-hack --locked
fi
# --no-dev-deps: the library and binary as users get them, without the
# dev-dependencies' features (tokio "full") hiding a missing one. Not
# --locked: dropping the dev-dependencies prunes them from Cargo.lock while
# cargo-hack runs (taiki-e/cargo-hack#274); it restores the file afterwards,
# and the --locked commands above already hold it to Cargo.toml.
cargo hack clippy --feature-powerset --no-dev-deps -- -D warnings
cargo hack clippy --feature-powerset --no-dev-deps --lib --target wasm32-unknown-unknown -- -D warnings

step "Go memberlist peer for the interop tests (Debian's golang-go and memberlist)"
./scripts/go-peer.sh

step "tests (native)"
cargo test --locked --lib --bins --tests
cargo test --locked --doc

step "wasm: codec in Node and Chromium, the npm package, browser/Node/workerd end to end"
./scripts/wasm-test.sh

step "fuzzing: frame decoder, server handler, message reader and memberlist packets, 60 s each (ASan)"
./scripts/fuzz.sh 60

step "benchmark harness (smoke: --quick; the real table is in benches/RESULTS.md)"
# The dev profile: the smoke run checks that the harness works, not its
# numbers, and reuses the tests' build instead of compiling everything
# again in release (8 minutes of CI's budget). Real runs: `cargo bench`.
cargo bench --locked --profile dev --bench transport -- --quick
cargo bench --locked --profile dev --bench cluster -- --quick
