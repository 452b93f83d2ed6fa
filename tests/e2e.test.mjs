// The demo, served by `wrangler dev` (real workerd, local KV, www/_headers), in headless
// Chromium with the back/forward cache on. Every page of every test is watched (see
// lib/browser.mjs): unload listeners, CSP violations, console errors and requests to other
// origins are collected and the last test asserts there were none.
import { test, describe, before, after, afterEach } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { startWrangler } from "./lib/wrangler.mjs";
import { until } from "./lib/miniflare.mjs";
import { launch, waitText, newWatchedContext, ARTIFACTS } from "./lib/browser.mjs";
import { clientFiles } from "./lib/client-files.mjs";

const WINDOW_S = 4; // heartbeats every second; a silent tab is gone after 4 s
const F = (field) => `[data-herenow="${field}"]`;

describe("demo in Chromium", () => {
  let server, browser, origin;
  const events = []; // from every context of the suite
  const open = []; // contexts still open

  before(async () => {
    [server, browser] = await Promise.all([startWrangler({ vars: { WINDOW_S: String(WINDOW_S) } }), launch()]);
    origin = server.origin;
  });
  after(async () => {
    await browser?.close();
    await server?.stop();
  });
  // Every test leaves: pages navigate away (a leave beacon), contexts close, and the site
  // is empty again before the next test starts.
  afterEach(async () => {
    for (const ctx of open.splice(0)) {
      await Promise.all(ctx.pages().map((p) => p.goto("about:blank").catch(() => {})));
      await ctx.close();
    }
    const empty = await until(async () => (await count()).online === 0, (WINDOW_S + 4) * 1000, 100);
    assert.ok(empty, "the site is empty again after a test");
  });

  async function context(options) {
    const { ctx } = await newWatchedContext(browser, origin, { ...options, events });
    open.push(ctx);
    return ctx;
  }
  async function page(ctx, path = "/") {
    const p = await ctx.newPage();
    // Which requests were still open if the load event never comes (seen under heavy CPU
    // load, cause not yet found): the error names them.
    const pending = new Set();
    p.on("request", (r) => pending.add(r));
    p.on("requestfinished", (r) => pending.delete(r));
    p.on("requestfailed", (r) => pending.delete(r));
    try {
      await p.goto(`${origin}${path}`);
    } catch (e) {
      const open = [...pending].map((r) => `${r.method()} ${r.url()}`);
      throw new Error(`${e.message}\n  requests still open: ${JSON.stringify(open)}`);
    }
    return p;
  }
  async function api(path) {
    const r = await fetch(`${origin}${path}`, { cache: "no-store" });
    assert.equal(r.status, 200, `${path}: ${r.status}`);
    return r.json();
  }
  const count = (q = "") => api(`/v1/count?site=demo${q}`);
  /** Polls the API until `pred(count)` holds; fails with the last count after `ms`. */
  async function countUntil(pred, ms, what) {
    let last;
    const ok = await until(async () => pred((last = await count())), ms, 50);
    assert.ok(ok, `${what}: last count ${JSON.stringify(last)}`);
    return last;
  }
  async function signIn(p, name) {
    await p.getByLabel("Your name").fill(name);
    await p.getByLabel("Your name").press("Enter"); // the form works from the keyboard
    await p.waitForFunction((n) => document.querySelector("[data-whoami]")?.textContent === `Signed in as ${n}`, name,
      { timeout: 10_000, polling: 50 });
  }
  const text = (p, sel) => p.locator(sel).first().textContent();

  test("two browsers with their own cookies count 2; navigating away leaves within 2 s", async () => {
    const a = await context();
    const b = await context();
    const pa = await a.newPage();
    const res = await pa.goto(`${origin}/`);
    // The client runs under the strict CSP of www/_headers (wasm needs only 'wasm-unsafe-eval').
    assert.match(res.headers()["content-security-policy"], /script-src 'self' 'wasm-unsafe-eval';/);
    await waitText(pa, F("online"), "1");
    const cookie = (await a.cookies()).find((c) => c.name === "herenow_vid");
    assert.ok(cookie, "visitor cookie set");
    assert.match(cookie.value, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    assert.equal(cookie.sameSite, "Lax");
    assert.equal(cookie.path, "/");
    const left = cookie.expires - Date.now() / 1000;
    assert.ok(left > 1790 && left <= 1801, `Max-Age 1800 (renewed by each heartbeat): ${left} s left`);
    const pb = await page(b);
    await waitText(pb, F("online"), "2");
    await waitText(pa, F("online"), "2");
    const bCookie = (await b.cookies()).find((c) => c.name === "herenow_vid");
    assert.notEqual(bCookie.value, cookie.value, "each browser has its own visitor id");
    assert.equal((await count()).online, 2);

    // A silent tab would linger for the whole window (4 s); the leave beacon drops it at once.
    const t0 = Date.now();
    await pb.goto("about:blank");
    await countUntil((c) => c.online === 1, 2000, "online drops to 1 within 2 s of leaving");
    const took = Date.now() - t0;
    assert.ok(took < 2000, `dropped after ${took} ms`);
    await waitText(pa, F("online"), "1", 3000); // and the page that stayed shows it at its next beat
  });

  test("two tabs in one browser plus another browser: online 2, tabs 3, per page", async () => {
    const a = await context();
    const b = await context();
    const a1 = await page(a, "/");
    const a2 = await page(a, "/about");
    const b1 = await page(b, "/");
    for (const p of [a1, a2, b1]) {
      await waitText(p, F("online"), "2");
      await waitText(p, F("tabs"), "3");
    }
    await waitText(a1, F("page"), "2"); // two people on /
    await waitText(a2, F("page"), "1"); // one on /about
    await waitText(b1, F("guests"), "2");
    assert.equal(await text(a1, "[data-plural][data-for=tabs]"), "tabs");
    const c = await count();
    assert.equal(c.online, 2);
    assert.equal(c.tabs, 3);
    assert.deepEqual(Object.fromEntries(c.pages.map((p) => [p.page, p.online])), { "/": 2, "/about": 1 });
    assert.equal((await count("&page=/about")).page, 1);
  });

  test("back/forward cache: leaving drops, going back restores the page, heartbeats resume", async () => {
    const a = await context();
    const b = await context();
    const pa = await page(a);
    const pb = await page(b);
    await waitText(pa, F("online"), "2");
    await waitText(pb, F("online"), "2");

    const cdp = await a.newCDPSession(pa);
    const notUsed = [];
    cdp.on("Page.backForwardCacheNotUsed", (e) => notUsed.push(e));
    await cdp.send("Page.enable");
    const beats = [];
    pa.on("request", (r) => { if (r.url().includes("/v1/heartbeat")) beats.push(Date.now()); });

    await pa.goto("about:blank");
    await countUntil((c) => c.online === 1, 2000, "online drops within 2 s of leaving");
    const back = Date.now();
    // A restore from the back/forward cache fires no `load`: wait for the commit only.
    await pa.goBack({ waitUntil: "commit" });
    assert.equal(new URL(pa.url()).pathname, "/");
    await pa.waitForFunction(() => window.__hn.pageshow.length >= 2, null, { timeout: 5000, polling: 50 });
    const shows = await pa.evaluate(() => window.__hn.pageshow);
    assert.deepEqual(shows, [false, true], "one first load, then a restore from the back/forward cache");
    await countUntil((c) => c.online === 2, 3000, "the restored page rejoins");
    const ok = await until(() => beats.filter((t) => t >= back).length >= 3, 5000, 50);
    assert.ok(ok, `heartbeats resume after the restore (${beats.filter((t) => t >= back).length})`);
    await waitText(pa, F("online"), "2", 3000);
    assert.deepEqual(notUsed, [], `no Page.backForwardCacheNotUsed: ${JSON.stringify(notUsed)}`);
    await cdp.detach();
  });

  test("a hidden tab is counted idle, and active again when visible", async () => {
    const a = await context();
    const b = await context();
    const pa = await page(a);
    const pb = await page(b);
    await waitText(pa, F("online"), "2");
    await waitText(pb, F("online"), "2");
    assert.equal((await count()).idle, 0);
    const setVisible = (p, visible) => p.evaluate((v) => {
      Object.defineProperty(document, "visibilityState", { configurable: true, get: () => (v ? "visible" : "hidden") });
      Object.defineProperty(document, "hidden", { configurable: true, get: () => !v });
      document.dispatchEvent(new Event("visibilitychange"));
    }, visible);
    await setVisible(pb, false);
    // A hidden tab sends one idle beacon and stops beating: idle within the window.
    await countUntil((c) => c.idle === 1 && c.online === 2, WINDOW_S * 500, "hidden tab counted idle");
    const seen = await until(() => pa.evaluate(() => window.__hn.counts.some((c) => c.idle === 1 && c.online === 2)), 3000, 50);
    assert.ok(seen, "the visible page's client received a count with 1 idle");
    await setVisible(pb, true);
    await countUntil((c) => c.idle === 0 && c.online === 2, 3000, "visible again: not idle");
    await waitText(pa, F("idle"), "0", 3000);
  });

  test("member sign-in: members 1 and the name on the dashboard; the others stay guests", async () => {
    const a = await context({ viewport: { width: 1200, height: 900 } });
    const b = await context();
    const pa = await page(a);
    await waitText(pa, F("online"), "1");
    await signIn(pa, "Ada Lovelace"); // reloads with the token
    const token = await pa.locator('script[src="/herenow/herenow.js"]').getAttribute("data-member-token");
    assert.match(token, /^[\w-]+\.[\w-]+\.[\w-]+$/, "the loader's tag carries the token");
    const pa2 = await page(a, "/about"); // a second tab of the member: still one member
    const pb = await page(b);
    for (const p of [pa, pa2, pb]) {
      await waitText(p, F("members"), "1");
      await waitText(p, F("guests"), "1");
      await waitText(p, F("online"), "2");
    }
    assert.equal(await text(pa, "[data-whoami]"), "Signed in as Ada Lovelace");
    assert.equal(await text(pa2, "[data-whoami]"), "Signed in as Ada Lovelace");
    assert.equal(await text(pb, "[data-whoami]"), "You are counted as a guest");
    assert.equal(await text(pa, "#member-id"), "dev-ada-lovelace");
    assert.equal(await text(pa, "[data-plural][data-for=members]"), "member");
    const online = await api("/v1/online?site=demo");
    assert.deepEqual(online.members.map((m) => [m.id, m.name]), [["dev-ada-lovelace", "Ada Lovelace"]]);

    const c = await context();
    const dash = await page(c, "/dashboard");
    await waitText(dash, "#members-table .member-name", "Ada Lovelace");
    await waitText(dash, '[data-stat="members"]', "1");
    await waitText(dash, '[data-stat="guests"]', "1");
    await waitText(dash, '[data-stat="online"]', "2");
    await pa.bringToFront();
    await pa.screenshot({ path: join(ARTIFACTS, "index.png"), fullPage: true });

    // Signing out makes the browser a guest again.
    await pa2.close();
    await pa.getByRole("button", { name: "Sign out" }).click();
    await pa.waitForFunction(() => document.querySelector("[data-whoami]")?.textContent === "You are counted as a guest");
    await countUntil((x) => x.members === 0 && x.guests === 2, 5000, "signed out: two guests");
    await waitText(dash, "#members-table td.empty", "No members online.");
  });

  test("dashboard: the chart takes live counts, tables update, the badge shows the same number", async () => {
    const d = await context({ viewport: { width: 1200, height: 900 } });
    const dash = await page(d, "/dashboard");
    await waitText(dash, '[data-stat="online"]', "0");
    await waitText(dash, "#pages-table td.empty", "No one is online.");
    await waitText(dash, "#members-table td.empty", "No members online.");
    assert.equal(await text(dash, '[data-def="window_s"]'), String(WINDOW_S));
    assert.match(await text(dash, '[data-def="as_of"]'), /^\d{13}$/);
    assert.match(await text(dash, "#status"), /^Live/);
    // The chart holds the 24 h history (288 five-minute steps) and folds each live count in.
    const chartAttr = (name) => dash.locator("#chart svg").getAttribute(name).then(Number);
    await dash.waitForFunction(() => Number(document.querySelector("#chart svg")?.dataset.points) === 288, null, { timeout: 5000, polling: 50 });
    const l0 = await chartAttr("data-live");
    assert.ok(await until(async () => (await chartAttr("data-live")) >= l0 + 2, 6000, 100), "the chart takes live counts");

    const a = await context();
    const b = await context();
    await page(a, "/");
    const pb = await page(b, "/");
    await signIn(pb, "Grace Hopper");
    await pb.goto(`${origin}/about`);
    await waitText(dash, '[data-stat="online"]', "2");
    await waitText(dash, "#members-table .member-name", "Grace Hopper");
    const rows = () => dash.$$eval("#pages-table tbody tr", (trs) => trs.map((tr) => [...tr.cells].map((td) => td.textContent.trim())));
    assert.ok(await until(async () => JSON.stringify(await rows()) === JSON.stringify([["/", "1"], ["/about", "1"]]), 5000, 100),
      `pages table: ${JSON.stringify(await rows())}`);
    assert.equal(await text(dash, "#chart svg .last-label"), "2");
    assert.match(await text(dash, "#as-of"), /\d/);

    // The badge image loaded, and its SVG says what the dashboard says.
    await dash.waitForFunction(() => {
      const img = document.querySelector("#badge-img");
      return img.complete && img.naturalWidth > 0 && img.currentSrc.includes("&v=") && /\b2\b/.test(img.alt);
    }, null, { timeout: 5000, polling: 50 });
    const badge = await dash.evaluate(async () => {
      const img = document.querySelector("#badge-img");
      const svg = await (await fetch(img.currentSrc, { cache: "no-store" })).text();
      return { svg, w: img.naturalWidth, shown: document.querySelector('[data-stat="online"]').textContent };
    });
    assert.ok(badge.w > 0);
    assert.equal(badge.svg.match(/aria-label="online: (\d+)"/)?.[1], badge.shown);
    assert.equal(badge.shown, "2");
    const snippet = await text(dash, "#badge-snippet");
    assert.equal(snippet, `<img src="${origin}/v1/badge.svg?site=demo" alt="People online">`);
    await dash.screenshot({ path: join(ARTIFACTS, "dashboard.png"), fullPage: true });
    await dash.setViewportSize({ width: 390, height: 844 });
    await dash.waitForFunction(() => Number(document.querySelector("#chart svg")?.getAttribute("width")) < 400, null, { timeout: 5000 });
    await dash.screenshot({ path: join(ARTIFACTS, "dashboard-mobile.png"), fullPage: true });

    // One leaves: the numbers, the members table and the badge follow.
    await pb.goto("about:blank");
    await waitText(dash, '[data-stat="online"]', "1", 4000);
    await waitText(dash, "#members-table td.empty", "No members online.", 4000);
    await dash.waitForFunction(() => /\b1\b/.test(document.querySelector("#badge-img").alt), null, { timeout: 4000 });
    assert.ok(await until(async () => JSON.stringify(await rows()) === JSON.stringify([["/", "1"]]), 4000, 100));
  });

  test("labels, keyboard and markup: a strict CSP needs no inline code", async () => {
    const a = await context();
    for (const path of ["/", "/about", "/dashboard"]) {
      const p = await page(a, path);
      await p.keyboard.press("Tab");
      assert.equal(await p.evaluate(() => document.activeElement?.textContent), "Skip to content", `${path}: skip link first`);
      const facts = await p.evaluate(() => ({
        lang: document.documentElement.lang,
        h1: document.querySelectorAll("h1").length,
        inlineScripts: [...document.scripts].filter((s) => !s.src).length,
        styleAttrs: document.querySelectorAll("[style]").length,
        styleTags: document.querySelectorAll("style").length,
        handlers: [...document.querySelectorAll("*")].filter((el) => [...el.attributes].some((at) => /^on/i.test(at.name))).length,
        imgsWithoutAlt: [...document.images].filter((i) => !i.hasAttribute("alt")).length,
        unlabeled: [...document.querySelectorAll("input, select, textarea")].filter((el) => el.labels.length === 0).length,
        namelessButtons: [...document.querySelectorAll("button")].filter((btn) => !btn.textContent.trim()).length,
        tablesWithoutCaption: [...document.querySelectorAll("table")].filter((t) => !t.caption).length,
        current: document.querySelector('nav a[aria-current="page"]')?.getAttribute("href"),
      }));
      assert.deepEqual(facts, {
        lang: "en", h1: 1, inlineScripts: 0, styleAttrs: 0, styleTags: 0, handlers: 0, imgsWithoutAlt: 0,
        unlabeled: 0, namelessButtons: 0, tablesWithoutCaption: 0, current: path === "/" ? "/" : path,
      }, path);
    }
  });

  test("security headers on every page and file; the HTML has no inline script or style", async () => {
    const want = ["default-src 'self'", "script-src 'self' 'wasm-unsafe-eval'", "connect-src 'self'", "img-src 'self'",
      "style-src 'self'", "frame-ancestors 'none'", "base-uri 'none'", "object-src 'none'"];
    for (const path of ["/", "/about", "/dashboard", "/style.css", "/dashboard.js", "/dashboard-chart.js", "/dev-signin.js",
      "/demo.js", ...Object.values(clientFiles()).map((f) => `/herenow/${f}`)]) {
      const r = await fetch(`${origin}${path}`);
      assert.equal(r.status, 200, path);
      const csp = r.headers.get("content-security-policy") ?? "";
      const directives = csp.split(";").map((d) => d.trim());
      for (const d of want) assert.ok(directives.includes(d), `${path}: CSP has ${d}: ${csp}`);
      assert.doesNotMatch(csp, /'unsafe-inline'|'unsafe-eval'|\*/, `${path}: nothing unsafe`);
      assert.equal(r.headers.get("x-content-type-options"), "nosniff", path);
      assert.equal(r.headers.get("referrer-policy"), "strict-origin-when-cross-origin", path);
      if (r.headers.get("content-type").startsWith("text/html")) {
        const html = await r.text();
        for (const tag of html.match(/<script\b[^>]*>/g) ?? []) assert.match(tag, /\ssrc="\//, `${path}: ${tag}`);
        assert.doesNotMatch(html, /<style|\sstyle=|\son[a-z]+=|javascript:/i, `${path}: inline style or handler`);
        assert.doesNotMatch(html, /<[a-z]+\b[^>]*\s(src|href|action)="(https?:)?\/\//i, `${path}: reference to another origin`);
      } else {
        await r.arrayBuffer();
      }
    }
    const r = await fetch(`${origin}/_headers`);
    await r.body?.cancel();
    assert.notEqual(r.status, 200, "_headers itself is not served");
  });

  test("an unknown page gets the site's 404 page; an unknown API route keeps its JSON error", async () => {
    let r = await fetch(`${origin}/no-such-page`);
    assert.equal(r.status, 404);
    assert.match(r.headers.get("content-type"), /^text\/html/);
    assert.match(await r.text(), /Not found/i);
    r = await fetch(`${origin}/v1/no-such-route`);
    assert.equal(r.status, 404);
    assert.equal((await r.json()).error.code, "not_found");
  });

  test("no unload listener, CSP violation, console error or foreign request on any page", async () => {
    const bad = events.map((e) => `${e.kind}: ${e.detail} (${e.url})`);
    assert.deepEqual(bad, [], "the whole suite ran clean");
    // The watchers do see these when they happen.
    const a = await context();
    const p = await page(a, "/");
    await waitText(p, F("online"), "1");
    await p.evaluate(() => {
      window.addEventListener("beforeunload", () => {});
      window.onunload = () => {};
      const s = document.createElement("script");
      s.textContent = "window.inlineRan = true";
      document.body.append(s);
    });
    const seen = await until(() => ["unload", "csp"].every((k) => events.some((e) => e.kind === k)), 3000, 50);
    assert.ok(seen, `watchers saw the planted listener and inline script: ${JSON.stringify(events)}`);
    assert.equal(events.filter((e) => e.kind === "unload").length, 2);
    assert.equal(await p.evaluate(() => window.inlineRan), undefined, "the CSP blocked the inline script");
  });
});

// What a deploy serves: edge/wrangler.toml's [assets] alone, without the dev-only www-dev/
// (tests/deploy-assets.test.mjs lists that set). The demo works and shows no sign-in, the
// page asks for no dev-only file, and nothing alarming reaches the console.
describe("the deploy's asset set in Chromium", () => {
  let server, browser;
  before(async () => {
    [server, browser] = await Promise.all([startWrangler({ devAssets: false }), launch()]);
  });
  after(async () => {
    await browser?.close();
    await server?.stop();
  });

  test("no dev sign-in file, no request for it: the page counts a guest and says sign-in is unavailable", async () => {
    const r = await fetch(`${server.origin}/dev-signin.js`);
    assert.equal(r.status, 404, "/dev-signin.js is not served");
    await r.body?.cancel();
    const events = [];
    const { ctx } = await newWatchedContext(browser, server.origin, { events });
    const requested = [];
    ctx.on("request", (q) => requested.push(new URL(q.url()).pathname));
    try {
      for (const path of ["/", "/about"]) {
        const p = await ctx.newPage();
        await p.goto(`${server.origin}${path}`);
        await waitText(p, F("online"), "1");
        assert.equal(await p.locator("[data-whoami]").first().textContent(), "You are counted as a guest", path);
        await p.close();
      }
      const p = await ctx.newPage();
      await p.goto(`${server.origin}/`);
      await waitText(p, F("online"), "1");
      assert.equal(await p.locator("#signin-form").isHidden(), true, "no sign-in form");
      assert.equal(await p.locator("#signin-unavailable").isVisible(), true, "says sign-in is unavailable");
      await p.goto("about:blank");
      assert.ok(requested.includes("/demo.js"), `the pages ran: ${requested.join(" ")}`);
      assert.deepEqual(requested.filter((path) => /dev/.test(path)), [], "no dev-only file requested");
      assert.deepEqual(events.map((e) => `${e.kind}: ${e.detail} (${e.url})`), [], "no console error, CSP violation or unload listener");
    } finally {
      await ctx.close();
    }
  });
});
