// The npm package `herenow` (scripts/build-npm.sh → target/npm/herenow-<version>.tgz):
// what `npm pack` ships, its package.json and declarations, TypeScript over typed use and
// misuse, and a vite@7 app (tests/vite-app) that imports the packed package, is built by
// vite and runs in headless Chromium against the real worker (wrangler dev).
//
// Needs tests/vite-app/node_modules (`cd tests/vite-app && npm ci`, the Makefile's
// install step). Builds the client and the edge first when their output is missing.
// Everything listens on 127.0.0.1 and every wait has a deadline.
import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { createServer } from "node:http";
import { createReadStream, existsSync, readFileSync, readdirSync, statSync } from "node:fs";
import { join, extname, normalize, sep } from "node:path";
import { pathToFileURL } from "node:url";
import { gzipSync } from "node:zlib";
import { homedir } from "node:os";
import { ROOT, until } from "./lib/miniflare.mjs";
import { startWrangler } from "./lib/wrangler.mjs";
import { launch, waitText, newWatchedContext } from "./lib/browser.mjs";

const APP = join(ROOT, "tests", "vite-app");
const NPM_OUT = join(ROOT, "target", "npm");
const PKG = join(NPM_OUT, "herenow");
const WWW = join(ROOT, "www", "herenow");
const VERSION = readFileSync(join(ROOT, "Cargo.toml"), "utf8")
  .split(/^\[workspace\.package\]\s*$/m)[1].match(/^version\s*=\s*"([^"]+)"/m)[1];
const TARBALL = join(NPM_OUT, `herenow-${VERSION}.tgz`);
const SHIPPED = ["README.md", "herenow.js", "herenow_bg.wasm", "index.d.ts", "index.js", "package.json"];
// The wasm plus its glue, gzip -9: the budget scripts/build-client.sh enforces, read from it.
const BUDGET = Number(readFileSync(join(ROOT, "scripts", "build-client.sh"), "utf8").match(/^BUDGET=(\d+)$/m)[1]);

const ENV = {
  ...process.env,
  PATH: [join(ROOT, "node_modules", ".bin"), join(homedir(), ".cargo", "bin"), process.env.PATH].join(":"),
  npm_config_update_notifier: "false",
  npm_config_fund: "false",
  npm_config_audit: "false",
};

/** Runs a command with a deadline; resolves to stdout, rejects with all of its output. */
function run(cmd, args, { cwd = ROOT, timeout = 120_000 } = {}) {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { cwd, env: ENV, timeout, maxBuffer: 64 << 20, killSignal: "SIGKILL" }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${cmd} ${args.join(" ")} failed (${err.code ?? err.signal}):\n${stdout}\n${stderr}`));
      else resolve(stdout);
    });
  });
}

const stripComments = (s) => s.replace(/\/\*[\s\S]*?\*\//g, "").replace(/\/\/.*$/gm, "");

before(async () => {
  if (!existsSync(join(ROOT, "edge", "build", "index.js"))) {
    await run("make", ["--no-print-directory", "build-edge"], { timeout: 600_000 });
  }
  // Builds the client first when www/herenow has no build (scripts/build-client.sh).
  await run("bash", ["scripts/build-npm.sh"], { timeout: 600_000 });
  assert.ok(existsSync(TARBALL), `${TARBALL} was not made`);
  assert.ok(existsSync(join(APP, "node_modules", "vite")),
    "tests/vite-app has no node_modules: run `cd tests/vite-app && npm ci` (make does)");
  // Installs the packed tarball as a user would, without touching package.json or the
  // lockfile (herenow has no dependencies, so nothing is fetched).
  await run("rm", ["-rf", join(APP, "node_modules", "herenow")]);
  await run("npm", ["install", "--no-save", "--offline", "--ignore-scripts", TARBALL], { cwd: APP });
});

describe("npm package herenow", () => {
  test("npm pack ships exactly the package files, and the tarball holds the same", async () => {
    const [info] = JSON.parse(await run("npm", ["pack", "--dry-run", "--json"], { cwd: PKG }));
    assert.equal(info.name, "herenow");
    assert.equal(info.version, VERSION);
    assert.deepEqual(info.files.map((f) => f.path).sort(), SHIPPED);
    assert.equal(info.bundled.length, 0);
    const listed = (await run("tar", ["-tzf", TARBALL])).trim().split("\n").sort();
    assert.deepEqual(listed, SHIPPED.map((f) => `package/${f}`));
    // The copy npm installed into the vite app is the one just built.
    for (const f of SHIPPED) {
      assert.ok(readFileSync(join(APP, "node_modules", "herenow", f)).equals(readFileSync(join(PKG, f))),
        `tests/vite-app/node_modules/herenow/${f} differs from the packed one`);
    }
    const size = statSync(TARBALL).size;
    console.log(`# ${TARBALL.slice(ROOT.length + 1)}: ${size} bytes, unpacked ${info.unpackedSize} bytes`);
    assert.ok(size < 40_000, `tarball ${size} bytes`);
  });

  test("package.json: ES module with exports, types, files, sideEffects, license, repository, no dependencies", () => {
    const pkg = JSON.parse(readFileSync(join(PKG, "package.json"), "utf8"));
    assert.equal(pkg.name, "herenow");
    assert.equal(pkg.version, VERSION);
    assert.equal(pkg.type, "module");
    assert.deepEqual(pkg.exports["."], { types: "./index.d.ts", import: "./index.js" });
    assert.deepEqual(Object.keys(pkg.exports["."]), ["types", "import"], "types must come first");
    assert.equal(pkg.types, "./index.d.ts");
    assert.deepEqual([...pkg.files].sort(), ["herenow.js", "herenow_bg.wasm", "index.d.ts", "index.js"]);
    assert.equal(pkg.sideEffects, false);
    assert.equal(pkg.license, "MIT OR Apache-2.0");
    assert.equal(pkg.repository.type, "git");
    assert.match(pkg.repository.url, /^git\+https:\/\/.+\.git$/);
    for (const k of ["dependencies", "peerDependencies", "optionalDependencies", "devDependencies", "scripts", "private"]) {
      assert.equal(pkg[k], undefined, `package.json has ${k}`);
    }
  });

  test("index.js exports only start and loads the wasm by new URL(…, import.meta.url); the glue links", async () => {
    const index = readFileSync(join(PKG, "index.js"), "utf8");
    assert.match(index, /new URL\("\.\/herenow_bg\.wasm", import\.meta\.url\)/);
    assert.match(index, /from "\.\/herenow\.js"/);
    const glue = readFileSync(join(PKG, "herenow.js"), "utf8");
    assert.match(glue, /new URL\("herenow_bg\.wasm",import\.meta\.url\)/, "the glue's default URL names the shipped file");
    assert.doesNotMatch(glue, /herenow_wasm_bg/);
    assert.doesNotMatch(glue + index, /sourceMappingURL/);
    const mod = await import(pathToFileURL(join(PKG, "index.js")).href);
    assert.deepEqual(Object.keys(mod), ["start"]);
    // Node cannot fetch the file: URL: start() rejects (never throws), and so does a retry.
    for (let i = 0; i < 2; i++) {
      const p = mod.start({ endpoint: "", site: "demo" });
      assert.ok(p instanceof Promise);
      await assert.rejects(p, TypeError);
    }
    const g = await import(pathToFileURL(join(PKG, "herenow.js")).href);
    g.initSync({ module: readFileSync(join(PKG, "herenow_bg.wasm")) });
    assert.equal(typeof g.start, "function");
  });

  test("the shipped wasm and glue are the size-checked client build, within the budget", () => {
    const wasm = readFileSync(join(PKG, "herenow_bg.wasm"));
    assert.ok(wasm.equals(readFileSync(join(WWW, "herenow_wasm_bg.wasm"))), "herenow_bg.wasm is www's build");
    const gz = (b) => gzipSync(b, { level: 9 }).length;
    const total = gz(wasm) + gz(readFileSync(join(PKG, "herenow.js")));
    console.log(`# wasm + glue gzip -9: ${total} of ${BUDGET} bytes`);
    assert.ok(total <= BUDGET, `${total} bytes over the ${BUDGET} budget`);
  });

  test("index.d.ts declares the options, the count and the handle with real types, never any", () => {
    const dts = readFileSync(join(PKG, "index.d.ts"), "utf8");
    const code = stripComments(dts);
    assert.doesNotMatch(code, /\bany\b/);
    assert.doesNotMatch(code, /\bunknown\b/);
    const body = (name) => {
      const m = code.match(new RegExp(`export interface ${name} \\{([\\s\\S]*?)\\n\\}`));
      assert.ok(m, `no interface ${name}`);
      return m[1].replace(/\s+/g, " ");
    };
    const count = body("HerenowCount");
    for (const field of ["online: number;", "tabs: number;", "members: number;", "guests: number;", "idle: number;",
      "page?: number;", "pages: { page: string; online: number }[];", "window_s: number;", "as_of: number;",
      "next_heartbeat_ms?: number;"]) {
      assert.ok(count.includes(field), `HerenowCount lacks ${field}`);
    }
    const options = body("HerenowOptions");
    for (const field of ["endpoint: string;", "site: string;", "page?: string;", "memberToken?: string | (() =>",
      "cookie?: boolean;", "cookieMaxAge?: number;", "onCount?: (count: HerenowCount) => void;"]) {
      assert.ok(options.includes(field), `HerenowOptions lacks ${field}`);
    }
    const handle = body("HerenowHandle");
    assert.ok(handle.includes("count(): Promise<HerenowCount>;"));
    assert.ok(handle.includes("stop(): void;"));
    assert.match(code, /export function start\(options: HerenowOptions\): Promise<HerenowHandle>;/);
  });

  test("TypeScript compiles typed use and rejects each misuse (bundler and NodeNext resolution)", async () => {
    const tsc = join(APP, "node_modules", "typescript", "bin", "tsc");
    await Promise.all(["tsconfig.json", "tsconfig.node.json"].map((p) => run("node", [tsc, "-p", p], { cwd: APP })));
  });
});

/** A static server for `dir` on a free loopback port; `requests` records the paths asked. */
async function serveStatic(dir) {
  const types = { ".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8", ".wasm": "application/wasm" };
  const requests = [];
  const server = createServer((req, res) => {
    const path = decodeURIComponent(new URL(req.url, "http://x").pathname);
    requests.push(path);
    const file = normalize(join(dir, path.endsWith("/") ? `${path}index.html` : path));
    if (!file.startsWith(dir + sep) || !existsSync(file) || !statSync(file).isFile()) {
      res.writeHead(404).end("not found");
      return;
    }
    res.writeHead(200, { "content-type": types[extname(file)] ?? "application/octet-stream", "cache-control": "no-store" });
    createReadStream(file).pipe(res);
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  const origin = `http://127.0.0.1:${server.address().port}`;
  const stop = () => new Promise((resolve) => { server.closeAllConnections(); server.close(() => resolve()); });
  return { origin, requests, stop };
}

describe("vite@7 app importing the packed package", () => {
  const DIST = join(APP, "dist");
  let app, edge, browser;

  after(async () => {
    await browser?.close();
    await edge?.stop();
    await app?.stop();
  });

  test("vite build bundles herenow and emits its wasm as an asset", async () => {
    await run("node", [join(APP, "node_modules", "vite", "bin", "vite.js"), "build", "--logLevel", "warn"], { cwd: APP, timeout: 60_000 });
    const assets = readdirSync(join(DIST, "assets"));
    const wasm = assets.filter((f) => f.endsWith(".wasm"));
    assert.equal(wasm.length, 1, `one wasm asset: ${assets}`);
    assert.match(wasm[0], /^herenow_bg-[\w-]+\.wasm$/);
    assert.ok(readFileSync(join(DIST, "assets", wasm[0])).equals(readFileSync(join(PKG, "herenow_bg.wasm"))));
    const js = assets.filter((f) => f.endsWith(".js")).map((f) => readFileSync(join(DIST, "assets", f), "utf8")).join("\n");
    assert.ok(js.includes(`/assets/${wasm[0]}`), "the bundle points at the emitted wasm");
  });

  test("in Chromium the app counts itself (online 1); count() answers; stop() leaves (online 0)", async () => {
    app = await serveStatic(DIST);
    [edge, browser] = await Promise.all([
      // A 1 s heartbeat in the default 60 s window: online 0 within seconds of stop() can only
      // come from its leave, and a timer left running would show within the wait below.
      startWrangler({ vars: { SITES: JSON.stringify({ demo: { origins: [app.origin] } }), HEARTBEAT_S: "1" } }),
      launch(),
    ]);
    const events = [];
    const { ctx } = await newWatchedContext(browser, app.origin, { events });
    const page = await ctx.newPage();
    const wasmResponses = [];
    page.on("response", (r) => { if (r.url().endsWith(".wasm")) wasmResponses.push(r); });
    const edgeRequests = []; // "METHOD /path" of each request to the worker
    page.on("request", (r) => {
      const u = new URL(r.url());
      if (u.origin === edge.origin) edgeRequests.push(`${r.method()} ${u.pathname}`);
    });
    await page.goto(`${app.origin}/?endpoint=${encodeURIComponent(edge.origin)}`);

    await waitText(page, "#status", "started");
    await waitText(page, "#online", "1");
    await waitText(page, '[data-herenow="online"]', "1");
    assert.equal(wasmResponses.length, 1);
    assert.equal(wasmResponses[0].status(), 200);
    assert.equal(new URL(wasmResponses[0].url()).origin, app.origin);
    assert.equal(wasmResponses[0].headers()["content-type"], "application/wasm");

    const c = await page.evaluate(() => window.herenow.count());
    assert.equal(c.online, 1);
    assert.equal(c.tabs, 1);
    assert.equal(c.guests, 1);
    assert.ok(Array.isArray(c.pages) && typeof c.as_of === "number" && typeof c.window_s === "number", JSON.stringify(c));

    const api = async () => {
      const r = await fetch(`${edge.origin}/v1/count?site=demo&page=/`, { cache: "no-store" });
      assert.equal(r.status, 200);
      return r.json();
    };
    const before = await api();
    assert.equal(before.online, 1, JSON.stringify(before));
    assert.equal(before.page, 1, JSON.stringify(before));

    // Heartbeats follow the server's 1 s interval.
    const beating = await until(() => edgeRequests.filter((r) => r === "POST /v1/heartbeat").length >= 3, 5_000, 50);
    assert.ok(beating, `heartbeats: ${edgeRequests}`);

    const sent = edgeRequests.length;
    await page.evaluate(() => window.herenow.stop());
    let last;
    const gone = await until(async () => (last = await api()).online === 0, 5_000, 100);
    assert.ok(gone, `still online 5 s after stop(): ${JSON.stringify(last)}`);
    // Stopped for good: one leave, then nothing, and nothing brings it back.
    await new Promise((r) => setTimeout(r, 2_500));
    assert.deepEqual(edgeRequests.slice(sent), ["POST /v1/leave"]);
    assert.equal((await api()).online, 0);

    await ctx.close();
    const problems = events.filter((e) => !(e.kind === "foreign-request" && new URL(e.detail).origin === edge.origin));
    assert.deepEqual(problems, [], "no unload listeners, console errors, page errors or other origins");
    assert.ok(app.requests.some((p) => /^\/assets\/herenow_bg-[\w-]+\.wasm$/.test(p)));
  });
});
