#!/usr/bin/env bash
# Fuzzes the frame decoders, the server handler, the contract's /message body
# reader and memberlist's packet and stream decoders (fuzz/, cargo-fuzz).
#
#   scripts/fuzz.sh [seconds-per-target (default 60)] [target...]
#
# Installs what it needs first and skips what is present: a nightly
# toolchain (rustup), cargo-fuzz (cargo install), and a C++ compiler for
# libFuzzer (g++, apt). Each target starts from
# the committed seeds (fuzz/corpus/<target>, never written to) plus the
# inputs earlier runs kept (fuzz/target/corpus/<target>, where new ones go).
# Exits non-zero on any crash, leak, timeout or over-large allocation, and
# says where the input that caused it is. FUZZ_SANITIZER=none builds without
# AddressSanitizer, for toolchains where it does not work.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"

seconds=${1:-60}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(frame_decoder server_handler message_reader memberlist_packet)
case $seconds in '' | *[!0-9]*)
  echo "usage: $0 [seconds-per-target] [target...]" >&2
  exit 2
  ;;
esac

step() { printf '\n==> %s\n' "$*"; }
as_root() { if [[ $(id -u) -eq 0 ]]; then "$@"; else sudo "$@"; fi; }

step "fuzz tools"
command -v rustup >/dev/null || { echo "rustup is required (https://rustup.rs)" >&2; exit 1; }
if ! rustup toolchain list | grep -q '^nightly'; then
  rustup toolchain install nightly --profile minimal
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
  cargo install cargo-fuzz --locked || cargo install cargo-fuzz
fi
# libfuzzer-sys compiles libFuzzer (C++) when the targets are built.
if ! command -v c++ >/dev/null; then
  as_root apt-get update
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y g++
fi
cargo +nightly --version
cargo fuzz --version

sanitizer=()
[ -z "${FUZZ_SANITIZER:-}" ] || sanitizer=(--sanitizer "$FUZZ_SANITIZER")
# Debug assertions on: overflow checks and the crate's debug_assert!s count.
build_flags=(--debug-assertions "${sanitizer[@]}")

# cargo fuzz has no --locked (rust-fuzz/cargo-fuzz#312); this check fails
# the same way when fuzz/Cargo.lock no longer matches, before the build
# would rewrite it.
step "fuzz/Cargo.lock is current"
if ! cargo metadata --locked --format-version 1 --manifest-path fuzz/Cargo.toml >/dev/null; then
  echo "fuzz/Cargo.lock is stale: run \`cargo metadata --format-version 1 --manifest-path fuzz/Cargo.toml >/dev/null\` (or \`cargo update -p gossiphttp\` in fuzz/) and commit it" >&2
  exit 1
fi

step "build fuzz targets"
for t in "${targets[@]}"; do
  cargo +nightly fuzz build "${build_flags[@]}" "$t"
done

failed=()
for t in "${targets[@]}"; do
  step "fuzz $t for ${seconds}s"
  work=fuzz/target/corpus/$t
  log=fuzz/target/fuzz-$t.log
  mkdir -p "$work" "fuzz/artifacts/$t"
  # -malloc_limit_mb: the targets use packet limits of at most 64 KiB, so
  # no single allocation comes near 256 MiB unless a header's announced
  # length was allocated.
  set +e
  cargo +nightly fuzz run "${build_flags[@]}" "$t" "$work" "fuzz/corpus/$t" -- \
    -max_total_time="$seconds" -rss_limit_mb=1024 -malloc_limit_mb=256 \
    -timeout=30 -print_final_stats=1 2>&1 | tee "$log"
  rc=${PIPESTATUS[0]}
  set -e
  if [ "$rc" -ne 0 ]; then
    failed+=("$t")
    echo
    echo "FUZZ FAILURE in $t (exit $rc); log: $log"
    artifacts=$(grep -oE 'Test unit written to [^ ]+' "$log" | awk '{print $5}' || true)
    for a in $artifacts; do
      echo "artifact: $a ($(wc -c <"$a") bytes)"
      od -An -tx1 -v "$a" | tr -d ' \n' | head -c 2000
      echo
      echo "reproduce: cargo +nightly fuzz run ${build_flags[*]} $t $a"
    done
  fi
done

if [ ${#failed[@]} -gt 0 ]; then
  echo
  echo "fuzzing found failures in: ${failed[*]}" >&2
  exit 1
fi
echo
echo "fuzzing: no failures (${targets[*]}, ${seconds}s each)"
