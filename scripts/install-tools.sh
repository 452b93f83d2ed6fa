#!/usr/bin/env bash
# Installs what building and testing herenow needs, skipping what is already there at the
# right version. Idempotent. Usage: scripts/install-tools.sh [--browser]
#   --browser  also Debian's chromium (for the client's and the end-to-end tests, via playwright-core)
set -euo pipefail
cd "$(dirname "$0")/.."

WORKER_BUILD_VERSION=0.8.7
say() { printf '\033[1m==> %s\033[0m\n' "$*"; }
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"

# The wasm32 target (rust-toolchain.toml names it too; this makes it explicit).
if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
  say "rustup: adding target wasm32-unknown-unknown"
  rustup target add wasm32-unknown-unknown
fi
for c in rustfmt clippy; do
  if ! rustup component list --installed | grep -q "^$c"; then
    say "rustup: adding component $c"
    rustup component add "$c"
  fi
done

# wasm-bindgen-cli at exactly the wasm-bindgen version in Cargo.lock.
if [ ! -f Cargo.lock ]; then cargo generate-lockfile; fi
WB_VERSION=$(awk '/^name = "wasm-bindgen"$/ {getline; gsub(/version = |"/, ""); print; exit}' Cargo.lock)
if [ -z "$WB_VERSION" ]; then echo "cannot find wasm-bindgen's version in Cargo.lock" >&2; exit 1; fi
have_wb=$(wasm-bindgen --version 2>/dev/null | awk '{print $2}' || true)
if [ "$have_wb" != "$WB_VERSION" ]; then
  say "cargo install wasm-bindgen-cli $WB_VERSION (have: ${have_wb:-none}; a cold build takes ~7 min)"
  # Not --locked: the locked set includes a yanked crate.
  cargo install wasm-bindgen-cli --version "$WB_VERSION" --force
fi

have_wkb=$(worker-build --version 2>/dev/null | grep -oE "[0-9]+\.[0-9]+\.[0-9]+" | head -1 || true)
if [ "$have_wkb" != "$WORKER_BUILD_VERSION" ]; then
  say "cargo install worker-build $WORKER_BUILD_VERSION (have: ${have_wkb:-none}; a cold build takes ~10 min)"
  cargo install worker-build --version "$WORKER_BUILD_VERSION" --locked --force
fi

# npm packages pinned by package-lock.json (wrangler, miniflare, playwright-core, binaryen, esbuild).
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  say "npm ci (wrangler, miniflare, playwright-core, binaryen, esbuild)"
  npm ci --no-audit --no-fund
fi

if [ "${1:-}" = "--browser" ]; then
  if ! command -v chromium >/dev/null; then
    say "apt-get install chromium"
    if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null
  fi
fi
say "tools ready: $(wasm-bindgen --version), $(worker-build --version 2>/dev/null), wrangler $(node_modules/.bin/wrangler --version 2>/dev/null | tail -1)"
