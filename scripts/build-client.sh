#!/usr/bin/env bash
# Builds the browser client into www/herenow/herenow.js and checks its size budget.
#
#   cargo build (wasm32, release: the lifecycle machine, no imports, no binding glue)
#   -> the panic paths snipped (scripts/snip-panics.mjs) -> wasm-opt -Oz
#   -> the wasm as base64 in a module (herenow_wasm.js) -> a link check in node
#   -> esbuild --bundle --minify of the loader (client/js/herenow.js), which imports the
#      wiring (client/js/client.js), which imports the wasm module -> sizes
#
# Output: www/herenow/herenow.js, everything the script tag loads (one file: nothing else is
# fetched before the first heartbeat); and in target/herenow-client/ the unbundled modules
# (client.js, herenow_wasm.js) and the .wasm, for build-npm.sh and the tests.
# Fails when the file exceeds BUDGET bytes after gzip -9. Assumes the tools are installed
# (the Makefile does that).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

# Issue 13's target for everything the script tag loads, gzip -9 (bench/README.md › Client
# says where the bytes go).
BUDGET=14336
OUT=www/herenow
TARGET_DIR=$(cargo metadata --format-version 1 --no-deps 2>/dev/null |
  sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
TARGET_DIR=${TARGET_DIR:-target}
WASM_IN="$TARGET_DIR/wasm32-unknown-unknown/release/herenow_client.wasm"
STAGE=target/herenow-client

WASM_OPT=${WASM_OPT_BIN:-node_modules/.bin/wasm-opt}
ESBUILD=${ESBUILD_BIN:-node_modules/.bin/esbuild}

# need NAME COMMAND HOW: fail with a clear message when COMMAND is not there.
need() {
  if ! command -v "$2" >/dev/null 2>&1; then
    echo "build-client: missing tool $1 ($2) — $3" >&2
    exit 1
  fi
}
need cargo cargo "install Rust (rustup)"
need gzip gzip "install gzip"
need node node "install Node.js 20 or later"
need wasm-opt "$WASM_OPT" "npm ci (npm package binaryen 132), or make"
need esbuild "$ESBUILD" "npm ci (npm package esbuild), or make"
if command -v rustup >/dev/null 2>&1 &&
  ! rustup target list --installed 2>/dev/null | grep -qx wasm32-unknown-unknown; then
  echo "build-client: missing Rust target wasm32-unknown-unknown — rustup target add wasm32-unknown-unknown" >&2
  exit 1
fi

echo "==> cargo build -p herenow-client --target wasm32-unknown-unknown --release"
cargo build -p herenow-client --target wasm32-unknown-unknown --release

TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
mkdir -p "$STAGE"

echo "==> node scripts/snip-panics.mjs (panic = abort: the message formatting is dead weight)"
node scripts/snip-panics.mjs "$WASM_IN" "$TMP/snipped.wasm"

# --low-memory-unused: addresses below 1 KiB are the far end of Rust's 1 MiB stack (which
# grows down from there), never data, so constant offsets can fold into loads.
echo "==> $WASM_OPT -Oz --converge --low-memory-unused"
"$WASM_OPT" -Oz --converge --low-memory-unused --strip-debug --strip-producers --strip-target-features \
  --enable-bulk-memory --enable-nontrapping-float-to-int --enable-sign-ext \
  --enable-reference-types --enable-multivalue --enable-mutable-globals \
  "$TMP/snipped.wasm" -o "$STAGE/herenow_client.wasm"

echo "==> $STAGE: herenow_wasm.js (the wasm as base64), client.js, herenow.js"
node -e 'const fs = require("fs"); fs.writeFileSync(process.argv[2],
  "// herenow'"'"'s lifecycle machine, compiled from Rust (client/src/): the wasm as base64, for client.js.\n" +
  "export default \"" + fs.readFileSync(process.argv[1]).toString("base64") + "\";\n")' \
  "$STAGE/herenow_client.wasm" "$STAGE/herenow_wasm.js"
cp client/js/client.js client/js/herenow.js "$STAGE/"

echo "==> checking that the wasm imports nothing and exports the machine (client/src/exports.rs)"
node --input-type=module - "$STAGE/herenow_client.wasm" <<'JS'
import { readFileSync } from "node:fs";
const m = new WebAssembly.Module(readFileSync(process.argv[2]));
const imports = WebAssembly.Module.imports(m);
if (imports.length) throw new Error(`the wasm imports ${JSON.stringify(imports)}`);
const have = new Set(WebAssembly.Module.exports(m).map((e) => e.name));
for (const f of ["hn_new", "hn_event", "hn_action", "hn_in_flight"]) {
  if (!have.has(f)) throw new Error(`the wasm does not export ${f}`);
}
const { exports: w } = new WebAssembly.Instance(m, {});
const id = w.hn_new();
if (w.hn_event(id, 0, 1, NaN, NaN, Date.now(), 0.5) !== 1 || w.hn_action(0) !== 16) {
  throw new Error("a visible start did not give heartbeat 1");
}
JS

echo "==> $ESBUILD --bundle --minify $OUT/herenow.js"
mkdir -p "$OUT"
find "$OUT" -maxdepth 1 -type f -delete
"$ESBUILD" "$STAGE/herenow.js" --bundle --minify --format=esm --target=es2020 --log-level=warning \
  --outfile="$OUT/herenow.js"

gz() { gzip -9 -c "$1" | wc -c | tr -d ' '; }
raw() { wc -c <"$1" | tr -d ' '; }

echo "==> sizes (bytes)"
printf '  %-44s %8s %8s\n' file raw gzip-9
printf '  %-44s %8d %8d\n' "(the .wasm alone)" "$(raw "$STAGE/herenow_client.wasm")" "$(gz "$STAGE/herenow_client.wasm")"
total_raw=$(raw "$OUT/herenow.js")
total_gz=$(gz "$OUT/herenow.js")
printf '  %-44s %8d %8d\n' "$OUT/herenow.js (everything the tag loads)" "$total_raw" "$total_gz"
printf '  everything the script tag loads, gzip-9: %d of %d bytes budget\n' "$total_gz" "$BUDGET"
if ((total_gz > BUDGET)); then
  echo "build-client: over the size budget by $((total_gz - BUDGET)) bytes" >&2
  exit 1
fi
echo "build-client: ok"
