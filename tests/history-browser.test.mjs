// Issue 16 in Chromium against `wrangler dev` (real workerd, local KV persisted on disk):
// the dashboard's history chart on first load, the public widget in an <iframe> on a
// second origin, and the record elements of the demo page.
//
// History is seeded before the worker starts: the key `h:demo` is written into the local
// KV with `wrangler kv key put --local` in the format the worker itself writes
// (core/src/history/stored.rs), naming another writer that wrote it just now, so the
// worker reads it and merges its own samples in without taking it over (takeover waits
// for HISTORY_WRITE_S, 20 minutes by default). Live counts come from heartbeats sent by
// Node, as a visitor's client sends them.
import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { createServer } from "node:http";
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { randomUUID } from "node:crypto";
import { startWrangler, freePort } from "./lib/wrangler.mjs";
import { until, ROOT } from "./lib/miniflare.mjs";
import { launch, waitText, newWatchedContext, ARTIFACTS } from "./lib/browser.mjs";

const WINDOW_S = 8;
const HEARTBEAT_S = 1; // the widget and the dashboard refresh at this interval
const MINUTE = 60_000;
const FIVE = 5 * MINUTE;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;
const stepOf = (t, step) => t - (t % step);

/**
 * The seeded history at `now`: five-minute steps for the last 3 days holding 1-7 people,
 * none in the last 30 minutes (so live counts show), today's (UTC) peak of 42 two hours
 * ago (or at midnight, if that is later), and the record of 99 three days ago.
 */
function seed(now) {
  const start = stepOf(now - 3 * DAY, FIVE);
  const peakAt = Math.max(stepOf(now, DAY), stepOf(now - 2 * HOUR, FIVE)) + MINUTE;
  const n = [];
  for (let t = start; t <= stepOf(now, FIVE); t += FIVE) {
    n.push(t === start ? 99 : t === stepOf(peakAt, FIVE) ? 42 : t >= now - 30 * MINUTE ? 0 : 1 + ((t / FIVE) % 7));
  }
  const value = {
    writer: "seed-writer",
    written_at: now,
    minutes: { start: 0, n: [] },
    fives: { start, n },
    record: { online: 99, at: start + MINUTE },
    peak: { online: 42, at: peakAt },
    alerts: [],
  };
  return { value, peak: value.peak, record: value.record };
}

/** Writes `value` at `key` into the local KV that `wrangler dev --persist-to dir` reads. */
async function kvPut(dir, key, value) {
  await promisify(execFile)(join(ROOT, "node_modules", ".bin", "wrangler"),
    ["kv", "key", "put", key, JSON.stringify(value), "--binding", "PRESENCE", "--local", "--persist-to", dir],
    { cwd: join(ROOT, "edge"), env: { ...process.env, CI: "true", WRANGLER_SEND_METRICS: "false", WRANGLER_HIDE_BANNER: "true" } });
}

/** Serves `html(origin)` at `/` on a second loopback port (a site that embeds the widget). */
async function serveEmbedder(port, html, csp) {
  const origin = `http://127.0.0.1:${port}`;
  const server = createServer((req, res) => {
    if (new URL(req.url, origin).pathname !== "/") {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { "content-type": "text/html; charset=utf-8", "cache-control": "no-store", "content-security-policy": csp })
      .end(html);
  });
  await new Promise((resolve) => server.listen(port, "127.0.0.1", resolve));
  return { origin, close: () => new Promise((resolve) => server.close(resolve)) };
}

describe("history, widget and record in Chromium", () => {
  let server, browser, embedder, persist, seeded;
  const visitors = new Set();

  before(async () => {
    persist = mkdtempSync(join(tmpdir(), "herenow-history-"));
    seeded = seed(Date.now());
    await kvPut(persist, "h:demo", seeded.value);
    const port = await freePort();
    const embedPort = await freePort();
    const origin = `http://127.0.0.1:${port}`;
    const sites = { demo: { origins: [origin], members_public: true, public: true }, closed: { origins: [origin], public: false } };
    [server, browser] = await Promise.all([
      startWrangler({ port, persistTo: persist, vars: { WINDOW_S: String(WINDOW_S), HEARTBEAT_S: String(HEARTBEAT_S), SITES: JSON.stringify(sites) } }),
      launch(),
    ]);
    // The README's snippet, on a page with a strict CSP of its own that allows the frame.
    const snippet = `<iframe src="${origin}/v1/widget?site=demo" title="People online" width="320" height="110" loading="lazy"></iframe>`;
    embedder = await serveEmbedder(embedPort,
      `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>A site embedding the widget</title></head><body><h1>Hello</h1>${snippet}</body></html>`,
      `default-src 'none'; frame-src ${origin}`);
  });
  after(async () => {
    await leaveAll();
    await browser?.close();
    await server?.stop();
    await embedder?.close();
    if (persist) rmSync(persist, { recursive: true, force: true });
  });

  /** One heartbeat (or leave) of visitor `v`, as its client sends it. */
  async function send(v, kind = "heartbeat") {
    const r = await fetch(`${server.origin}/v1/${kind}`, {
      method: "POST",
      headers: { "content-type": "text/plain;charset=UTF-8", origin: server.origin },
      body: JSON.stringify({ site: "demo", visitor: v, tab: `tab-${v.slice(0, 8)}`, page: "/", state: "active" }),
    });
    const text = await r.text();
    assert.ok(r.ok, `${kind}: ${r.status} ${text}`);
  }
  /** A visitor who stays: one heartbeat now, then one a second (the window is 8 s) until `leaveAll`. */
  async function stay() {
    const v = randomUUID();
    await send(v);
    visitors.add(v);
    if (!keeper) {
      keeper = setInterval(() => {
        for (const x of visitors) {
          const p = send(x).catch(() => { /* the next second tries again */ }).finally(() => inflight.delete(p));
          inflight.add(p);
        }
      }, HEARTBEAT_S * 1000);
    }
  }
  let keeper = 0;
  const inflight = new Set();
  /** Everyone who stayed leaves, after the heartbeats under way (a late one would bring them back). */
  async function leaveAll() {
    clearInterval(keeper);
    keeper = 0;
    await Promise.allSettled([...inflight]);
    const all = [...visitors];
    visitors.clear();
    await Promise.all(all.map((v) => send(v, "leave")));
  }
  const count = async () => (await fetch(`${server.origin}/v1/count?site=demo`, { cache: "no-store" })).json();
  const clean = (events) => events.map((e) => `${e.kind}: ${e.detail} (${e.url})`);

  test("the dashboard draws the 24 h history on first load, marks the peak, reads out values, appends live, switches range", async () => {
    const events = [];
    const { ctx } = await newWatchedContext(browser, server.origin, { events, viewport: { width: 1200, height: 900 } });
    try {
      const p = await ctx.newPage();
      const asked = [];
      p.on("request", (r) => { if (new URL(r.url()).pathname === "/v1/history") asked.push(new URL(r.url()).searchParams.get("range")); });
      await p.goto(`${server.origin}/dashboard`);
      const svgAttr = (name) => p.locator("#chart svg").getAttribute(name);
      await p.waitForFunction(() => document.querySelector("#chart svg .peak-mark"), null, { timeout: 10_000, polling: 50 });
      assert.deepEqual(asked, ["24h"], "one history request, 24 h by default");
      assert.equal(await svgAttr("data-range"), "24h");
      assert.equal(Number(await svgAttr("data-points")), 288, "288 five-minute steps");
      assert.equal(await p.locator("#chart-title").textContent(), "People online, last 24 hours");
      assert.equal(await p.locator('button[data-range="24h"]').getAttribute("aria-pressed"), "true");

      // The peak, where the seed put it; axes with counts up to it and clock times.
      const mark = p.locator("#chart svg .peak-mark");
      assert.equal(await mark.getAttribute("data-online"), "42");
      assert.equal(Number(await mark.getAttribute("data-at")), seeded.peak.at);
      assert.match(await mark.locator(".peak-label").textContent(), /^peak 42 at \d/);
      const yLabels = (await p.locator("#chart svg .y-label").allTextContents()).map(Number);
      assert.equal(yLabels[0], 0);
      assert.ok(Math.max(...yLabels) >= 42 && Math.max(...yLabels) < 99, `count axis: ${yLabels}`);
      const xLabels = await p.locator("#chart svg .x-label").allTextContents();
      assert.ok(xLabels.length >= 6 && xLabels.every((l) => /\d{1,2}:\d{2}/.test(l)), `time axis: ${xLabels}`);
      // The seeded steps are drawn: the line has a vertex per step, and the y of the peak's
      // step is the highest (smallest y) of them.
      const ys = await p.locator("#chart svg path.line").getAttribute("d")
        .then((d) => [...d.matchAll(/[ML]([\d.]+) ([\d.]+)/g)].map((m) => Number(m[2])));
      assert.equal(ys.length, 288);
      assert.equal(new Set(ys).size > 5, true, "the seeded steps vary");
      assert.equal(await p.locator("#record").isVisible(), true);
      assert.match(await p.locator("#record").textContent(), /^Most ever online: 99 on \S/);
      assert.equal(await p.locator("#record-at").getAttribute("datetime"), new Date(seeded.record.at).toISOString());

      // Hover values: the pointer over the peak reads out its step and count.
      const box = await mark.locator("circle.peak").boundingBox();
      await p.mouse.move(box.x + box.width / 2, box.y + box.height / 2);
      await p.waitForFunction(() => /: 42 online$/.test(document.querySelector("#chart-readout").textContent), null, { timeout: 3000, polling: 50 });
      assert.match(await p.locator("#chart-readout").textContent(), /^\d{1,2}:\d{2}.*–.*\d{1,2}:\d{2}.*: 42 online$/, "the step's span and count");
      assert.equal(await p.locator("#chart svg .hover-line").count(), 1);
      await p.mouse.move(5, 5);
      await p.waitForFunction(() => !document.querySelector("#chart svg .hover-line"), null, { timeout: 3000, polling: 50 });
      // And from the keyboard: focus the chart, End is the newest step.
      await p.locator("#chart").focus();
      await p.keyboard.press("End");
      await p.waitForFunction(() => /: \d+ online$/.test(document.querySelector("#chart-readout").textContent), null, { timeout: 3000, polling: 50 });

      // Live counts are appended to the history: two people now, in the newest step.
      const live0 = Number(await svgAttr("data-live"));
      await stay();
      await stay();
      await waitText(p, "#chart svg .last-label", "2", 5000);
      assert.ok(await until(async () => Number(await svgAttr("data-live")) > live0 + 1, 5000, 100), "live counts fold in");
      assert.equal(Number(await svgAttr("data-points")), 288, "still one range of steps");
      await p.screenshot({ path: join(ARTIFACTS, "dashboard-history.png"), fullPage: true });

      // Switching range reads that range's history: 7 days in hours (with the record's day), then 1 hour in minutes.
      await Promise.all([p.waitForResponse((r) => r.url().includes("/v1/history") && r.url().includes("range=7d")), p.getByRole("button", { name: "7 d" }).click()]);
      await p.waitForFunction(() => document.querySelector("#chart svg")?.dataset.range === "7d" && !document.querySelector("#chart[aria-busy]"), null, { timeout: 5000, polling: 50 });
      assert.equal(Number(await svgAttr("data-points")), 168);
      assert.equal(await p.locator('button[data-range="7d"]').getAttribute("aria-pressed"), "true");
      assert.equal(await p.locator('button[data-range="24h"]').getAttribute("aria-pressed"), "false");
      assert.equal(await p.locator("#chart-title").textContent(), "People online, last 7 days");
      assert.equal(Math.max(...(await p.locator("#chart svg .y-label").allTextContents()).map(Number)) >= 99, true, "the record's hour is in the week");
      assert.equal(new URL(p.url()).searchParams.get("range"), "7d", "the range is in the address");
      await Promise.all([p.waitForResponse((r) => r.url().includes("range=1h")), p.getByRole("button", { name: "1 h" }).click()]);
      await p.waitForFunction(() => document.querySelector("#chart svg")?.dataset.range === "1h" && !document.querySelector("#chart[aria-busy]"), null, { timeout: 5000, polling: 50 });
      assert.equal(Number(await svgAttr("data-points")), 60);
      assert.deepEqual(asked, ["24h", "7d", "1h"]);
      await waitText(p, "#chart svg .last-label", "2", 5000);
      // Reloading keeps the range and draws the history again at once: nothing lives in the tab.
      await p.reload();
      await p.waitForFunction(() => document.querySelector("#chart svg")?.dataset.range === "1h" && Number(document.querySelector("#chart svg").dataset.points) === 60,
        null, { timeout: 5000, polling: 50 });
      assert.deepEqual(clean(events), [], "no CSP violation, console error or foreign request");
    } finally {
      await ctx.close();
      await leaveAll();
    }
  });

  test("a site with public: false: the dashboard says its history and badge are not published, and charts live counts", async () => {
    const r = await fetch(`${server.origin}/v1/history?site=closed`);
    assert.equal(r.status, 403);
    assert.equal((await r.json()).error.code, "not_public");
    const events = [];
    const { ctx } = await newWatchedContext(browser, server.origin, { events });
    try {
      const p = await ctx.newPage();
      await p.goto(`${server.origin}/dashboard?site=closed`);
      await p.waitForFunction(() => /does not publish its history/.test(document.querySelector("#history-note").textContent), null, { timeout: 10_000, polling: 50 });
      await p.waitForFunction(() => /does not publish its badge/.test(document.querySelector("#badge-note").textContent), null, { timeout: 10_000, polling: 50 });
      // The live count's first answer may come after the notes: wait for it, then check
      // that the refused badge set no error status.
      await p.waitForFunction(() => !/^Connecting/.test(document.querySelector("#status").textContent), null, { timeout: 10_000, polling: 50 });
      assert.match(await p.locator("#status").textContent(), /^Live/, "no error status for a refused badge");
      const live = () => p.locator("#chart svg").getAttribute("data-live").then(Number);
      assert.ok(await until(async () => (await live()) >= 2, 5000, 100), "the chart takes live counts");
      assert.equal(await p.locator("#chart svg").getAttribute("data-points"), "1", "one step: the live counts'");
      assert.equal(await p.locator("#record").isHidden(), true, "no record is known");
      // The browser logs each refused request as a console error: history and badge (403), and
      // /v1/online without a read key (401, this site's members are not public); nothing else.
      const bad = clean(events).filter((e) => !/Failed to load resource: the server responded with a status of (401|403)/.test(e));
      assert.deepEqual(bad, []);
    } finally {
      await ctx.close();
    }
  });

  test("the widget renders in an iframe on a second origin: count, sparkline, no cookie, no heartbeat, clean CSP, light and dark", async () => {
    await stay();
    await stay();
    assert.equal((await count()).online, 2);
    const backgrounds = {};
    for (const colorScheme of ["light", "dark"]) {
      const events = [];
      const { ctx } = await newWatchedContext(browser, embedder.origin, { events, colorScheme });
      try {
        const requests = [];
        ctx.on("request", (r) => requests.push({ method: r.method(), url: new URL(r.url()) }));
        const p = await ctx.newPage();
        await p.goto(`${embedder.origin}/`);
        const frame = await until(() => p.frames().find((f) => f.url().startsWith(`${server.origin}/v1/widget`)), 10_000, 50);
        assert.ok(frame, "the iframe loaded the widget");
        await frame.waitForSelector("#online", { timeout: 10_000 });
        await waitText(frame, "#online", "2");
        assert.equal((await frame.locator(".now").textContent()).trim(), "2 online now");
        // The sparkline: a vertex per five-minute step of the seeded day, not flat.
        const spark = await frame.locator("#spark").getAttribute("points");
        const ys = spark.trim().split(/\s+/).map((xy) => Number(xy.split(",")[1]));
        assert.equal(ys.length, 288, "288 steps");
        assert.ok(new Set(ys).size > 5, "the sparkline follows the seeded history");
        // Live: a third person (one heartbeat: counted for the 8 s window) shows within a few
        // refreshes, and their leave too.
        const third = randomUUID();
        await send(third);
        await waitText(frame, "#online", "3", 5000);
        await send(third, "leave");
        await waitText(frame, "#online", "2", 5000);
        backgrounds[colorScheme] = await frame.evaluate(() => getComputedStyle(document.body).backgroundColor);
        await p.screenshot({ path: join(ARTIFACTS, `widget-${colorScheme}.png`) });

        assert.deepEqual(await ctx.cookies(), [], "no cookie on either origin");
        const foreign = requests.filter((r) => ![embedder.origin, server.origin].includes(r.url.origin));
        assert.deepEqual(foreign.map((r) => r.url.href), [], "requests only to the two origins");
        const posts = requests.filter((r) => r.method !== "GET");
        assert.deepEqual(posts.map((r) => `${r.method} ${r.url.pathname}`), [], "no heartbeat, no leave, no POST at all");
        const paths = new Set(requests.filter((r) => r.url.origin === server.origin).map((r) => r.url.pathname));
        assert.ok(paths.has("/v1/count"), `the widget refreshes its count: ${[...paths]}`);
        assert.deepEqual([...paths].filter((x) => !["/v1/widget", "/v1/count", "/v1/history"].includes(x)), [], "nothing but count and history");
        const bad = clean(events).filter((e) => !e.startsWith("foreign-request")); // the widget's origin is expected
        assert.deepEqual(bad, [], `${colorScheme}: no CSP violation, console error or page error`);

        if (colorScheme === "dark") {
          // The watcher does see a violation in the widget's frame: an inline script it did not hash.
          await frame.evaluate(() => {
            const s = document.createElement("script");
            s.textContent = "window.injected = true";
            document.body.append(s);
          });
          assert.ok(await until(() => events.some((e) => e.kind === "csp" && e.url.includes("/v1/widget")), 3000, 50),
            `the frame's CSP refused the injected script: ${JSON.stringify(events)}`);
          assert.equal(await frame.evaluate(() => window.injected), undefined);
        }
      } finally {
        await ctx.close();
      }
    }
    assert.equal(backgrounds.light, "rgb(255, 255, 255)");
    assert.equal(backgrounds.dark, "rgb(13, 17, 23)");
    const r = await fetch(`${server.origin}/v1/widget?site=demo`);
    assert.equal(r.headers.get("set-cookie"), null, "the widget sets no cookie");
    assert.match(r.headers.get("content-security-policy"), /frame-ancestors \*/);
    await r.body?.cancel();
    await leaveAll();
  });

  test("the demo page's record elements fill in with the record and its day; the count event carries it", async () => {
    const events = [];
    const { ctx } = await newWatchedContext(browser, server.origin, { events });
    try {
      const p = await ctx.newPage();
      await p.goto(`${server.origin}/`);
      await waitText(p, '[data-herenow="online"]', "1");
      const want = await p.evaluate((at) => [(99).toLocaleString(), new Date(at).toLocaleDateString()], seeded.record.at);
      await waitText(p, '[data-herenow="record"]', want[0]);
      await waitText(p, '[data-herenow="record-at"]', want[1]);
      const last = await p.evaluate(() => window.__hn.counts.at(-1));
      assert.deepEqual(last.record, seeded.record, "herenow:count carries {online, at}");
      assert.deepEqual(clean(events), []);
      await p.goto("about:blank");
    } finally {
      await ctx.close();
    }
  });
});
