// The client in a real browser (Debian's Chromium) against a fake API: the shipped
// www/herenow/herenow.js, imported by a blank page from a static server on 127.0.0.1, its
// fetch and sendBeacon replaced by a stub that records every call. The page lifecycle
// (visibility, pagehide/pageshow, freeze/resume), timing and backoff, outputs, member
// tokens, watch-only, navigations, the cookie and the options' errors. The decisions are
// the Rust machine's (tested natively by `cargo test -p herenow-client`); these tests check
// the wiring that carries them out. Run by `make test-wasm`.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { createServer } from "node:http";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { ROOT } from "./lib/miniflare.mjs";
import { launchChromium } from "./lib/browser.mjs";

const PORT = 8801;
const ORIGIN = `http://127.0.0.1:${PORT}`;
const CLIENT = join(ROOT, "www", "herenow", "herenow.js");
/** How late a timer may fire on a busy 2-core test machine. */
const SLACK_MS = 150;

/**
 * In the page before anything else: the fake API. `__hn.queue` holds scripted responses,
 * taken in order (the first whose optional `match` is part of the URL), then
 * `__hn.fallback`: `{status, body, headers}`, `{networkError: true}` or `{hang: true}` (a
 * fetch that only ends when aborted). Every fetch and beacon is recorded with its time;
 * warnings, anything thrown into the page and every listener type are recorded too.
 * `__hn.reset()` clears the records and scripts (for a second client in the same page);
 * `__hn.until(fn, ms)` polls `fn` every 5 ms, in the page, for at most `ms`.
 */
function stub() {
  const hn = (globalThis.__hn = {});
  hn.reset = () => Object.assign(hn, {
    calls: [], beacons: [], warnings: [], thrown: [], aborted: 0, queue: [], vis: "visible",
    fallback: { status: 200, body: {
      online: 3, tabs: 4, members: 1, guests: 2, idle: 1, page: 2,
      pages: [{ page: "/", online: 2 }], window_s: 60, as_of: 1, next_heartbeat_ms: 60000 } },
  });
  hn.reset();
  hn.listenerTypes = [];
  hn.until = async (fn, ms) => {
    const end = performance.now() + ms;
    for (;;) {
      if (fn()) return true;
      if (performance.now() >= end) return false;
      await new Promise((r) => setTimeout(r, 5));
    }
  };
  globalThis.fetch = (url, init) => {
    init = init || {};
    const call = { url: String(url), method: init.method || "GET", t: performance.now(),
      body: typeof init.body === "string" ? JSON.parse(init.body) : null };
    hn.calls.push(call);
    const i = hn.queue.findIndex((r) => !r.match || call.url.includes(r.match));
    const r = i >= 0 ? hn.queue.splice(i, 1)[0] : hn.fallback;
    if (r.networkError) return Promise.reject(new TypeError("Failed to fetch"));
    if (r.hang) return new Promise((_, reject) => {
      if (init.signal) init.signal.addEventListener("abort", () => {
        hn.aborted++;
        reject(new DOMException("aborted", "AbortError"));
      });
    });
    return Promise.resolve(new Response(JSON.stringify(r.body), {
      status: r.status, headers: Object.assign({ "content-type": "application/json" }, r.headers) }));
  };
  Object.defineProperty(navigator, "sendBeacon", { configurable: true, writable: true,
    value: (url, body) => {
      hn.beacons.push({ url: String(url), body: JSON.parse(body), t: performance.now(), type: typeof body });
      return true;
    } });
  Object.defineProperty(document, "visibilityState", { configurable: true, get: () => hn.vis });
  console.warn = (...args) => { hn.warnings.push(args.join(" ")); };
  addEventListener("error", (e) => hn.thrown.push(String(e.message)));
  addEventListener("unhandledrejection", (e) => hn.thrown.push(String(e.reason)));
  for (const target of [window, document]) {
    const add = target.addEventListener;
    target.addEventListener = function (type, ...rest) {
      hn.listenerTypes.push(type);
      return add.call(this, type, ...rest);
    };
  }
}

/** The server's visitor-id rule (herenow_core::protocol::is_visitor_id), written out. */
const VISITOR_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

let server;
let browser;

before(async () => {
  const client = readFileSync(CLIENT);
  server = createServer((req, res) => {
    if (req.url.startsWith("/herenow/herenow.js")) {
      res.writeHead(200, { "content-type": "text/javascript" });
      return res.end(client);
    }
    res.writeHead(200, { "content-type": "text/html" });
    res.end("<!doctype html><html><head><title>client test</title></head><body></body></html>");
  });
  await new Promise((r) => server.listen(PORT, "127.0.0.1", r));
  browser = await launchChromium();
});

after(async () => {
  await browser?.close();
  await new Promise((r) => server?.close(r) ?? r());
});

/** A fresh context and page with the stub, at ORIGIN/; helpers bound to it. */
async function open(t) {
  const context = await browser.newContext();
  const page = await context.newPage();
  await page.addInitScript(stub);
  await page.goto(`${ORIGIN}/`);
  t.after(() => context.close());
  /** Runs an async function body in the page; returns its result. */
  const js = (body) => page.evaluate(`(async () => { ${body} })()`);
  const p = {
    page,
    js,
    /** Starts a client with the options the expression makes; the handle is `h`. */
    start: (options) => js(`const { start } = await import("/herenow/herenow.js"); window.h = await start(${options});`),
    /** The message `start` rejects with (it must reject, with an Error). */
    startError: (options) => js(`const { start } = await import("/herenow/herenow.js");
      try { await start(${options}); return "resolved"; } catch (e) { return e instanceof Error ? e.message : "not an Error: " + e; }`),
    /** Whether the expression becomes truthy within `ms` (polled in the page). */
    until: (expr, ms) => js(`return await __hn.until(() => (${expr}), ${ms});`),
    sleep: (ms) => new Promise((r) => setTimeout(r, ms)),
    heartbeats: () => js("return __hn.calls.filter(c => c.url.endsWith('/v1/heartbeat')).length"),
    beacons: () => js("return __hn.beacons.length"),
    /** Whether the heartbeat count reaches exactly `n` within 50 ms (well inside the 90 ms a
     * timer could take): "at once", after only the microtasks that resolve the token. */
    atOnce: (n) => js(`return await __hn.until(() => __hn.calls.length >= ${n}, 50) &&
      __hn.calls.filter(c => c.url.endsWith('/v1/heartbeat')).length === ${n};`),
    setVisibility: (state) => js(`__hn.vis = ${JSON.stringify(state)}; document.dispatchEvent(new Event('visibilitychange'));`),
    transition: (kind, persisted) => js(`window.dispatchEvent(new PageTransitionEvent(${JSON.stringify(kind)}, { persisted: ${persisted} }));`),
    documentEvent: (kind) => js(`document.dispatchEvent(new Event(${JSON.stringify(kind)}));`),
    /** Heartbeats every ~100 ms, so a stopped timer shows within a few hundred. */
    fast: () => js("__hn.fallback.body.next_heartbeat_ms = 100;"),
    cookieValues: () => js(`return document.cookie.split(';').map(p => p.trim())
      .filter(p => p.startsWith('herenow_vid=')).map(p => p.slice(12));`),
    warnings: () => js("return __hn.warnings.length"),
    /** Gaps between consecutive fetches, in ms. */
    gaps: () => js("const t = __hn.calls.map(c => c.t); return t.slice(1).map((x, i) => x - t[i]);"),
    nothingThrown: async () => assert.deepEqual(await js("return __hn.thrown"), [], "thrown into the page"),
  };
  return p;
}

describe("the client in Chromium (fake API)", () => {
  describe("lifecycle", () => {
    test("starts with one heartbeat at once", async (t) => {
      const p = await open(t);
      await p.start("{ endpoint: '', site: 'demo' }");
      assert.ok(await p.atOnce(1));
      const call = await p.js("return __hn.calls[0]");
      assert.equal(call.url, "/v1/heartbeat");
      assert.equal(call.method, "POST");
      assert.equal(call.body.site, "demo");
      assert.equal(call.body.state, "active");
      assert.equal(call.body.page, "/");
      assert.match(call.body.tab, /^[A-Za-z0-9_-]{16}$/);
      assert.ok(!("member_token" in call.body));
      await p.sleep(100);
      assert.equal(await p.heartbeats(), 1, "the next one waits for next_heartbeat_ms");
      await p.js("h.stop()");
      await p.nothingThrown();
    });

    test("never registers unload or beforeunload", async (t) => {
      const p = await open(t);
      await p.start("{ endpoint: '', site: 'demo' }");
      const types = await p.js("return __hn.listenerTypes");
      for (const k of ["visibilitychange", "pagehide", "pageshow", "freeze", "resume"]) assert.ok(types.includes(k), `${k}: ${types}`);
      assert.ok(!types.includes("unload") && !types.includes("beforeunload"), String(types));
      await p.js("h.stop()");
    });

    test("hidden sends idle once and stops the timer; visible restarts", async (t) => {
      const p = await open(t);
      await p.fast();
      await p.start("{ endpoint: '', site: 'demo' }");
      assert.ok(await p.until("__hn.calls.length >= 2", 1000), "timer");
      await p.setVisibility("hidden");
      await p.setVisibility("hidden");
      assert.equal(await p.beacons(), 1, "one idle beacon");
      const b = await p.js("return __hn.beacons[0]");
      assert.equal(b.url, "/v1/heartbeat");
      assert.equal(b.body.state, "idle");
      assert.equal(b.type, "string");
      const before = await p.heartbeats();
      await p.sleep(400);
      assert.equal(await p.heartbeats(), before, "the timer stopped while hidden");
      await p.setVisibility("visible");
      assert.ok(await p.atOnce(before + 1), "a heartbeat at once");
      assert.ok(await p.until(`__hn.calls.length >= ${before + 3}`, 1000), "the timer restarted");
      assert.equal(await p.js("return __hn.calls.at(-1).body.state"), "active");
      assert.equal(await p.beacons(), 1);
      await p.js("h.stop()");
      await p.nothingThrown();
    });

    test("pagehide leaves and aborts the fetch; only a persisted pageshow rejoins", async (t) => {
      const p = await open(t);
      await p.fast();
      await p.js("__hn.queue.push({ hang: true })");
      await p.start("{ endpoint: '', site: 'demo' }");
      assert.ok(await p.until("__hn.calls.length === 1", 1000));
      await p.transition("pagehide", true);
      assert.equal(await p.beacons(), 1);
      assert.equal(await p.js("return __hn.beacons[0].url"), "/v1/leave");
      assert.ok(await p.until("__hn.aborted === 1", 1000), "fetch aborted");
      // Chromium's order on the way into and back from the back/forward cache.
      await p.setVisibility("hidden");
      await p.documentEvent("freeze");
      await p.documentEvent("resume");
      await p.setVisibility("visible");
      await p.sleep(300);
      assert.equal(await p.beacons(), 1, "no idle beacon after leaving");
      assert.equal(await p.heartbeats(), 1, "no heartbeat after leaving");
      await p.transition("pageshow", false);
      await p.sleep(50);
      assert.equal(await p.heartbeats(), 1, "a first load's pageshow is not a restore");
      await p.transition("pageshow", true);
      assert.ok(await p.atOnce(2), "rejoined at once");
      assert.ok(await p.until("__hn.calls.length >= 4", 1000), "timer again");
      await p.js("h.stop()");
      await p.nothingThrown();
    });

    test("freeze stops and resume restarts", async (t) => {
      const p = await open(t);
      await p.fast();
      await p.start("{ endpoint: '', site: 'demo' }");
      assert.ok(await p.until("__hn.calls.length >= 2", 1000));
      await p.documentEvent("freeze");
      assert.equal(await p.beacons(), 1);
      assert.equal(await p.js("return __hn.beacons[0].body.state"), "idle");
      const before = await p.heartbeats();
      await p.sleep(300);
      assert.equal(await p.heartbeats(), before, "no timer while frozen");
      await p.documentEvent("resume");
      assert.ok(await p.atOnce(before + 1), "a heartbeat at once");
      await p.js("h.stop()");
      await p.nothingThrown();
    });

    test("stop leaves and removes everything", async (t) => {
      const p = await open(t);
      await p.fast();
      await p.start("{ endpoint: '', site: 'demo' }");
      assert.ok(await p.until("__hn.calls.length >= 2", 1000));
      await p.js("h.stop()");
      assert.equal(await p.beacons(), 1);
      assert.equal(await p.js("return __hn.beacons[0].url"), "/v1/leave");
      const before = await p.heartbeats();
      await p.setVisibility("hidden");
      await p.setVisibility("visible");
      await p.transition("pagehide", true);
      await p.transition("pageshow", true);
      await p.sleep(300);
      assert.equal(await p.heartbeats(), before, "no heartbeat after stop");
      assert.equal(await p.beacons(), 1, "no beacon after stop");
      await p.js("h.stop()");
      assert.equal(await p.beacons(), 1, "stop is idempotent");
      await p.nothingThrown();
    });

    test("starting hidden sends idle and waits", async (t) => {
      const p = await open(t);
      await p.fast();
      await p.js("__hn.vis = 'hidden'");
      await p.start("{ endpoint: '', site: 'demo' }");
      await p.sleep(250);
      assert.equal(await p.heartbeats(), 0);
      assert.equal(await p.beacons(), 1);
      assert.equal(await p.js("return __hn.beacons[0].body.state"), "idle");
      await p.setVisibility("visible");
      assert.ok(await p.atOnce(1));
      await p.js("h.stop()");
      await p.nothingThrown();
    });
  });

  describe("timing", () => {
    test("heartbeats follow the server's interval within ten percent", async (t) => {
      const p = await open(t);
      await p.js("__hn.fallback.body.next_heartbeat_ms = 300");
      await p.start("{ endpoint: '', site: 'demo' }");
      assert.ok(await p.until("__hn.calls.length >= 7", 4000));
      await p.js("h.stop()");
      const gaps = await p.gaps();
      for (const g of gaps) assert.ok(g >= 268 && g <= 330 + SLACK_MS, `gap ${g} outside 300 ms ±10%: ${gaps}`);
      assert.ok(Math.max(...gaps) - Math.min(...gaps) > 2, `no jitter: ${gaps}`);
      await p.nothingThrown();
    });

    test("a silly interval is clamped and a missing one defaulted", async (t) => {
      const p = await open(t);
      await p.js("__hn.fallback.body.next_heartbeat_ms = 0");
      await p.start("{ endpoint: '', site: 'demo' }");
      assert.ok(await p.until("__hn.calls.length >= 4", 2000));
      await p.js("h.stop()");
      const gaps = await p.gaps();
      assert.ok(gaps.every((g) => g >= 88), String(gaps));
      await p.js("__hn.reset(); delete __hn.fallback.body.next_heartbeat_ms");
      await p.start("{ endpoint: '', site: 'demo' }");
      await p.sleep(600);
      assert.equal(await p.heartbeats(), 1, "the 15 s default applies");
      await p.js("h.stop()");
      await p.nothingThrown();
    });

    test("failures back off exponentially, with one warning per streak", async (t) => {
      const p = await open(t);
      await p.js(`__hn.queue.push(
        { networkError: true },
        { networkError: true },
        { status: 500, body: { error: { code: 'internal', message: 'boom' } } },
        { status: 200, body: Object.assign({}, __hn.fallback.body, { next_heartbeat_ms: 100 }) },
        { networkError: true })`);
      await p.start("{ endpoint: '', site: 'demo' }");
      assert.ok(await p.until("__hn.calls.length >= 6", 9000), "retries");
      await p.js("h.stop()");
      const g = await p.gaps();
      // Full jitter: attempt n waits up to 1 s · 2^n.
      assert.ok(g[0] <= 1000 + SLACK_MS, String(g));
      assert.ok(g[1] <= 2000 + SLACK_MS, String(g));
      assert.ok(g[2] <= 4000 + SLACK_MS, String(g));
      assert.ok(g[3] >= 88 && g[3] <= 110 + SLACK_MS, `success resets: ${g}`);
      assert.ok(g[4] <= 1000 + SLACK_MS, `a new streak starts at 1 s: ${g}`);
      const warnings = await p.js("return __hn.warnings");
      assert.equal(warnings.length, 2, "one warning per streak");
      assert.match(warnings[0], /^herenow:.*Failed to fetch/);
      await p.nothingThrown();
    });

    test("backoff is capped inside the server's window", async (t) => {
      // One good answer announces a 1.5 s window and a 250 ms interval, so retries come
      // within 1.25 s; uncapped, the 4th and later would wait up to 8, 16, 32 s.
      const p = await open(t);
      await p.js(`__hn.queue.push({ status: 200, body: Object.assign({}, __hn.fallback.body,
        { window_s: 1.5, next_heartbeat_ms: 250 }) });
        __hn.fallback = { networkError: true };`);
      await p.start("{ endpoint: '', site: 'demo' }");
      assert.ok(await p.until("__hn.calls.length >= 9", 12_000), "retries");
      await p.js("h.stop()");
      const g = await p.gaps();
      assert.ok(g[0] >= 223 && g[0] <= 275 + SLACK_MS, String(g));
      assert.ok(g.slice(1).every((d) => d <= 1250 + SLACK_MS), String(g));
      assert.equal(await p.warnings(), 1);
      await p.nothingThrown();
    });

    test("Retry-After is honoured on 429 and 503 only", async (t) => {
      const p = await open(t);
      for (const [status, retryAfter, min, max] of [
        [429, "1", 998, 1000 + SLACK_MS],
        [503, " 1 ", 998, 1000 + SLACK_MS],
        // Not honoured on a 500: full jitter under 1 s for a first failure.
        [500, "30", 0, 1000 + SLACK_MS],
      ]) {
        await p.js(`__hn.reset(); __hn.queue.push({ status: ${status}, headers: { 'Retry-After': '${retryAfter}' },
          body: { error: { code: 'rate_limited', message: 'slow down' } } })`);
        await p.start("{ endpoint: '', site: 'demo' }");
        assert.ok(await p.until("__hn.calls.length >= 2", 3000), String(status));
        await p.js("h.stop()");
        const g = (await p.gaps())[0];
        assert.ok(g >= min && g <= max, `${status}: retried after ${g} ms`);
        const warning = await p.js("return __hn.warnings.join('|')");
        assert.ok(warning.includes(String(status)) && warning.includes("slow down"), warning);
      }
      await p.nothingThrown();
    });

    test("a body that is not a count is a failure too", async (t) => {
      const p = await open(t);
      await p.js("__hn.queue.push({ status: 200, body: 'not a count' })");
      await p.start("{ endpoint: '', site: 'demo' }");
      assert.ok(await p.until("__hn.calls.length >= 2", 2000));
      await p.js("h.stop()");
      assert.equal(await p.warnings(), 1);
      await p.nothingThrown();
    });
  });

  describe("outputs and the API", () => {
    test("numbers go into data-herenow elements, the record as the visitor's locale shows it", async (t) => {
      const p = await open(t);
      await p.js(`document.body.insertAdjacentHTML('beforeend', \`<div id=out>
          <span data-herenow=online>?</span><b data-herenow=online>?</b>
          <span data-herenow=tabs></span><span data-herenow=members></span>
          <span data-herenow=guests></span><span data-herenow=idle></span>
          <span data-herenow=page>keep</span><span data-herenow=bogus>keep</span>
          <span data-herenow=online><i>child</i></span>
          <span data-herenow=record>keep</span><span data-herenow=record-at>keep</span></div>\`);
        delete __hn.fallback.body.page;`);
      await p.start("{ endpoint: '', site: 'demo' }");
      assert.ok(await p.until("document.querySelector('#out b').textContent === '3'", 1000));
      const texts = () => p.js("return [...document.querySelectorAll('#out [data-herenow]')].map(e => e.textContent).join(',')");
      assert.equal(await texts(), "3,3,4,1,2,1,keep,keep,3,keep,keep", "no record: its elements are left alone");
      assert.ok(await p.js("return !document.querySelector('#out i')"), "text only");
      await p.js("h.stop()");

      // A count carrying the site's record (issue 16): its number and its day.
      const at = Date.UTC(2026, 10, 30, 12);
      await p.js(`__hn.reset(); __hn.fallback.body.record = { online: 12345, at: ${at} };`);
      await p.start("{ endpoint: '', site: 'demo' }");
      assert.ok(await p.until("document.querySelector('[data-herenow=record]').textContent !== 'keep'", 1000));
      const [record, day, wantRecord, wantDay] = await p.js(`return [
        document.querySelector('[data-herenow=record]').textContent,
        document.querySelector('[data-herenow=record-at]').textContent,
        (12345).toLocaleString(), new Date(${at}).toLocaleDateString()]`);
      assert.equal(record, wantRecord);
      assert.equal(day, wantDay);
      await p.js("h.stop()");
      await p.nothingThrown();
    });

    test("counts reach the event and the callback, the record with them", async (t) => {
      const p = await open(t);
      await p.js(`__hn.events = []; __hn.counts = [];
        __hn.fallback.body.record = { online: 7, at: 1764504000000 };
        document.addEventListener('herenow:count', e => __hn.events.push(e.detail))`);
      await p.start("{ endpoint: '', site: 'demo', onCount: c => { __hn.counts.push(c); throw new Error('host bug'); } }");
      assert.ok(await p.until("__hn.counts.length === 1", 1000));
      assert.ok(await p.js("return __hn.events.length === 1 && __hn.events[0] === __hn.counts[0]"));
      const c = await p.js("return __hn.counts[0]");
      assert.equal(c.online, 3);
      assert.equal(c.pages[0].online, 2);
      assert.deepEqual(c.record, { online: 7, at: 1764504000000 });
      await p.js("h.stop()");
      await p.nothingThrown();
    });

    test("count() returns the last count or fetches one", async (t) => {
      const p = await open(t);
      await p.js("__hn.queue.push({ hang: true, match: '/v1/heartbeat' })");
      await p.start("{ endpoint: 'https://api.example', site: 'demo', page: '/a b' }");
      assert.equal(await p.js("return (await h.count()).online"), 3);
      assert.equal(await p.js("return __hn.calls.find(c => c.method === 'GET').url"),
        "https://api.example/v1/count?site=demo&page=%2Fa%20b");
      await p.js("h.stop()");
      // After a heartbeat's answer, count() returns it without fetching.
      await p.js("__hn.reset(); __hn.fallback.body.online = 9");
      await p.start("{ endpoint: '', site: 'demo' }");
      assert.ok(await p.until("__hn.calls.length === 1", 1000));
      await p.sleep(20);
      assert.equal(await p.js("return (await h.count()).online"), 9);
      assert.equal(await p.js("return __hn.calls.length"), 1);
      await p.js("h.stop()");
      // A failing count() rejects with an Error (for the caller; nothing reaches the page).
      await p.js("__hn.reset(); __hn.queue.push({ hang: true, match: '/v1/heartbeat' }, { status: 503, body: {}, match: '/v1/count' })");
      await p.start("{ endpoint: '', site: 'demo' }");
      assert.match(await p.js("try { await h.count(); return 'resolved'; } catch (e) { return e instanceof Error && e.message; }"), /^herenow: .*503/);
      await p.js("h.stop()");
      await p.nothingThrown();
    });

    test("member tokens are passed through", async (t) => {
      const p = await open(t);
      await p.start("{ endpoint: '', site: 'demo', memberToken: 'jwt.a.b' }");
      assert.ok(await p.until("__hn.calls.length === 1", 1000));
      assert.equal(await p.js("return __hn.calls[0].body.member_token"), "jwt.a.b");
      await p.js("h.stop()");
      assert.equal(await p.js("return __hn.beacons[0].body.member_token"), "jwt.a.b");

      await p.js("__hn.reset()");
      await p.start("{ endpoint: '', site: 'demo', memberToken: async () => { await null; return 'async.tok'; } }");
      assert.ok(await p.until("__hn.calls.length === 1", 1000));
      assert.equal(await p.js("return __hn.calls[0].body.member_token"), "async.tok");
      await p.setVisibility("hidden");
      assert.equal(await p.js("return __hn.beacons[0].body.member_token"), "async.tok", "beacons use the last resolved token");
      await p.setVisibility("visible");
      await p.js("h.stop()");

      for (const provider of [
        "() => { throw new Error('no session') }",
        "() => Promise.reject(new Error('no session'))",
        "() => 42",
        "() => ''",
      ]) {
        await p.js("__hn.reset()");
        await p.start(`{ endpoint: '', site: 'demo', memberToken: ${provider} }`);
        assert.ok(await p.until("__hn.calls.length === 1", 1000), provider);
        assert.ok(await p.js("return !('member_token' in __hn.calls[0].body)"), provider);
        await p.js("h.stop()");
      }
      await p.nothingThrown();
    });

    test("the endpoint is joined without double slashes", async (t) => {
      const p = await open(t);
      await p.start("{ endpoint: 'http://127.0.0.1:9/base/', site: 'demo' }");
      assert.ok(await p.until("__hn.calls.length === 1", 1000));
      assert.equal(await p.js("return __hn.calls[0].url"), "http://127.0.0.1:9/base/v1/heartbeat");
      await p.js("h.stop()");
      assert.equal(await p.js("return __hn.beacons[0].url"), "http://127.0.0.1:9/base/v1/leave");
      await p.nothingThrown();
    });

    test("bad options reject with a clear error", async (t) => {
      const p = await open(t);
      for (const [options, needle] of [
        ["undefined", "options"],
        ["'demo'", "options"],
        ["{ endpoint: '' }", "site"],
        ["{ endpoint: '', site: '' }", "site"],
        ["{ endpoint: '', site: 'a b' }", "site"],
        ["{ endpoint: '', site: 'x'.repeat(65) }", "site"],
        ["{ site: 'demo' }", "endpoint"],
        ["{ endpoint: 42, site: 'demo' }", "endpoint"],
        ["{ endpoint: 'ftp://x', site: 'demo' }", "endpoint"],
        ["{ endpoint: 'http://a b', site: 'demo' }", "endpoint"],
        ["{ endpoint: '', site: 'demo', page: 'nope' }", "page"],
        ["{ endpoint: '', site: 'demo', memberToken: {} }", "memberToken"],
        ["{ endpoint: '', site: 'demo', cookie: 'no' }", "cookie"],
        ["{ endpoint: '', site: 'demo', cookieMaxAge: -1 }", "cookieMaxAge"],
        ["{ endpoint: '', site: 'demo', cookieMaxAge: NaN }", "cookieMaxAge"],
        ["{ endpoint: '', site: 'demo', onCount: 5 }", "onCount"],
        ["{ endpoint: '', site: 'demo', track: 'no' }", "track"],
      ]) {
        const message = await p.startError(options);
        assert.ok(message.startsWith("herenow: ") && message.includes(needle), `${options}: ${message}`);
      }
      assert.equal(await p.js("return __hn.calls.length"), 0);
      assert.equal(await p.beacons(), 0);
      await p.nothingThrown();
    });
  });

  describe("embeds", () => {
    const REFUSED = "__hn.queue.push({ status: 401, body: { error: { code: 'invalid_token', message: 'token expired' } } })";

    test("a refused fixed token counts a guest, with one warning", async (t) => {
      const p = await open(t);
      await p.fast();
      await p.js(REFUSED);
      await p.start("{ endpoint: '', site: 'demo', memberToken: 'jwt.a.b' }");
      assert.ok(await p.until("__hn.calls.length >= 2", 1000));
      assert.equal(await p.js("return __hn.calls[0].body.member_token"), "jwt.a.b");
      assert.ok(await p.js("return !('member_token' in __hn.calls[1].body)"), "resent at once without the token");
      assert.ok(await p.until("__hn.calls.length >= 4", 2000), "beats go on");
      assert.ok(await p.js("return __hn.calls.slice(1).every(c => !('member_token' in c.body))"));
      assert.equal(await p.warnings(), 1);
      assert.match(await p.js("return __hn.warnings[0]"), /member token refused/);
      await p.js("h.stop()");
      assert.ok(await p.js("return !('member_token' in __hn.beacons[0].body)"), "the leave goes without it too");
      await p.nothingThrown();
    });

    test("a token provider is asked again on a 401", async (t) => {
      const p = await open(t);
      await p.fast();
      await p.js(REFUSED + "; __hn.asked = 0");
      await p.start("{ endpoint: '', site: 'demo', memberToken: () => 'tok' + (++__hn.asked) }");
      assert.ok(await p.until("__hn.calls.length >= 2", 1000));
      assert.equal(await p.js("return __hn.calls[0].body.member_token"), "tok1");
      assert.equal(await p.js("return __hn.calls[1].body.member_token"), "tok2");
      assert.equal(await p.warnings(), 1);
      await p.js("h.stop()");
      // A provider that keeps giving the refused token: that heartbeat goes as a guest's.
      await p.js("__hn.reset(); __hn.fallback.body.next_heartbeat_ms = 100; " + REFUSED);
      await p.start("{ endpoint: '', site: 'demo', memberToken: () => 'same.bad.tok' }");
      assert.ok(await p.until("__hn.calls.length >= 3", 2000));
      assert.ok(await p.js("return __hn.calls.slice(1).every(c => !('member_token' in c.body))"));
      await p.js("h.stop()");
      await p.nothingThrown();
    });

    test("watch-only fetches counts and sends nothing", async (t) => {
      const p = await open(t);
      await p.fast();
      await p.js("__hn.seen = 0");
      await p.start("{ endpoint: '', site: 'demo', track: false, onCount: () => __hn.seen++ }");
      assert.ok(await p.until("__hn.calls.length >= 2 && __hn.seen >= 2", 2000));
      assert.ok(await p.js("return __hn.calls.every(c => c.method === 'GET' && c.url.startsWith('/v1/count?site=demo&page='))"),
        JSON.stringify(await p.js("return __hn.calls")));
      assert.deepEqual(await p.cookieValues(), [], "no cookie");
      await p.setVisibility("hidden");
      const hiddenAt = await p.js("return __hn.calls.length");
      await p.sleep(400); // four intervals
      assert.ok((await p.js("return __hn.calls.length")) <= hiddenAt + 1);
      await p.setVisibility("visible");
      await p.js("h.stop()");
      assert.equal(await p.beacons(), 0, "no idle or leave beacon");
      await p.nothingThrown();
    });

    for (const navigationApi of [true, false]) {
      test(`navigations move the tab and setPage pins it (${navigationApi ? "Navigation API" : "history wrappers"})`, async (t) => {
        const p = await open(t);
        if (!navigationApi) await p.js("delete window.navigation; delete Window.prototype.navigation; if (self.navigation) throw new Error('still there')");
        await p.start("{ endpoint: '', site: 'demo' }");
        assert.ok(await p.until("__hn.calls.length === 1", 1000));
        const tab = await p.js("return __hn.calls[0].body.tab");
        await p.js("history.pushState({}, '', '/spa-pushed')");
        assert.ok(await p.until("__hn.calls.length === 2", 1000), "pushState beats at once");
        assert.equal(await p.js("return __hn.calls[1].body.page"), "/spa-pushed");
        assert.equal(await p.js("return __hn.calls[1].body.tab"), tab);
        await p.js("history.replaceState({}, '', '/spa-replaced')");
        assert.ok(await p.until("__hn.calls.length === 3", 1000), "replaceState beats at once");
        assert.equal(await p.js("return __hn.calls[2].body.page"), "/spa-replaced");
        await p.js("h.setPage('/chosen')");
        assert.ok(await p.until("__hn.calls.length === 4", 1000), "setPage beats at once");
        assert.equal(await p.js("return __hn.calls[3].body.page"), "/chosen");
        await p.js("h.setPage('nope'); history.pushState({}, '', '/spa-ignored'); h.setPage('/chosen')");
        await p.sleep(50);
        assert.equal(await p.heartbeats(), 4, "setPage turned following off");
        await p.js("h.stop()");

        await p.js("__hn.reset()");
        await p.start("{ endpoint: '', site: 'demo', page: '/pinned' }");
        assert.ok(await p.until("__hn.calls.length === 1", 1000));
        await p.js("history.pushState({}, '', '/spa-pinned')");
        await p.sleep(50);
        assert.equal(await p.heartbeats(), 1, "a given page is pinned");
        await p.js("h.stop()");
        await p.nothingThrown();
      });
    }
  });

  describe("the visitor-id cookie", () => {
    const OPTIONS = "{ endpoint: '', site: 'demo' }";
    /** The visitor id of the first heartbeat. */
    const sentVisitor = async (p) => {
      assert.ok(await p.until("__hn.calls.length > 0", 2000), "no heartbeat");
      return p.js("return __hn.calls[0].body.visitor");
    };

    test("created when missing, with Max-Age 1800", async (t) => {
      const p = await open(t);
      await p.start(OPTIONS);
      const sent = await sentVisitor(p);
      assert.match(sent, VISITOR_ID);
      assert.deepEqual(await p.cookieValues(), [sent]);
      const [cookie] = await p.page.context().cookies();
      assert.ok(Math.abs(cookie.expires - Date.now() / 1000 - 1800) < 60, `expires ${cookie.expires}`);
      await p.js("h.stop()");
      await p.nothingThrown();
    });

    test("reused, by a second page instance too", async (t) => {
      const p = await open(t);
      const id = "0f2c7e5a-1b3d-4e6f-8a9b-0c1d2e3f4a5b";
      await p.js(`document.cookie = 'herenow_vid=${id}; Path=/'`);
      await p.start(OPTIONS);
      assert.equal(await sentVisitor(p), id);
      assert.deepEqual(await p.cookieValues(), [id]);
      const tab = await p.js("h.stop(); return __hn.calls[0].body.tab");
      await p.js("__hn.reset()");
      await p.start(OPTIONS);
      assert.equal(await sentVisitor(p), id);
      assert.notEqual(await p.js("return __hn.calls[0].body.tab"), tab, "a new tab");
      await p.js("h.stop()");
      await p.nothingThrown();
    });

    test("malformed and foreign values are replaced, never sent", async (t) => {
      const p = await open(t);
      for (const bad of [
        "garbage",
        "0F2C7E5A-1B3D-4E6F-8A9B-0C1D2E3F4A5B",
        "0f2c7e5a-1b3d-1e6f-8a9b-0c1d2e3f4a5b",
        "0f2c7e5a1b3d4e6f8a9b0c1d2e3f4a5b",
        "",
      ]) {
        await p.js(`__hn.reset(); document.cookie = 'herenow_vid=${bad}; Path=/'`);
        await p.start(OPTIONS);
        const sent = await sentVisitor(p);
        assert.notEqual(sent, bad);
        assert.match(sent, VISITOR_ID);
        assert.deepEqual(await p.cookieValues(), [sent]);
        await p.js("h.stop(); document.cookie = 'herenow_vid=; Path=/; Max-Age=0'");
      }
      await p.nothingThrown();
    });

    test("cookie: false keeps the id in memory", async (t) => {
      const p = await open(t);
      await p.start("{ endpoint: '', site: 'demo', cookie: false }");
      const first = await sentVisitor(p);
      assert.match(first, VISITOR_ID);
      assert.deepEqual(await p.cookieValues(), []);
      await p.js("h.stop(); __hn.reset()");
      await p.start("{ endpoint: '', site: 'demo', cookie: false }");
      assert.notEqual(await sentVisitor(p), first, "a memory-only id is per page instance");
      assert.deepEqual(await p.cookieValues(), []);
      await p.js("h.stop()");
      await p.nothingThrown();
    });

    test("Global Privacy Control keeps the id in memory by default", async (t) => {
      const p = await open(t);
      await p.js("Object.defineProperty(navigator, 'globalPrivacyControl', { configurable: true, get: () => true })");
      await p.start(OPTIONS);
      assert.match(await sentVisitor(p), VISITOR_ID);
      assert.deepEqual(await p.cookieValues(), [], "cookie set under GPC");
      await p.js("h.stop(); __hn.reset()");
      // An explicit `cookie: true` is the site's choice.
      await p.start("{ endpoint: '', site: 'demo', cookie: true }");
      assert.deepEqual(await p.cookieValues(), [await sentVisitor(p)]);
      await p.js("h.stop()");
      await p.nothingThrown();
    });

    test("ids: 200 fresh visitor ids match the server's rule; tab ids are 16 of [A-Za-z0-9_-]", async (t) => {
      const p = await open(t);
      const ids = await p.js(`const { start } = await import("/herenow/herenow.js");
        const out = [];
        for (let i = 0; i < 200; i++) {
          __hn.reset();
          const h = await start({ endpoint: '', site: 'demo', cookie: false });
          await __hn.until(() => __hn.calls.length, 1000);
          out.push([__hn.calls[0].body.visitor, __hn.calls[0].body.tab]);
          h.stop();
        }
        return out;`);
      for (const [v, tab] of ids) {
        assert.match(v, VISITOR_ID);
        assert.match(tab, /^[A-Za-z0-9_-]{16}$/);
      }
      assert.equal(new Set(ids.map(([v]) => v)).size, ids.length, "distinct");
      await p.nothingThrown();
    });
  });
});
