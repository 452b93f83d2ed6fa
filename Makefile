# herenow: `make dev` serves the demo on http://127.0.0.1:8787; `make test` runs every suite.
# Both install what they need first (scripts/install-tools.sh), skipping what is there.
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

export PATH := $(HOME)/.cargo/bin:$(CURDIR)/node_modules/.bin:$(PATH)
# worker-build would download these from GitHub; use the installed ones.
export WASM_BINDGEN_BIN := $(shell command -v wasm-bindgen 2>/dev/null || echo wasm-bindgen)
export WASM_OPT_BIN := $(CURDIR)/node_modules/.bin/wasm-opt
export ESBUILD_BIN := $(CURDIR)/node_modules/.bin/esbuild
# wrangler, quiet and offline.
export CI := $(or $(CI),true)
export WRANGLER_SEND_METRICS := false
export CLOUDFLARE_CF_FETCH_ENABLED := false
export WRANGLER_HIDE_BANNER := true

PORT ?= 8787

.PHONY: help tools tools-browser build build-client build-edge dev test \
        test-fmt test-clippy test-unit test-wasm test-worker test-deploy test-e2e test-load load clean \
        tools-vite-app tools-bundler-apps build-npm test-npm test-dev tools-wrk bench bench-smoke \
        simulate load-memory kvops-agree

help:
	@echo "make dev    install what is missing, build, serve http://127.0.0.1:$(PORT) (wrangler dev, local KV)"
	@echo "            ORIGINS=\"http://localhost:3000 …\" also allows those origins for the demo site"
	@echo "make test   install what is missing, build, run every suite"
	@echo "make fuzz   run each cargo-fuzz target for FUZZ_SECONDS (default 60) on nightly"
	@echo "make bench  benchmarks against the naive design and the runtime's ceiling (~10 min); writes BENCHMARKS.md"
	@echo "make simulate ARGS=\"…\"  the engine's simulation: tables over isolates and routings with targets (~10 min); --json for lines"
	@echo "make load   10,000 visitors with churn against local workerd: 135 s warm-up, then 2 minutes judged (~5 min)"

tools:
	@scripts/install-tools.sh

tools-browser:
	@scripts/install-tools.sh --browser

build: build-client build-edge

build-client: tools
	@scripts/build-client.sh

build-edge: tools
	@echo "==> worker-build --release (edge)"
	@cd edge && CARGO_PROFILE_RELEASE_OPT_LEVEL=3 WASM_BINDGEN_BIN="$$(command -v wasm-bindgen)" worker-build --release 2>&1 | grep -v '^\s*$$' | tail -n 5

# ORIGINS="http://localhost:3000 …" adds origins to the demo site (SITES from edge/wrangler.toml,
# the file unchanged), for a site under development served from another port.
# It serves the dev asset set, www/ plus the dev-only www-dev/ (the demo's member sign-in),
# assembled into target/dev-www (scripts/dev-assets.mjs); a deploy serves www/ alone.
ORIGINS ?=
# `make dev HEARTBEAT_S=5` tells clients a shorter heartbeat than the deployed 60 s, so a
# second browser shows up in the first within seconds while developing.
HEARTBEAT_S ?=
dev: build
	@node scripts/dev-assets.mjs target/dev-www
	@echo "==> wrangler dev on http://127.0.0.1:$(PORT) (local KV persisted in .wrangler/state)"
	@SITES_VAR=(); if [ -n "$(strip $(ORIGINS))" ]; then \
	  SITES=$$(node scripts/dev-sites.mjs $(ORIGINS)); SITES_VAR=(--var "SITES:$$SITES"); \
	  echo "==> the demo site also allows $(strip $(ORIGINS))"; fi; \
	if [ -n "$(strip $(HEARTBEAT_S))" ]; then SITES_VAR+=(--var "HEARTBEAT_S:$(strip $(HEARTBEAT_S))"); \
	  echo "==> clients heartbeat every $(strip $(HEARTBEAT_S)) s"; fi; \
	cd edge && wrangler dev --local --ip 127.0.0.1 --port $(PORT) --persist-to ../.wrangler/state --assets ../target/dev-www "$${SITES_VAR[@]}" < /dev/null

test: tools-browser
	@$(MAKE) --no-print-directory test-fmt test-clippy test-unit build test-wasm test-worker test-deploy test-npm test-client-files test-e2e test-dev test-load bench-smoke
	@echo "==> all suites passed"

test-fmt:
	@echo "==> suite: cargo fmt --check"
	@cargo fmt --all --check && echo "fmt: 1 passed, 0 failed"

test-clippy:
	@echo "==> suite: clippy -D warnings (host)"
	@cargo clippy --workspace --all-targets -- -D warnings
	@echo "==> suite: clippy -D warnings (wasm32)"
	@cargo clippy -p herenow-client -p herenow-edge --target wasm32-unknown-unknown --all-targets -- -D warnings
	@echo "clippy: 2 passed, 0 failed"

test-unit:
	@echo "==> suite: cargo test (native)"
	@cargo test --workspace 2>&1 | tee target/unit.log | grep -E '^(test result|running|error|failures:|---- )' || true
	@scripts/sum-cargo.sh "native cargo test" target/unit.log

# The built client (www/herenow/herenow.js: the JS wiring and the machine's wasm) in headless
# Chromium against a fake API; the machine itself is in test-unit.
test-wasm:
	@echo "==> suite: the client in headless Chromium (fake API)"
	@node --test --test-reporter=spec tests/client.test.mjs

test-worker:
	@echo "==> suite: the built worker in workerd (Miniflare)"
	@node --test --test-reporter=spec tests/worker.test.mjs tests/faults.test.mjs tests/locations.test.mjs tests/history.test.mjs tests/channel.test.mjs

# WRANGLER_LOG=debug: the log lists every file the deploy reads from its assets directory,
# which tests/deploy-assets.test.mjs checks for dev-only files.
test-deploy:
	@echo "==> suite: wrangler deploy --dry-run (the deploy bundle builds, no network; its assets hold nothing dev-only)"
	@cd edge && WRANGLER_LOG=debug wrangler deploy --dry-run --outdir ../target/deploy-dry-run < /dev/null > ../target/deploy.log 2>&1 \
	  || { cat ../target/deploy.log; exit 1; }
	@test -s target/deploy-dry-run/index.js && ls target/deploy-dry-run/*.wasm > /dev/null
	@echo "deploy dry-run: 1 passed, 0 failed"
	@node --test --test-reporter=spec tests/deploy-assets.test.mjs

test-e2e:
	@echo "==> suite: end to end in headless Chromium against wrangler dev (the demo, the README's embed and the widget from a second origin, the history chart), and against a failing store (Miniflare)"
	@node --test --test-reporter=spec --test-concurrency=1 tests/dashboard-chart.test.mjs tests/e2e.test.mjs tests/embed.test.mjs tests/history-browser.test.mjs tests/faults-browser.test.mjs

tools-vite-app:
	@test tests/vite-app/node_modules/.package-lock.json -nt tests/vite-app/package-lock.json || { echo "==> npm ci (tests/vite-app)"; (cd tests/vite-app && npm ci --no-audit --no-fund); }

# esbuild, webpack 5 and rollup for tests/apps (versions pinned by its package-lock.json).
tools-bundler-apps:
	@test tests/apps/node_modules/.package-lock.json -nt tests/apps/package-lock.json || { echo "==> npm ci (tests/apps)"; (cd tests/apps && npm ci --no-audit --no-fund); }

# The package `herenow` into target/npm/herenow/ and its tarball target/npm/herenow-<version>.tgz
# (`npm install ./target/npm/herenow-<version>.tgz` in an app, before it is published).
build-npm: build-client
	@scripts/build-npm.sh

test-npm: build tools-vite-app tools-bundler-apps
	@echo "==> suite: npm package (pack contents, types, one app built by vite, esbuild, webpack 5 and rollup, in Chromium)"
	@node --test --test-reporter=spec --test-concurrency=1 tests/npm.test.mjs

.PHONY: test-client-files
test-client-files:
	@echo "==> suite: the client file under wrangler dev (one file, Cache-Control, CORS)"
	@node --test --test-reporter=spec tests/client-cache.test.mjs

test-dev:
	@echo "==> suite: make dev serves a live count (Chromium on http://127.0.0.1:$(PORT)); the harness starts wrangler dev past a taken port"
	@node --test --test-reporter=spec tests/dev.test.mjs tests/wrangler-start.test.mjs

test-load:
	@echo "==> suite: load smoke (500 visitors with churn for 20 s against workerd)"
	@node tests/load.mjs 500 20

# wrk (Debian package `wrk`), the load generator of the benchmarks.
tools-wrk:
	@command -v wrk >/dev/null || { echo "==> apt-get install wrk"; \
	  if [ "$$(id -u)" = 0 ]; then S=""; else S=sudo; fi; \
	  $$S apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$S apt-get install -y -qq wrk >/dev/null; }

# Benchmarks (issue 7): about 10 minutes on 2 cores, loopback only; writes BENCHMARKS.md.
bench: tools-browser tools-wrk build
	@node bench/run.mjs

bench-smoke: tools-wrk
	@echo "==> suite: bench smoke (every bench step with tiny counts, ~30 s)"
	@node bench/run.mjs --smoke

# The full load run of issue 8: 10,000 visitors heartbeating, leaving, joining and timing out
# against the built worker in workerd (Miniflare, KV on disk): a warm-up, then 2 minutes judged.
load: build
	@node tests/load.mjs 10000 120

# The discrete-event simulation of the engine (issue 15), flags in ARGS (README, "Simulation").
ARGS ?=
simulate:
	cargo run -p herenow-sim --release --example simulate -- $(ARGS)

# Issue 15: one isolate holding 100,000 tabs of its location (its own and 3 peers') in workerd
# stays under 64 MiB of wasm memory + JS heap (~4-6 min). TABS=20000 for a quicker run.
TABS ?= 100000
load-memory: build-edge
	@node tests/load-memory.mjs $(TABS)

# Issue 15: KV ops per request of 4 isolates of one location in workerd vs the simulation for
# the same load, within 25 % (random and sticky routing, 4 min of load each, ~10 min).
kvops-agree: build-edge
	@node tests/kvops-agree.mjs

clean:
	rm -rf target edge/build www/herenow .wrangler edge/.wrangler tests/vite-app/dist tests/apps/dist

# Fuzzing (nightly + cargo-fuzz): each target for FUZZ_SECONDS, starting from the committed
# seeds in fuzz/seeds; new inputs go to fuzz/corpus (ignored), findings to fuzz/artifacts.
FUZZ_SECONDS ?= 60
FUZZ_TARGETS := parse_beat record_decode member_token edge_request
.PHONY: fuzz
fuzz:
	@rustup toolchain list | grep -q '^nightly' || { echo "==> rustup toolchain install nightly"; rustup toolchain install nightly --profile minimal; }
	@cargo fuzz --version 2>/dev/null | grep -q '0.13.1' || { echo "==> cargo install cargo-fuzz 0.13.1"; cargo install cargo-fuzz --version 0.13.1 --locked; }
	@for t in $(FUZZ_TARGETS); do \
	  echo "==> fuzz $$t for $(FUZZ_SECONDS) s"; mkdir -p fuzz/corpus/$$t; \
	  (cd fuzz && cargo +nightly fuzz run $$t corpus/$$t seeds/$$t -- -max_total_time=$(FUZZ_SECONDS) -rss_limit_mb=2048 2>&1 | grep -E '^(Done|==|SUMMARY)|panicked' ) || exit 1; \
	done
