#!/usr/bin/env bash
# Builds the npm package `gossiphttp` into pkg/ (ESM for browsers, Node 20+ and
# workers: wasm-pack --target web), then:
#   - puts back the npm README (pkg/README.md is tracked; wasm-pack overwrites it
#     with the crate README),
#   - completes package.json (exports with the .wasm file, engines, README),
#   - prints the .wasm size, raw and gzipped.
#
#   scripts/build-pkg.sh            release build (what gets published)
#   PROFILE=dev scripts/build-pkg.sh  unoptimised, faster to build
#
# Needs wasm-pack and wasm-bindgen-cli 0.2.130 (scripts/wasm-test.sh installs them).
set -euo pipefail
cd "$(dirname "$0")/.."

PROFILE="${PROFILE:-release}"

readme_backup="$(mktemp)"
cp pkg/README.md "$readme_backup"
restore_readme() { cp "$readme_backup" pkg/README.md && rm -f "$readme_backup"; }
trap restore_readme EXIT

# Size over speed for the wasm build only: these variables reach this cargo
# invocation alone (native builds keep their own profile), and wasm32 artifacts
# live in their own target directory.
export CARGO_PROFILE_RELEASE_OPT_LEVEL="${CARGO_PROFILE_RELEASE_OPT_LEVEL:-s}"
export CARGO_PROFILE_RELEASE_LTO="${CARGO_PROFILE_RELEASE_LTO:-fat}"
export CARGO_PROFILE_RELEASE_CODEGEN_UNITS="${CARGO_PROFILE_RELEASE_CODEGEN_UNITS:-1}"
export CARGO_PROFILE_RELEASE_DEBUG="${CARGO_PROFILE_RELEASE_DEBUG:-false}"
export CARGO_PROFILE_RELEASE_STRIP="${CARGO_PROFILE_RELEASE_STRIP:-debuginfo}"

wasm-pack build --"$PROFILE" --target web --out-dir pkg --out-name gossiphttp --no-gitignore
rm -f pkg/.gitignore

restore_readme
trap - EXIT

# package.json: wasm-pack writes name, version, description, license, keywords,
# files, main/types from Cargo.toml; add what Node and bundlers need.
node --input-type=module - <<'JS'
import fs from 'node:fs';
const path = 'pkg/package.json';
const pkg = JSON.parse(fs.readFileSync(path, 'utf8'));
pkg.exports = {
  '.': { types: './gossiphttp.d.ts', default: './gossiphttp.js' },
  './gossiphttp_bg.wasm': './gossiphttp_bg.wasm',
  './package.json': './package.json',
};
pkg.files = [...new Set([...(pkg.files ?? []), 'gossiphttp_bg.wasm', 'gossiphttp_bg.wasm.d.ts', 'gossiphttp.js', 'gossiphttp.d.ts', 'README.md'])];
pkg.engines = { node: '>=20' };
fs.writeFileSync(path, JSON.stringify(pkg, null, 2) + '\n');
JS

wasm=pkg/gossiphttp_bg.wasm
raw=$(stat -c %s "$wasm")
gz=$(gzip -9 -c "$wasm" | wc -c)
echo "pkg/: $(node -p "require('./pkg/package.json').name + '@' + require('./pkg/package.json').version") ($PROFILE)"
echo "wasm size: ${raw} bytes raw, ${gz} bytes gzip -9 ($(( raw / 1024 )) KiB / $(( gz / 1024 )) KiB)"
