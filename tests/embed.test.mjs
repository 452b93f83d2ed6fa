// The embed as a real site uses it: a static page on a second loopback origin carries the
// README's exact script tag under the README's CSP, and the worker runs in `wrangler dev`
// with that origin in SITES. Covers cross-origin loading, SPA navigations, watch-only,
// the cookie's lifetime, member tokens that fail, and the one warning of each way an
// embed can fail (an origin not allowed, a CSP without 'wasm-unsafe-eval').
import { test, describe, before, after, afterEach } from "node:test";
import assert from "node:assert/strict";
import { createServer } from "node:http";
import { createHmac } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { startWrangler, freePort } from "./lib/wrangler.mjs";
import { until, ROOT } from "./lib/miniflare.mjs";
import { launch, waitText, newWatchedContext } from "./lib/browser.mjs";
import { clientFiles } from "./lib/client-files.mjs";

const WINDOW_S = 4; // heartbeats every second
const ONLINE = '[data-herenow="online"]';
const README = readFileSync(join(ROOT, "README.md"), "utf8");
const section = README.slice(README.indexOf("### A script tag on any page"), README.indexOf("### An import from npm"));
/** The README's snippet and CSP, exactly as written (YOUR-WORKER still in them). */
const SNIPPET = section.match(/```html\n([\s\S]*?)```/)?.[1];
const CSP = section.match(/^Content-Security-Policy: (.*)$/m)?.[1];
/** The README's CSP for the file copied onto the site itself. */
const SELF_HOSTED_CSP = section.match(/copied onto your own site instead needs `([^`]+)`/)?.[1].replace(/\s+/g, " ");
const CLIENT_FILE = join(ROOT, "www", "herenow", "herenow.js");
const SECRET = readFileSync(join(ROOT, "edge", ".dev.vars"), "utf8").match(/^MEMBER_SECRET_DEMO=(.*)$/m)[1];

/** An HS256 member token for the demo site, `exp` seconds from now (negative: expired). */
function memberToken(sub, exp) {
  const b64 = (o) => Buffer.from(JSON.stringify(o)).toString("base64url");
  const body = `${b64({ alg: "HS256", typ: "JWT" })}.${b64({ sub, name: sub, exp: Math.floor(Date.now() / 1000) + exp })}`;
  return `${body}.${createHmac("sha256", SECRET).update(body).digest("base64url")}`;
}

/** A static server for pages registered by path: `{ html, csp }`, or `{ js }` for a script. */
async function staticSite() {
  const pages = new Map();
  const port = await freePort();
  const server = createServer((req, res) => {
    const path = new URL(req.url, "http://x").pathname;
    if (path === "/favicon.ico") { res.writeHead(204).end(); return; } // the browser asks; not a failure
    const page = pages.get(path);
    if (!page) { res.writeHead(404).end("not found"); return; }
    const headers = { "content-type": `text/${page.js ? "javascript" : "html"}; charset=utf-8`, "cache-control": "no-store" };
    if (page.csp) headers["content-security-policy"] = page.csp;
    res.writeHead(200, headers).end(page.js ?? page.html);
  });
  await new Promise((resolve) => server.listen(port, "127.0.0.1", resolve));
  return { origin: `http://127.0.0.1:${port}`, pages, close: () => new Promise((r) => server.close(r)) };
}

describe("the README's embed from another origin (Chromium, wrangler dev)", () => {
  let worker, browser, site, refused;
  const open = [];

  before(async () => {
    assert.ok(SNIPPET?.includes("YOUR-WORKER") && CSP?.includes("'wasm-unsafe-eval'"), "README has the snippet and the CSP");
    assert.ok(SELF_HOSTED_CSP?.includes("'wasm-unsafe-eval'"), "README has the self-hosted CSP");
    [site, refused] = await Promise.all([staticSite(), staticSite()]);
    const port = await freePort();
    const own = `http://127.0.0.1:${port}`;
    [worker, browser] = await Promise.all([
      startWrangler({ port, vars: { WINDOW_S: String(WINDOW_S), SITES: JSON.stringify({ demo: { origins: [own, site.origin] } }) } }),
      launch(),
    ]);
  });
  after(async () => {
    await browser?.close();
    await worker?.stop();
    await site?.close();
    await refused?.close();
  });
  afterEach(async () => {
    for (const ctx of open.splice(0)) {
      await Promise.all(ctx.pages().map((p) => p.goto("about:blank").catch(() => {})));
      await ctx.close();
    }
    assert.ok(await until(async () => (await count()).online === 0, (WINDOW_S + 4) * 1000, 100), "empty after a test");
  });

  const w = (text) => text.replaceAll("https://YOUR-WORKER", worker.origin);
  /** Registers a page on `where` (default the allowed site): the README's snippet with `attrs` added to its tag. */
  function addPage(path, { attrs = "", csp = w(CSP), where = site } = {}) {
    const tag = w(SNIPPET).replace("></script>", `${attrs ? ` ${attrs}` : ""}></script>`);
    where.pages.set(path, { csp, html: `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>embed</title></head><body>${tag}</body></html>` });
    return `${where.origin}${path}`;
  }
  async function context(init) {
    const { ctx, events } = await newWatchedContext(browser, site.origin);
    if (init) await ctx.addInitScript(init);
    open.push(ctx);
    const requests = [];
    ctx.on("request", (r) => {
      if (!r.url().startsWith(worker.origin)) return;
      let body = null;
      try { body = r.postData() ? JSON.parse(r.postData()) : null; } catch { /* not JSON */ }
      requests.push({ t: Date.now(), method: r.method(), path: new URL(r.url()).pathname, url: r.url(), body });
    });
    return { ctx, events, requests, beats: () => requests.filter((r) => r.path === "/v1/heartbeat") };
  }
  async function count(q = "") {
    const r = await fetch(`${worker.origin}/v1/count?site=demo${q}`, { cache: "no-store" });
    assert.equal(r.status, 200);
    return r.json();
  }
  async function countUntil(pred, ms, what) {
    let last;
    assert.ok(await until(async () => pred((last = await count())), ms, 50), `${what}: last ${JSON.stringify(last)}`);
  }
  const warnings = (events) => events.filter((e) => e.kind === "console" && e.detail.startsWith("warning: herenow"));
  const problems = (events) => events.filter((e) => e.kind !== "foreign-request" || !e.detail.startsWith(worker.origin));

  test("the client files are public scripts: CORS and CORP headers", async () => {
    for (const f of Object.values(clientFiles())) {
      const r = await fetch(`${worker.origin}/herenow/${f}`, { headers: { origin: site.origin } });
      await r.arrayBuffer();
      assert.equal(r.status, 200, f);
      assert.equal(r.headers.get("access-control-allow-origin"), "*", f);
      assert.equal(r.headers.get("cross-origin-resource-policy"), "cross-origin", f);
    }
  });

  test("the README's snippet under the README's CSP counts 1, then 2 with a second browser", async () => {
    const url = addPage("/readme.html");
    const a = await context();
    const pa = await a.ctx.newPage();
    await pa.goto(url);
    await waitText(pa, ONLINE, "1");
    const b = await context();
    const pb = await b.ctx.newPage();
    await pb.goto(url);
    await waitText(pb, ONLINE, "2");
    await waitText(pa, ONLINE, "2");
    assert.equal((await count()).online, 2);
    assert.deepEqual([...problems(a.events), ...problems(b.events)], [], "no warning, error or CSP violation");
  });

  test("pushState moves the visitor within 1 s and the old page drops; replaceState and back too", async () => {
    const url = addPage("/spa/start");
    const a = await context();
    const p = await a.ctx.newPage();
    await p.goto(url);
    await waitText(p, ONLINE, "1");
    await countUntil((c) => c.pages.some((x) => x.page === "/spa/start"), 3000, "counted on /spa/start");
    const tab = a.beats()[0].body.tab;
    const moved = async (path, act) => {
      const t0 = Date.now();
      await p.evaluate(act);
      const ok = await until(() => a.beats().some((r) => r.t >= t0 && r.body.page === path), 1000, 10);
      assert.ok(ok, `a heartbeat for ${path} within 1 s`);
      const beat = a.beats().find((r) => r.t >= t0 && r.body.page === path);
      assert.equal(beat.body.tab, tab, "the same tab");
      await countUntil((c) => JSON.stringify(c.pages) === JSON.stringify([{ page: path, online: 1 }]), 3000, `only ${path}`);
    };
    await moved("/spa/other", () => history.pushState({}, "", "/spa/other"));
    assert.equal((await count("&page=/spa/start")).page, 0, "the old page dropped");
    await moved("/spa/third", () => history.replaceState({}, "", "/spa/third"));
    await moved("/spa/start", () => history.back()); // popstate: /spa/start is the entry before
    assert.deepEqual(problems(a.events), []);
  });

  test("without the Navigation API, wrapped pushState and popstate still move the tab", async () => {
    const url = addPage("/spa/old");
    const a = await context(() => Object.defineProperty(window, "navigation", { value: undefined, configurable: true }));
    const p = await a.ctx.newPage();
    await p.goto(url);
    await waitText(p, ONLINE, "1");
    assert.equal(await p.evaluate(() => window.navigation), undefined);
    const t0 = Date.now();
    await p.evaluate(() => history.pushState({}, "", "/spa/old-2"));
    assert.ok(await until(() => a.beats().some((r) => r.t >= t0 && r.body.page === "/spa/old-2"), 1000, 10), "pushState");
    const t1 = Date.now();
    await p.evaluate(() => history.back());
    assert.ok(await until(() => a.beats().some((r) => r.t >= t1 && r.body.page === "/spa/old"), 1000, 10), "popstate");
  });

  test("data-page pins the page: a pushState does not move it", async () => {
    const url = addPage("/spa/pinned-host", { attrs: 'data-page="/pinned"' });
    const a = await context();
    const p = await a.ctx.newPage();
    await p.goto(url);
    await waitText(p, ONLINE, "1");
    const t0 = Date.now();
    await p.evaluate(() => history.pushState({}, "", "/spa/elsewhere"));
    // Two more regular heartbeats (about 1 s apart): both still on the pinned page.
    assert.ok(await until(() => a.beats().filter((r) => r.t >= t0).length >= 2, 5000, 20), "heartbeats go on");
    assert.deepEqual([...new Set(a.beats().map((r) => r.body.page))], ["/pinned"]);
  });

  test("watch-only shows the count without a heartbeat, a beacon or a cookie; nothing while hidden", async () => {
    const counted = addPage("/watched");
    const watching = addPage("/wall", { attrs: 'data-track="false"' });
    const a = await context();
    const pa = await a.ctx.newPage();
    await pa.goto(counted);
    await waitText(pa, ONLINE, "1");
    const b = await context();
    const pb = await b.ctx.newPage();
    await pb.goto(watching);
    await waitText(pb, ONLINE, "1");
    const gets = () => b.requests.filter((r) => r.path === "/v1/count").length;
    assert.ok(await until(() => gets() >= 3, 5000, 20), "refreshes at the server's interval (1 s here)");
    await waitText(pb, ONLINE, "1");
    assert.deepEqual(b.requests.filter((r) => r.method !== "GET"), [], "no heartbeat, idle or leave");
    assert.equal((await b.ctx.cookies()).length, 0, "no cookie");
    assert.equal((await count()).online, 1, "the watcher is not counted");

    await pb.evaluate(() => {
      Object.defineProperty(document, "visibilityState", { configurable: true, get: () => "hidden" });
      document.dispatchEvent(new Event("visibilitychange"));
    });
    const hiddenAt = gets();
    const t0 = Date.now();
    // While the counted page beats three more times (about 3 s), the hidden watcher asks nothing.
    assert.ok(await until(() => a.beats().filter((r) => r.t > t0).length >= 3, 6000, 20));
    assert.ok(gets() <= hiddenAt + 1, `hidden: ${gets() - hiddenAt} more counts`); // one may have been in flight
    const t1 = Date.now();
    await pb.evaluate(() => {
      Object.defineProperty(document, "visibilityState", { configurable: true, get: () => "visible" });
      document.dispatchEvent(new Event("visibilitychange"));
    });
    assert.ok(await until(() => b.requests.some((r) => r.path === "/v1/count" && r.t >= t1), 1000, 10), "visible: a count at once");
    assert.deepEqual(problems(b.events), []);
  });

  test("the visitor cookie lives 1800 s and each heartbeat renews it", async () => {
    const a = await context();
    const p = await a.ctx.newPage();
    await p.goto(addPage("/cookie"));
    await waitText(p, ONLINE, "1");
    const vid = async () => (await a.ctx.cookies()).find((c) => c.name === "herenow_vid");
    const first = await vid();
    assert.ok(first, "cookie set");
    const left = first.expires - Date.now() / 1000;
    assert.ok(left > 1790 && left <= 1801, `Max-Age 1800: ${left} s left`);
    assert.ok(await until(async () => (await vid()).expires >= first.expires + 1.5, 5000, 100), "renewed by later heartbeats");
    assert.equal((await vid()).value, first.value, "the same id");
  });

  test("an expired member token: one warning, and the person is counted as a guest", async () => {
    const a = await context();
    const p = await a.ctx.newPage();
    await p.goto(addPage("/expired", { attrs: `data-member-token="${memberToken("ada", -60)}"` }));
    await countUntil((c) => c.online === 1 && c.guests === 1 && c.members === 0, 5000, "counted as a guest");
    await waitText(p, ONLINE, "1");
    const t0 = Date.now();
    assert.ok(await until(() => a.beats().filter((r) => r.t > t0).length >= 2, 5000, 20), "heartbeats go on");
    assert.ok(a.beats().slice(2).every((r) => !("member_token" in r.body)), "the refused token is not sent again");
    const warned = warnings(a.events);
    assert.equal(warned.length, 1, JSON.stringify(warned));
    assert.match(warned[0].detail, /member token refused.*guest/);

    // The same key with a valid token counts a member: the key was right, the expiry was not.
    const b = await context();
    const pb = await b.ctx.newPage();
    await pb.goto(addPage("/valid", { attrs: `data-member-token="${memberToken("grace", 600)}"` }));
    await countUntil((c) => c.online === 2 && c.members === 1, 5000, "a valid token counts a member");
  });

  /** A page of the site whose own module (at `${path}.js`) imports the worker's file and starts it
   * with the options the expression makes; the handle is `window.h`. */
  function addApp(path, options) {
    site.pages.set(`${path}.js`, { js: `import { start } from "${worker.origin}/herenow/herenow.js";
      start(${options}).then((h) => { window.h = h; }, (e) => console.warn("herenow test: " + e));` });
    site.pages.set(path, { csp: `script-src 'self' ${worker.origin} 'wasm-unsafe-eval'; connect-src ${worker.origin}`,
      html: `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>app</title></head><body><span data-herenow="online">…</span><script type="module" src="${path}.js"></script></body></html>` });
    return `${site.origin}${path}`;
  }

  test("handle.setPage() moves the visitor to the router's path and stops following location", async () => {
    const a = await context();
    const p = await a.ctx.newPage();
    await p.goto(addApp("/router", `{ endpoint: "${worker.origin}", site: "demo" }`));
    await countUntil((c) => c.online === 1 && c.pages.some((x) => x.page === "/router"), 5000, "counted on /router");
    await p.waitForFunction(() => window.h, null, { timeout: 5000 });
    const t0 = Date.now();
    await p.evaluate(() => window.h.setPage("/router/chosen"));
    assert.ok(await until(() => a.beats().some((r) => r.t >= t0 && r.body?.page === "/router/chosen"), 1000, 10),
      "a heartbeat for the new path within 1 s");
    await countUntil((c) => c.online === 1 && c.pages.length === 1 && c.pages[0].page === "/router/chosen", (WINDOW_S + 2) * 1000,
      "the old page drops");
    // setPage turned following off: a pushState does not move it.
    const t1 = Date.now();
    await p.evaluate(() => history.pushState({}, "", "/router/elsewhere"));
    await new Promise((r) => setTimeout(r, 1500)); // longer than a heartbeat interval
    assert.ok(a.beats().filter((r) => r.t >= t1).every((r) => r.body?.page === "/router/chosen"));
    assert.deepEqual(problems(a.events), []);
  });

  test("a member-token provider is asked again after a 401, and its new token counts a member", async () => {
    const expired = memberToken("ada", -60);
    const valid = memberToken("ada", 600);
    const a = await context(`window.__tokens = ${JSON.stringify([expired, valid])}; window.__asked = 0;`);
    const p = await a.ctx.newPage();
    await p.goto(addApp("/provider", `{ endpoint: "${worker.origin}", site: "demo",
      memberToken: () => { window.__asked++; return window.__tokens.length > 1 ? window.__tokens.shift() : window.__tokens[0]; } }`));
    await countUntil((c) => c.online === 1 && c.members === 1 && c.guests === 0, 5000, "counted as a member");
    const [first, second] = a.beats();
    assert.equal(first.body.member_token, expired);
    assert.equal(second.body.member_token, valid, "asked again at once, the new token sent");
    assert.ok((await p.evaluate(() => window.__asked)) >= 2);
    const warned = warnings(a.events);
    assert.equal(warned.length, 1, JSON.stringify(warned));
    assert.match(warned[0].detail, /member token refused/);
  });

  test("the file copied onto the site counts under the README's self-hosted CSP", async () => {
    site.pages.set("/herenow/herenow.js", { js: readFileSync(CLIENT_FILE, "utf8") });
    const csp = w(SELF_HOSTED_CSP);
    site.pages.set("/self-hosted.html", { csp, html: `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>self-hosted</title></head><body>
      <p><span data-herenow="online">…</span> online</p>
      <script type="module" src="/herenow/herenow.js" data-endpoint="${worker.origin}" data-site="demo"></script></body></html>` });
    const a = await context();
    const p = await a.ctx.newPage();
    await p.goto(`${site.origin}/self-hosted.html`);
    await waitText(p, ONLINE, "1");
    assert.deepEqual(problems(a.events), [], "no warning, error or CSP violation");
    assert.ok(a.requests.every((r) => r.path.startsWith("/v1/")), "only the API is fetched from the worker");
  });

  test("an origin not in SITES gets one warning naming the origin, the site and SITES", async () => {
    const a = await context();
    const p = await a.ctx.newPage();
    await p.goto(addPage("/not-allowed", { where: refused }));
    assert.ok(await until(() => warnings(a.events).length >= 1, 5000, 20), "a warning");
    const t0 = Date.now();
    assert.ok(await until(() => a.beats().filter((r) => r.t > t0).length >= 2, 10_000, 20), "retries with backoff");
    const warned = warnings(a.events);
    assert.equal(warned.length, 1, JSON.stringify(warned));
    for (const part of [refused.origin, '"demo"', "SITES"]) assert.ok(warned[0].detail.includes(part), warned[0].detail);
    assert.equal((await count()).online, 0, "nothing recorded");
  });

  test("a CSP without 'wasm-unsafe-eval' gets one warning naming the directive", async () => {
    const a = await context();
    const p = await a.ctx.newPage();
    await p.goto(addPage("/strict", { csp: w(CSP).replace(" 'wasm-unsafe-eval'", "") }));
    assert.ok(await until(() => warnings(a.events).length >= 1, 5000, 20), "a warning");
    const warned = warnings(a.events);
    assert.equal(warned.length, 1, JSON.stringify(warned));
    assert.match(warned[0].detail, /add 'wasm-unsafe-eval' to the CSP's script-src/);
    assert.equal((await count()).online, 0);
  });
});
