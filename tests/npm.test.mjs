// The npm package `herenow` (scripts/build-npm.sh → target/npm/herenow-<version>.tgz):
// what `npm pack` ships, its package.json and declarations, TypeScript over typed use and
// misuse, and the same small app built, unchanged and with no option about herenow, by
// vite@7 (tests/vite-app, also served by vite's dev server), esbuild, webpack 5 and rollup
// (tests/apps), each opened in headless Chromium against the real worker (one wrangler dev,
// one Chromium).
//
// Needs tests/vite-app/node_modules and tests/apps/node_modules (`npm ci` in each, the
// Makefile's install steps). Builds the client and the edge first when their output is
// missing. Everything listens on 127.0.0.1 and every wait has a deadline.
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
import { startWrangler, freePort } from "./lib/wrangler.mjs";
import { launch, waitText, newWatchedContext } from "./lib/browser.mjs";
import { spawnGroup } from "./lib/process-group.mjs";

const APP = join(ROOT, "tests", "vite-app");
const APPS = join(ROOT, "tests", "apps");
const NPM_OUT = join(ROOT, "target", "npm");
const PKG = join(NPM_OUT, "herenow");
const WWW = join(ROOT, "target", "herenow-client"); // build-client.sh's unbundled modules and .wasm
const VERSION = readFileSync(join(ROOT, "Cargo.toml"), "utf8")
  .split(/^\[workspace\.package\]\s*$/m)[1].match(/^version\s*=\s*"([^"]+)"/m)[1];
const TARBALL = join(NPM_OUT, `herenow-${VERSION}.tgz`);
const SHIPPED = ["README.md", "herenow.js", "herenow_wasm.js", "index.d.ts", "index.js", "package.json"];
const gz = (b) => gzipSync(b, { level: 9 }).length;
/** The wasm inside the package: herenow_wasm.js's base64 string, decoded. */
const inlinedWasm = (dir) => Buffer.from(readFileSync(join(dir, "herenow_wasm.js"), "utf8").match(/export default "([A-Za-z0-9+/=]+)";/)[1], "base64");

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
  // Installs the packed tarball as a user would, without touching package.json or the
  // lockfile (herenow has no dependencies, so nothing is fetched).
  for (const [dir, dep] of [[APP, "vite"], [APPS, "webpack"]]) {
    assert.ok(existsSync(join(dir, "node_modules", dep)),
      `${dir.slice(ROOT.length + 1)} has no node_modules: run \`npm ci\` there (make test-npm does)`);
    await run("rm", ["-rf", join(dir, "node_modules", "herenow")]);
    await run("npm", ["install", "--no-save", "--offline", "--ignore-scripts", TARBALL], { cwd: dir });
  }
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
    // The copies npm installed into the apps are the one just built.
    for (const dir of [APP, APPS]) {
      for (const f of SHIPPED) {
        assert.ok(readFileSync(join(dir, "node_modules", "herenow", f)).equals(readFileSync(join(PKG, f))),
          `${dir.slice(ROOT.length + 1)}/node_modules/herenow/${f} differs from the packed one`);
      }
    }
    const size = statSync(TARBALL).size;
    console.log(`# ${TARBALL.slice(ROOT.length + 1)}: ${size} bytes, unpacked ${info.unpackedSize} bytes`);
    assert.ok(size < 60_000, `tarball ${size} bytes`);
  });

  test("package.json: ES module with exports, types, files, sideEffects, license, repository, no dependencies", () => {
    const pkg = JSON.parse(readFileSync(join(PKG, "package.json"), "utf8"));
    assert.equal(pkg.name, "herenow");
    assert.equal(pkg.version, VERSION);
    assert.equal(pkg.type, "module");
    assert.deepEqual(pkg.exports["."], { types: "./index.d.ts", import: "./index.js" });
    assert.deepEqual(Object.keys(pkg.exports["."]), ["types", "import"], "types must come first");
    assert.equal(pkg.types, "./index.d.ts");
    assert.deepEqual([...pkg.files].sort(), ["herenow.js", "herenow_wasm.js", "index.d.ts", "index.js"]);
    assert.equal(pkg.sideEffects, false);
    assert.equal(pkg.license, "MIT OR Apache-2.0");
    assert.equal(pkg.repository.type, "git");
    assert.match(pkg.repository.url, /^git\+https:\/\/.+\.git$/);
    for (const k of ["dependencies", "peerDependencies", "optionalDependencies", "devDependencies", "scripts", "private"]) {
      assert.equal(pkg[k], undefined, `package.json has ${k}`);
    }
  });

  test("the wasm is inlined: no .wasm file, no import.meta, no URL for a bundler to follow; the client is the tag's", async () => {
    const index = readFileSync(join(PKG, "index.js"), "utf8");
    assert.match(index, /from "\.\/herenow\.js"/);
    assert.ok(readFileSync(join(PKG, "herenow.js")).equals(readFileSync(join(ROOT, "client", "js", "client.js"))),
      "herenow.js is client/js/client.js");
    assert.match(readFileSync(join(PKG, "herenow.js"), "utf8"), /from "\.\/herenow_wasm\.js"/);
    for (const f of ["index.js", "herenow.js", "herenow_wasm.js"]) {
      const code = stripComments(readFileSync(join(PKG, f), "utf8"));
      assert.doesNotMatch(code, /import\.meta/, `${f} uses import.meta`);
      assert.doesNotMatch(code, /\.wasm\b/, `${f} names a .wasm file`);
      assert.doesNotMatch(code, /sourceMappingURL/, f);
    }
    const mod = await import(pathToFileURL(join(PKG, "index.js")).href);
    assert.deepEqual(Object.keys(mod), ["start"]);
    // In Node the wasm decodes and compiles, and the client then refuses for want of a
    // browser: start() rejects (never throws), and so does a second call.
    for (let i = 0; i < 2; i++) {
      const p = mod.start({ endpoint: "", site: "demo" });
      assert.ok(p instanceof Promise);
      await assert.rejects(p, /needs a browser window/);
    }
  });

  test("the inlined wasm is the size-checked client build; what inlining costs", () => {
    const wasm = readFileSync(join(WWW, "herenow_client.wasm"));
    assert.ok(inlinedWasm(PKG).equals(wasm), "herenow_wasm.js holds the built .wasm, byte for byte");
    const inlined = gz(readFileSync(join(PKG, "herenow_wasm.js")));
    const client = gz(readFileSync(join(PKG, "herenow.js")));
    const index = gz(readFileSync(join(PKG, "index.js")));
    console.log(`# gzip -9: wasm ${gz(wasm)} B as a file, ${inlined} B inlined as base64 ` +
      `(+${inlined - gz(wasm)} B, +${Math.round((inlined / gz(wasm) - 1) * 100)}%); client ${client} B unminified; index.js ${index} B`);
    // base64 hides byte boundaries from gzip: it costs a few tenths, never a doubling.
    assert.ok(inlined < gz(wasm) * 1.5, `inlined ${inlined} B vs ${gz(wasm)} B`);
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
      "next_heartbeat_ms?: number;", "record?: { online: number; at: number };"]) {
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

/** Files under `dir`, relative, recursively. */
const filesUnder = (dir, base = dir) => readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
  e.isDirectory() ? filesUnder(join(dir, e.name), base) : [join(dir, e.name).slice(base.length + 1)]);

describe("the same app built by vite, esbuild, webpack 5 and rollup, unchanged, counts in Chromium", () => {
  // Each app on its own origin and with its own site, so that the counts do not mix.
  const DISTS = {
    vite: join(APP, "dist"),
    esbuild: join(APPS, "dist", "esbuild"),
    webpack: join(APPS, "dist", "webpack"),
    rollup: join(APPS, "dist", "rollup"),
  };
  const servers = {};
  let edge, browser, viteDev;

  before(async () => {
    await run("node", [join(APP, "node_modules", "vite", "bin", "vite.js"), "build", "--logLevel", "warn"], { cwd: APP, timeout: 120_000 });
    await run("node", [join(APPS, "build.mjs")], { cwd: APPS, timeout: 180_000 });
    for (const [name, dir] of Object.entries(DISTS)) servers[name] = await serveStatic(dir);
    // vite's dev server, with dependency pre-bundling on (no optimizeDeps.exclude).
    const port = await freePort();
    servers["vite-dev"] = { origin: `http://127.0.0.1:${port}`, requests: [], stop: async () => {} };
    viteDev = spawnGroup("node", [join(APP, "node_modules", "vite", "bin", "vite.js"), "--host", "127.0.0.1", "--port", String(port), "--strictPort"], { cwd: APP, env: ENV });
    const sites = Object.fromEntries(Object.entries(servers).map(([name, s]) => [name, { origins: [s.origin] }]));
    [edge, browser] = await Promise.all([
      // A 1 s heartbeat in the default 60 s window: online 0 within seconds of stop() can only
      // come from its leave.
      startWrangler({ vars: { SITES: JSON.stringify(sites), HEARTBEAT_S: "1" } }),
      launch(),
      viteDev.waitFor(() => fetch(`${servers["vite-dev"].origin}/`).then((r) => r.ok, () => false), 60_000, "vite dev"),
    ]);
  });

  after(async () => {
    await browser?.close();
    await edge?.stop();
    await viteDev?.stop();
    await Promise.all(Object.values(servers).map((s) => s.stop()));
  });

  test("each build is JavaScript only: no .wasm asset emitted, none needed", () => {
    for (const [name, dir] of Object.entries(DISTS)) {
      const files = filesUnder(dir);
      assert.deepEqual(files.filter((f) => f.endsWith(".wasm")), [], `${name} emitted a wasm: ${files}`);
      const js = files.filter((f) => f.endsWith(".js"));
      assert.ok(js.length >= 1, `${name}: no JS in ${files}`);
      const bytes = js.reduce((n, f) => n + gz(readFileSync(join(dir, f))), 0);
      console.log(`# ${name}: ${js.join(", ")}: ${bytes} B gzip -9`);
    }
  });

  /** Opens `name`'s app and checks that it counts itself, answers count() and leaves on stop(). */
  async function counts(name, { quietAfterStop = false, devClient = false } = {}) {
    const { origin } = servers[name];
    const api = async () => {
      const r = await fetch(`${edge.origin}/v1/count?site=${name}`, { cache: "no-store" });
      assert.equal(r.status, 200);
      return r.json();
    };
    const events = [];
    const { ctx } = await newWatchedContext(browser, origin, { events });
    try {
      const page = await ctx.newPage();
      const failed = []; // responses of 400 and over, from anywhere
      page.on("response", (r) => { if (r.status() >= 400) failed.push(`${r.status()} ${r.url()}`); });
      const edgeRequests = []; // "METHOD /path" of each request to the worker
      page.on("request", (r) => {
        const u = new URL(r.url());
        if (u.origin === edge.origin) edgeRequests.push(`${r.method()} ${u.pathname}`);
      });
      await page.goto(`${origin}/?endpoint=${encodeURIComponent(edge.origin)}&site=${name}`);
      await waitText(page, "#status", "started", 20_000);
      await waitText(page, "#online", "1");
      await waitText(page, '[data-herenow="online"]', "1");
      const c = await page.evaluate(() => window.herenow.count());
      assert.deepEqual([c.online, c.tabs, c.guests], [1, 1, 1], JSON.stringify(c));
      assert.ok(Array.isArray(c.pages) && typeof c.as_of === "number" && typeof c.window_s === "number", JSON.stringify(c));
      assert.equal((await api()).online, 1);
      // Heartbeats follow the server's 1 s interval.
      const beating = await until(() => edgeRequests.filter((r) => r === "POST /v1/heartbeat").length >= 3, 5_000, 50);
      assert.ok(beating, `heartbeats: ${edgeRequests}`);
      const sent = edgeRequests.length;
      await page.evaluate(() => window.herenow.stop());
      let last;
      const gone = await until(async () => (last = await api()).online === 0, 5_000, 100);
      assert.ok(gone, `still online 5 s after stop(): ${JSON.stringify(last)}`);
      if (quietAfterStop) {
        // Stopped for good: one leave, then nothing over two heartbeat intervals and more.
        await new Promise((r) => setTimeout(r, 2_500));
        assert.deepEqual(edgeRequests.slice(sent), ["POST /v1/leave"]);
        assert.equal((await api()).online, 0);
      }
      assert.deepEqual(failed, [], "no failed request (a wasm the bundler did not copy would 404)");
    } finally {
      await ctx.close();
    }
    const problems = events.filter((e) => !(e.kind === "foreign-request" && new URL(e.detail).origin === edge.origin))
      // vite's dev client (/@vite/client, HMR) registers a beforeunload listener of its own;
      // the four production builds show herenow registers none.
      .filter((e) => !(devClient && e.kind === "unload" && e.detail === 'addEventListener("beforeunload")'));
    assert.deepEqual(problems, [], "no unload listeners, console errors, page errors or other origins");
  }

  test("vite build: the app counts itself (online 1); count() answers; stop() leaves (online 0) and stays stopped", () =>
    counts("vite", { quietAfterStop: true }));
  test("vite's dev server, with dependency pre-bundling (no optimizeDeps.exclude): the app counts itself", () =>
    counts("vite-dev", { devClient: true }));
  test("esbuild --bundle: the app counts itself, count() answers, stop() leaves", () => counts("esbuild"));
  test("webpack 5 (mode production, no rules): the app counts itself, count() answers, stop() leaves", () => counts("webpack"));
  test("rollup with @rollup/plugin-node-resolve: the app counts itself, count() answers, stop() leaves", () => counts("rollup"));
});
