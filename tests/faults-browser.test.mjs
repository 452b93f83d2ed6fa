// The real client (www/herenow, built by `make build`) in headless Chromium against the
// real worker in workerd (Miniflare, listening on 127.0.0.1) whose KV binding fails on
// command. The pages come from a second origin (a small static server here) and call the
// worker cross-origin through `data-endpoint`, so `Retry-After` must also cross CORS.
//
// While the store fails the worker answers 503 with Retry-After. The client must back off
// (never sooner than Retry-After, the delays growing, fewer requests than its heartbeat
// rate), the page must keep working (the widgets keep their last count, or their
// placeholder before any count), and once the store is back every client must rejoin on
// its own so that the count is the truth again within one presence window.
import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { createServer } from "node:http";
import { readFile } from "node:fs/promises";
import { join, extname, normalize } from "node:path";
import { startWorker, until, ROOT } from "./lib/miniflare.mjs";
import { freePort } from "./lib/wrangler.mjs";
import { launch, waitText, newWatchedContext } from "./lib/browser.mjs";

const WINDOW_S = 6; // a tab with no heartbeat for 6 s is gone
const HEARTBEAT_S = 0.5; // clients beat every 0.5 s ±10% while the store is fine
// The worker's Retry-After for a failing store: one heartbeat interval, rounded up to
// whole seconds (the header's unit), at most 5 s.
const RETRY_AFTER_S = 1;
// The client caps its backoff at the window less one heartbeat interval (see
// client/src/machine/backoff.rs), so that a client retries inside every window.
const CAP_MS = WINDOW_S * 1000 - HEARTBEAT_S * 1000;
const OUTAGE_MS = 8000; // longer than the window: every tab's presence lapses
const PLACEHOLDER = "…";
const ONLINE = '[data-herenow="online"]';

const MIME = { ".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8", ".wasm": "application/wasm" };

/** Serves a one-widget page at `/` and the built client at `/herenow/*` on 127.0.0.1. */
async function servePages(api) {
  const port = await freePort();
  const origin = `http://127.0.0.1:${port}`;
  const html = `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>herenow under faults</title>
<script type="module" src="/herenow/herenow.js" data-site="demo" data-endpoint="${api}"></script></head>
<body><p><span data-herenow="online">${PLACEHOLDER}</span> online</p></body></html>`;
  const dir = join(ROOT, "www", "herenow");
  const server = createServer(async (req, res) => {
    const path = new URL(req.url, origin).pathname;
    if (path === "/favicon.ico") {
      res.writeHead(204).end();
      return;
    }
    if (path === "/") {
      res.writeHead(200, { "content-type": MIME[".html"], "cache-control": "no-store" }).end(html);
      return;
    }
    const name = normalize(path.slice("/herenow/".length));
    if (!path.startsWith("/herenow/") || name.includes("..") || name.includes("/")) {
      res.writeHead(404).end();
      return;
    }
    try {
      const bytes = await readFile(join(dir, name));
      res.writeHead(200, { "content-type": MIME[extname(name)] ?? "application/octet-stream" }).end(bytes);
    } catch {
      res.writeHead(404).end();
    }
  });
  await new Promise((resolve) => server.listen(port, "127.0.0.1", resolve));
  return { origin, close: () => new Promise((resolve) => server.close(resolve)) };
}

/**
 * Records the page's heartbeat fetches (not its beacons): for each, when it started and
 * when its answer began (the browser's own clock, ms since the epoch), its status and
 * its Retry-After.
 */
function recordBeats(page) {
  const beats = [];
  page.on("request", (r) => {
    if (r.method() === "POST" && r.resourceType() === "fetch" && new URL(r.url()).pathname === "/v1/heartbeat") {
      beats.push({ request: r, status: null, retryAfter: null });
    }
  });
  page.on("response", async (res) => {
    const beat = beats.find((b) => b.request === res.request());
    if (!beat) return;
    beat.status = res.status();
    beat.retryAfter = res.headers()["retry-after"] ?? null;
  });
  page.on("requestfailed", (r) => {
    const beat = beats.find((b) => b.request === r);
    if (beat) beat.status = 0;
  });
  /** The beats so far, with their timings. */
  beats.timed = () => beats.map((b) => {
    const t = b.request.timing();
    return { start: t.startTime, answered: t.startTime + Math.max(0, t.responseStart), status: b.status, retryAfter: b.retryAfter };
  });
  return beats;
}

describe("the real client under a failing store", () => {
  let mf, pages, browser;
  const events = [];
  const contexts = [];

  before(async () => {
    const port = await freePort();
    const api = `http://127.0.0.1:${port}`;
    pages = await servePages(api);
    [mf, browser] = await Promise.all([
      startWorker({
        faults: true,
        port,
        vars: {
          SITES: JSON.stringify({ demo: { origins: [pages.origin] } }),
          WINDOW_S: String(WINDOW_S),
          HEARTBEAT_S: String(HEARTBEAT_S),
          // A lone isolate lists KV at least every second, so the store is in use.
          SOLO_DELAY_S: "1",
          // Three tabs beating twice a second plus the test's polling stay under the limits.
          RATE_IP_PER_MIN: "100000",
          RATE_VISITOR_PER_MIN: "100000",
        },
      }),
      launch(),
    ]);
    assert.equal(mf.url.origin, api);
  });
  after(async () => {
    for (const ctx of contexts) await ctx.close().catch(() => {});
    await browser?.close();
    await mf?.dispose();
    await pages?.close();
  });

  async function open() {
    const { ctx } = await newWatchedContext(browser, pages.origin, { events });
    contexts.push(ctx);
    const page = await ctx.newPage();
    const beats = recordBeats(page);
    await page.goto(`${pages.origin}/`);
    return { page, beats };
  }
  /** The worker's count right now: `{ status, online }`. */
  async function serverCount() {
    const r = await mf.dispatchFetch("http://127.0.0.1/v1/count?site=demo");
    const json = await r.json();
    return { status: r.status, online: json.online };
  }
  const failures = (beats) => beats.filter((b) => b.status === 503).length;

  test("backs off honouring Retry-After, keeps the page intact, and converges within one window once the store is back", async (t) => {
    const a = await open();
    const b = await open();
    await waitText(a.page, ONLINE, "2");
    await waitText(b.page, ONLINE, "2");
    assert.ok(a.beats.every((x) => x.status === 200 || x.status === null), "all good before the fault");

    // The store fails for a while: longer than the window, and until every client has
    // been refused several times.
    mf.setFault("fail");
    const faultAt = Date.now();
    const long = await until(
      () => Date.now() - faultAt >= OUTAGE_MS && failures(a.beats) >= 4 && failures(b.beats) >= 4,
      OUTAGE_MS + 20_000, 100);
    assert.ok(long, `each client was refused at least 4 times (${failures(a.beats)}, ${failures(b.beats)})`);
    // A count answers from the merged view while that is fresh (under a second), so the
    // store's failure shows at the first count that needs it.
    let during;
    const refused = await until(async () => (during = await serverCount()).status === 503, 5_000, 100);
    assert.ok(refused, `the count is refused too (last: ${JSON.stringify(during)})`);

    // A page opened during the outage: it loads, is refused, and shows its placeholder.
    const c = await open();
    assert.ok(await until(() => failures(c.beats) >= 1, 10_000, 50), "the new page's first heartbeat is refused");
    for (const [name, p, want] of [["a", a.page, "2"], ["b", b.page, "2"], ["c", c.page, PLACEHOLDER]]) {
      assert.equal((await p.locator(ONLINE).textContent()).trim(), want, `page ${name} keeps ${want} during the outage`);
    }

    // The store is back: nobody does anything, the clients rejoin on their own.
    mf.setFault("ok");
    const clearedAt = Date.now();
    let last;
    const converged = await until(async () => {
      last = await serverCount();
      return last.status === 200 && last.online === 3;
    }, WINDOW_S * 1000 + 5000, 100);
    const took = Date.now() - clearedAt;
    t.diagnostic(`count back to 3 after ${took} ms`);
    assert.ok(converged, `the count converges to 3 (last ${JSON.stringify(last)})`);
    assert.ok(took <= WINDOW_S * 1000, `converged ${took} ms after the store came back, within one ${WINDOW_S} s window`);
    // Each widget shows the truth at its tab's next heartbeat.
    for (const p of [a.page, b.page, c.page]) await waitText(p, ONLINE, "3", 3000);

    // The backoff, from the browser's own timings of the heartbeats of the outage.
    const allGaps = [];
    for (const [name, { beats }] of [["a", a], ["b", b]]) {
      const timed = beats.timed();
      const first = timed.findIndex((x) => x.status === 503);
      const firstOk = timed.findIndex((x, i) => i > first && x.status === 200);
      assert.ok(first >= 0 && firstOk > first, `page ${name}: refused, then accepted`);
      const streak = timed.slice(first, firstOk + 1);
      const gaps = [];
      for (let i = 1; i < streak.length; i++) {
        const prev = streak[i - 1];
        assert.equal(prev.status, 503, `page ${name}: only refusals before the first success`);
        assert.equal(prev.retryAfter, String(RETRY_AFTER_S), `page ${name}: Retry-After, readable cross-origin`);
        gaps.push(streak[i].start - prev.answered);
      }
      const detail = `page ${name}: gaps after each 503 ${JSON.stringify(gaps.map(Math.round))}`;
      t.diagnostic(detail);
      // Never sooner than Retry-After (timer granularity aside), never longer than the cap.
      assert.ok(gaps.every((g) => g >= RETRY_AFTER_S * 1000 - 15), `${detail}: Retry-After honoured`);
      assert.ok(gaps.every((g) => g <= CAP_MS + 500), `${detail}: at most the ${CAP_MS} ms cap`);
      allGaps.push(...gaps.slice(1));
      // Fewer requests than heartbeating on as if nothing were wrong (every 0.5 s).
      const span = streak.at(-1).start - streak[0].start;
      const plain = span / (HEARTBEAT_S * 1000);
      assert.ok(streak.length - 1 <= span / (RETRY_AFTER_S * 1000) + 1, `${detail}: ${streak.length} requests in ${Math.round(span)} ms`);
      assert.ok(streak.length - 1 < plain / 2, `${detail}: fewer than half the ${Math.round(plain)} of a client without backoff`);
    }

    // Exponential with full jitter: past the first retry (Retry-After's floor), the delays
    // grow. (Were all under 1.5 s, an 8 s outage would hold at least five later retries
    // per page, drawn from [0, 2 s), [0, 4 s), then [0, 5.5 s): for both pages a chance
    // under 1 in 10,000.)
    assert.ok(allGaps.some((g) => g >= 1.5 * RETRY_AFTER_S * 1000), `the delays grow: ${JSON.stringify(allGaps.map(Math.round))}`);

    // Nothing broke: no page error, no console error but the browser's own line for each
    // refused request, and a warning per failure streak.
    const api = mf.url.origin;
    const pageErrors = events.filter((e) => ["pageerror", "unload", "csp"].includes(e.kind)
      || (e.kind === "foreign-request" && new URL(e.detail).origin !== api));
    assert.deepEqual(pageErrors, []);
    const consoleLines = events.filter((e) => e.kind === "console").map((e) => e.detail);
    const warnings = consoleLines.filter((l) => l.startsWith("warning: herenow:"));
    const other = consoleLines.filter((l) => !l.startsWith("warning: herenow:") && !/status of 503/.test(l));
    assert.deepEqual(other, [], "no unexpected console error");
    // One warning per failure streak: at least one per client, more only when a heartbeat
    // that needed no KV (a fresh view, nothing to publish) succeeded mid-outage and ended a
    // streak; never one per failed request.
    const refusals = failures(a.beats) + failures(b.beats) + failures(c.beats);
    assert.ok(warnings.length >= 3 && warnings.length < refusals, `a warning per streak, not per refusal: ${warnings.length} warnings, ${refusals} refusals: ${JSON.stringify(warnings)}`);
    assert.ok(warnings.every((w) => !/injected|\bat /.test(w)), `no server internals in the warnings: ${JSON.stringify(warnings)}`);
    for (const w of warnings) assert.match(w, /heartbeat failed, retrying with backoff \(.*HTTP 503/);
  });
});
