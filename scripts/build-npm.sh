#!/usr/bin/env bash
# Assembles the npm package `herenow` in target/npm/herenow/ and packs it into
# target/npm/herenow-<version>.tgz (a stable path: the test apps install it from there).
#
#   www/herenow/herenow_wasm.js      -> herenow.js       (the size-checked glue, its default
#                                                          wasm URL removed: index.js always
#                                                          passes the bytes)
#   www/herenow/herenow_wasm_bg.wasm -> herenow_wasm.js  (the wasm as a base64 string, the
#                                                          module's default export)
#   npm/index.js                     -> index.js          (start(): decodes and compiles it once)
#   npm/index.d.ts + the client's    -> index.d.ts        (HerenowCount, HerenowOptions from
#     typescript_custom_section                            client/src/lib.rs, plus the handle)
#   npm/package.json + Cargo.toml    -> package.json      (version, license, repository)
#   npm/README.md                    -> README.md
#
# Why inlined: a `.wasm` file beside the JS, found through `new URL(…, import.meta.url)`, is
# copied by vite, webpack 5 and rollup plugins but not by esbuild (a 404 at start()), and
# vite's dev-server pre-bundling loses it; a JS module every bundler takes as it is. The
# cost (base64 of the wasm, gzip -9) is printed below and measured by tests/npm.test.mjs.
#
# Runs scripts/build-client.sh first when its output is missing or older than the cargo
# build it came from. Needs wasm-bindgen (for the .d.ts), node and npm.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

SRC=target/herenow-client # www/herenow/'s glue and .wasm under stable names (build-client.sh)
OUT_DIR=target/npm
PKG=$OUT_DIR/herenow
TARGET_DIR=$(cargo metadata --format-version 1 --no-deps 2>/dev/null |
  sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
TARGET_DIR=${TARGET_DIR:-target}
WASM_IN="$TARGET_DIR/wasm32-unknown-unknown/release/herenow_client.wasm"
WASM_BINDGEN=${WASM_BINDGEN_BIN:-wasm-bindgen}

for tool in node npm "$WASM_BINDGEN"; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "build-npm: missing tool $tool — run make tools" >&2
    exit 1
  fi
done

if [[ ! -f $SRC/herenow_wasm.js || ! -f $SRC/herenow_wasm_bg.wasm || ! -f $WASM_IN ||
  $WASM_IN -nt $SRC/herenow_wasm_bg.wasm ]]; then
  echo "==> the client is not built (or is stale): scripts/build-client.sh"
  scripts/build-client.sh
fi

TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

echo "==> $WASM_BINDGEN --target web (for the TypeScript declarations)"
"$WASM_BINDGEN" --target web --out-dir "$TMP" --out-name herenow_wasm "$WASM_IN"

echo "==> assembling $PKG"
rm -rf "$PKG"
mkdir -p "$PKG"
cp npm/index.js npm/README.md "$PKG/"

node --input-type=module - "$TMP/herenow_wasm.d.ts" "$SRC/herenow_wasm.js" "$SRC/herenow_wasm_bg.wasm" "$PKG" <<'JS'
import { readFileSync, writeFileSync } from "node:fs";
import { gzipSync } from "node:zlib";
const [dtsPath, gluePath, wasmPath, pkg] = process.argv.slice(2);
const fail = (m) => { console.error(`build-npm: ${m}`); process.exit(1); };

// The glue: its default wasm URL (used only when init gets nothing) goes, so that no
// bundler looks for a file the package does not ship; index.js always passes the bytes.
const glue = readFileSync(gluePath, "utf8");
const defaultUrl = /new URL\(\s*["']herenow_wasm_bg\.wasm["']\s*,\s*import\.meta\.url\s*\)/g;
const wasmRefs = glue.match(defaultUrl)?.length ?? 0;
if (wasmRefs !== 1) fail(`expected one new URL("herenow_wasm_bg.wasm", import.meta.url) in the glue, found ${wasmRefs}`);
const shippedGlue = glue.replace(defaultUrl, "void 0");
if (/import\.meta|\.wasm\b/.test(shippedGlue)) fail("the glue still refers to import.meta or a .wasm file");
writeFileSync(`${pkg}/herenow.js`, shippedGlue);

// The wasm, inlined as base64.
const wasm = readFileSync(wasmPath);
const inlined = `// herenow's client, compiled from Rust (client/): the wasm as base64, for index.js.\nexport default "${wasm.toString("base64")}";\n`;
writeFileSync(`${pkg}/herenow_wasm.js`, inlined);
const gz = (b) => gzipSync(b, { level: 9 }).length;
console.log(`  wasm ${wasm.length} B (gzip -9 ${gz(wasm)} B) inlined as base64: ${inlined.length} B (gzip -9 ${gz(Buffer.from(inlined))} B)`);

// The declarations: every interface the client declares (its typescript_custom_section),
// with its doc comment; not wasm-bindgen's InitOutput (raw exports, typed `any`).
const dts = readFileSync(dtsPath, "utf8");
const blocks = [];
for (const m of dts.matchAll(/(?:\/\*\*(?:(?!\*\/)[\s\S])*\*\/\s*)?export interface (\w+)\s*\{/g)) {
  if (m[1] === "InitOutput") continue;
  let depth = 0;
  let end = m.index + m[0].length - 1;
  for (; end < dts.length; end++) {
    if (dts[end] === "{") depth++;
    else if (dts[end] === "}" && --depth === 0) break;
  }
  blocks.push(dts.slice(m.index, end + 1).replace(/^ {4}/gm, "  "));
}
const names = blocks.map((b) => b.match(/export interface (\w+)/)[1]);
for (const want of ["HerenowCount", "HerenowOptions"]) {
  if (!names.includes(want)) fail(`the client's .d.ts has no interface ${want} (client/src/lib.rs)`);
}
// The handle and start() are declared by hand in npm/index.d.ts; check that the client
// still has those signatures.
for (const sig of [
  /count\(\): Promise<HerenowCount>;/,
  /stop\(\): void;/,
  /export function start\(options: HerenowOptions\): Promise<Handle>;/,
]) {
  if (!sig.test(dts)) fail(`the client's .d.ts no longer matches npm/index.d.ts: ${sig}`);
}
const template = readFileSync("npm/index.d.ts", "utf8");
const marker = /^\/\* HERENOW_CLIENT_TYPES:.*\*\/$/m;
if (!marker.test(template)) fail("npm/index.d.ts has no /* HERENOW_CLIENT_TYPES: … */ line");
const out = template.replace(marker, () => blocks.join("\n\n"));
// `any` as a type, not as a word in a comment.
const code = out.replace(/\/\*[\s\S]*?\*\//g, "").replace(/\/\/.*$/gm, "");
if (/\bany\b/.test(code)) fail("index.d.ts would contain the type `any`");
writeFileSync(`${pkg}/index.d.ts`, out);

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
console.log(`  ${manifest.name}@${manifest.version}: ${names.join(", ")}`);
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
