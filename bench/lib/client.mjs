// Client measurements: sizes of the shipped files and, in Debian's Chromium (playwright-core),
// the time from the loader script to the first heartbeat and the main-thread time it costs.
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { gzipSync, brotliCompressSync, constants } from "node:zlib";
import { launchChromium } from "../../tests/lib/browser.mjs";

/** Raw, gzip -9 and brotli (quality 11) sizes of every file in `dir`. */
export function fileSizes(dir) {
  return readdirSync(dir).filter((f) => statSync(join(dir, f)).isFile()).sort().map((f) => {
    const buf = readFileSync(join(dir, f));
    return {
      file: f,
      raw: buf.length,
      gzip: gzipSync(buf, { level: 9 }).length,
      brotli: brotliCompressSync(buf, { params: {
        [constants.BROTLI_PARAM_QUALITY]: 11, [constants.BROTLI_PARAM_SIZE_HINT]: buf.length } }).length,
    };
  });
}

const median = (xs) => {
  const s = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (!s.length) return NaN;
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

export { launchChromium };

const page = (withScript) => `<!doctype html><html><head><meta charset="utf-8"><title>herenow bench</title>
${withScript ? '<script type="module" src="/herenow/herenow.js" data-site="demo"></script>' : ""}
</head><body><p><span data-herenow="online">…</span> online</p></body></html>`;

/**
 * Loads a minimal page served at `origin` (answered by the browser from the bench, so that
 * the worker serves only the client files and the API), with and without the herenow
 * script, `runs` times each in a fresh context (cold cache). Returns medians.
 */
export async function measureClient(browser, origin, runs) {
  const samples = { withScript: [], bare: [] };
  for (let i = 0; i < runs; i++) {
    for (const withScript of [false, true]) {
      const ctx = await browser.newContext();
      const p = await ctx.newPage();
      await p.route(`${origin}/bench-client.html`, (route) =>
        route.fulfill({ status: 200, contentType: "text/html; charset=utf-8", body: page(withScript) }));
      await p.addInitScript(() => {
        window.__hn = {};
        window.__hn.counted = new Promise((resolve) => document.addEventListener("herenow:count", () => {
          window.__hn.count ??= performance.now();
          resolve();
        }));
      });
      const cdp = await ctx.newCDPSession(p);
      await cdp.send("Performance.enable", { timeDomain: "threadTicks" });
      await p.goto(`${origin}/bench-client.html`, { waitUntil: "load" });
      // One evaluation on both pages, awaiting an in-page promise: polling would itself add
      // main-thread tasks to the page under test only.
      await p.evaluate((wait) => (wait ? Promise.race([window.__hn.counted,
        new Promise((_, reject) => setTimeout(() => reject(new Error("no count within 15 s")), 15_000))]) : null), withScript);
      await new Promise((resolve) => setTimeout(resolve, 300));
      const { metrics } = await cdp.send("Performance.getMetrics");
      const m = Object.fromEntries(metrics.map((x) => [x.name, x.value]));
      const t = await p.evaluate(() => {
        const res = performance.getEntriesByType("resource");
        const find = (s) => res.find((e) => e.name.includes(s));
        const loader = find("/herenow/herenow.js");
        const beat = find("/v1/heartbeat");
        const wasm = find(".wasm");
        return {
          loaderStart: loader?.startTime, loaderEnd: loader?.responseEnd,
          wasmEnd: wasm?.responseEnd, beatStart: beat?.startTime, beatEnd: beat?.responseEnd,
          count: window.__hn.count, text: document.querySelector("[data-herenow=online]").textContent,
        };
      });
      samples[withScript ? "withScript" : "bare"].push({ ...t, task: m.TaskDuration * 1000, script: m.ScriptDuration * 1000,
        layout: m.LayoutDuration * 1000, heap: m.JSHeapUsedSize });
      await ctx.close();
    }
  }
  const w = samples.withScript;
  const b = samples.bare;
  return {
    runs,
    loaderToBeat: median(w.map((s) => s.beatStart - s.loaderEnd)),
    navToBeat: median(w.map((s) => s.beatStart)),
    navToLoader: median(w.map((s) => s.loaderEnd)),
    navToWasm: median(w.map((s) => s.wasmEnd)),
    beatRoundTrip: median(w.map((s) => s.beatEnd - s.beatStart)),
    loaderToCount: median(w.map((s) => s.count - s.loaderEnd)),
    taskWith: median(w.map((s) => s.task)),
    taskBare: median(b.map((s) => s.task)),
    scriptWith: median(w.map((s) => s.script)),
    scriptBare: median(b.map((s) => s.script)),
    heapWith: median(w.map((s) => s.heap)),
    heapBare: median(b.map((s) => s.heap)),
    shown: w.map((s) => s.text),
    samples,
  };
}
