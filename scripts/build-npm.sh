#!/usr/bin/env bash
# Assembles the npm package `herenow` in target/npm/herenow/ and packs it into
# target/npm/herenow-<version>.tgz (a stable path: the test apps install it from there).
#
#   client/js/client.js              -> herenow.js        (the client, as the script tag's file
#                                                          bundles it)
#   target/herenow-client/herenow_wasm.js -> herenow_wasm.js (its wasm as base64, the module's
#                                                          default export; the size-checked build)
#   npm/index.js                     -> index.js          (exports start)
#   npm/index.d.ts                   -> index.d.ts
#   npm/package.json + Cargo.toml    -> package.json      (version, license, repository)
#   npm/README.md                    -> README.md
#
# Why inlined: a `.wasm` file beside the JS, found through `new URL(…, import.meta.url)`, is
# copied by vite, webpack 5 and rollup plugins but not by esbuild (a 404 at start()), and
# vite's dev-server pre-bundling loses it; a JS module every bundler takes as it is.
#
# Runs scripts/build-client.sh first when its output is missing or older than the cargo
# build it came from. Needs node and npm.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

SRC=target/herenow-client # build-client.sh's unbundled modules
OUT_DIR=target/npm
PKG=$OUT_DIR/herenow
TARGET_DIR=$(cargo metadata --format-version 1 --no-deps 2>/dev/null |
  sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
TARGET_DIR=${TARGET_DIR:-target}
WASM_IN="$TARGET_DIR/wasm32-unknown-unknown/release/herenow_client.wasm"

for tool in node npm; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "build-npm: missing tool $tool — run make tools" >&2
    exit 1
  fi
done

if [[ ! -f $SRC/herenow_wasm.js || ! -f $SRC/client.js || ! -f $WASM_IN ||
  $WASM_IN -nt $SRC/herenow_wasm.js || client/js/client.js -nt $SRC/client.js ]]; then
  echo "==> the client is not built (or is stale): scripts/build-client.sh"
  scripts/build-client.sh
fi

TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

echo "==> assembling $PKG"
rm -rf "$PKG"
mkdir -p "$PKG"
cp npm/index.js npm/index.d.ts npm/README.md "$PKG/"
cp "$SRC/client.js" "$PKG/herenow.js"
cp "$SRC/herenow_wasm.js" "$PKG/herenow_wasm.js"

node --input-type=module - "$PKG" <<'JS'
import { readFileSync, writeFileSync } from "node:fs";
import { gzipSync } from "node:zlib";
const [pkg] = process.argv.slice(2);
const fail = (m) => { console.error(`build-npm: ${m}`); process.exit(1); };
for (const f of ["index.js", "herenow.js", "herenow_wasm.js"]) {
  const code = readFileSync(`${pkg}/${f}`, "utf8").replace(/\/\*[\s\S]*?\*\//g, "").replace(/\/\/.*$/gm, "");
  if (/import\.meta|\.wasm\b/.test(code)) fail(`${f} refers to import.meta or a .wasm file`);
}
const gz = (f) => gzipSync(readFileSync(`${pkg}/${f}`), { level: 9 }).length;
console.log(`  gzip -9: herenow.js ${gz("herenow.js")} B, herenow_wasm.js ${gz("herenow_wasm.js")} B`);
// `any` as a type, not as a word in a comment.
const dts = readFileSync(`${pkg}/index.d.ts`, "utf8").replace(/\/\*[\s\S]*?\*\//g, "").replace(/\/\/.*$/gm, "");
if (/\bany\b/.test(dts)) fail("index.d.ts contains the type `any`");

// package.json: the template plus the workspace's version, license and repository.
const cargo = readFileSync("Cargo.toml", "utf8");
const section = cargo.split(/^\[workspace\.package\]\s*$/m)[1]?.split(/^\[/m)[0] ?? "";
const field = (k) => section.match(new RegExp(`^${k}\\s*=\\s*"([^"]*)"`, "m"))?.[1] ??
  fail(`no ${k} in [workspace.package] of Cargo.toml`);
const t = JSON.parse(readFileSync("npm/package.json", "utf8"));
const { name, description, keywords, ...rest } = t;
const manifest = {
  name, version: field("version"), description, keywords,
  license: field("license"),
  repository: { type: "git", url: `git+${field("repository").replace(/\/?$/, "")}.git` },
  ...rest,
};
writeFileSync(`${pkg}/package.json`, JSON.stringify(manifest, null, 2) + "\n");
console.log(`  ${manifest.name}@${manifest.version}`);
JS

echo "==> npm pack $PKG"
rm -f "$OUT_DIR"/herenow-*.tgz
if ! TARBALL=$(cd "$PKG" && npm pack --pack-destination .. 2>"$TMP/pack.log" | tail -n 1) ||
  [[ -z $TARBALL || ! -f $OUT_DIR/$TARBALL ]]; then
  cat "$TMP/pack.log" >&2
  echo "build-npm: npm pack made no tarball" >&2
  exit 1
fi
TARBALL=$OUT_DIR/$TARBALL

echo "==> $TARBALL"
tar -tzvf "$TARBALL" | awk '{ printf "  %8d  %s\n", $3, $6 }'
printf '  tarball: %d bytes (unpacked %d bytes)\n' "$(wc -c <"$TARBALL")" \
  "$(tar -xzOf "$TARBALL" | wc -c)"
echo "build-npm: ok"
