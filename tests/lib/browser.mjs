// Debian's Chromium driven by playwright-core, with the back/forward cache left on, and
// browser contexts that watch their pages: unload listeners, CSP violations, console
// errors, page errors and requests to other origins are all reported to the test.
import { chromium } from "playwright-core";
import { existsSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { ROOT } from "./miniflare.mjs";

export const ARTIFACTS = join(ROOT, "tests", "artifacts");

export async function launch() {
  mkdirSync(ARTIFACTS, { recursive: true });
  return launchChromium();
}

/** Debian's Chromium, headless, with the back/forward cache on (also used by bench/). */
export async function launchChromium() {
  const executablePath = process.env.CHROMIUM ?? "/usr/bin/chromium";
  if (!existsSync(executablePath)) {
    throw new Error(`${executablePath} not found: install Debian's chromium (make test does)`);
  }
  return chromium.launch({
    executablePath,
    headless: true,
    ignoreDefaultArgs: ["--disable-back-forward-cache"],
    args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
      "--disable-sync", "--no-first-run", "--disable-dev-shm-usage"],
  });
}

/** Waits until the text of `selector` on `page` equals `text` (polling, with a deadline). */
export async function waitText(page, selector, text, timeout = 10_000) {
  await page.waitForFunction(
    ([sel, want]) => document.querySelector(sel)?.textContent?.trim() === want,
    [selector, String(text)],
    { timeout, polling: 50 },
  );
}

/** Prefix of the console messages the init script uses to report to the test. */
const TAG = "herenow-test ";

/**
 * Runs in every frame before any page script (main world). Reports, through the console:
 * every `unload`/`beforeunload` registration (addEventListener or the on… setters of
 * window, <body> and <frameset>) and every `securitypolicyviolation`. Keeps, in
 * `window.__hn`, the `persisted` flag of each `pageshow` and the last counts of
 * `herenow:count`.
 */
function instrument(tag) {
  const report = (kind, detail) => console.info(tag + JSON.stringify({ kind, detail, url: location.href }));
  const rec = { pageshow: [], counts: [] };
  Object.defineProperty(window, "__hn", { value: rec, enumerable: false });
  const add = EventTarget.prototype.addEventListener;
  const watched = new Set(["unload", "beforeunload"]);
  EventTarget.prototype.addEventListener = function addEventListener(type, ...rest) {
    if (watched.has(String(type).toLowerCase())) report("unload", `addEventListener("${type}")`);
    return add.call(this, type, ...rest);
  };
  const targets = [window, globalThis.HTMLBodyElement?.prototype, globalThis.HTMLFrameSetElement?.prototype];
  for (const name of ["onunload", "onbeforeunload"]) {
    for (const target of targets) {
      if (!target) continue;
      let o = target;
      let d;
      while (o && !(d = Object.getOwnPropertyDescriptor(o, name))) o = Object.getPrototypeOf(o);
      if (!d?.set) continue;
      Object.defineProperty(target, name, {
        configurable: true,
        enumerable: d.enumerable,
        get() { return d.get.call(this); },
        set(v) {
          if (v != null) report("unload", `${name} setter`);
          d.set.call(this, v);
        },
      });
    }
  }
  add.call(window, "securitypolicyviolation", (e) =>
    report("csp", `${e.effectiveDirective} blocked ${e.blockedURI || "inline"} (${e.sourceFile}:${e.lineNumber})`), true);
  add.call(window, "pageshow", (e) => rec.pageshow.push(e.persisted), true);
  add.call(document, "herenow:count", (e) => {
    rec.counts.push(e.detail);
    if (rec.counts.length > 100) rec.counts.shift();
  });
}

/**
 * A new browser context whose pages are instrumented and watched. `events` collects
 * `{kind: "unload"|"csp"|"console"|"pageerror"|"foreign-request", detail, url}`; requests
 * to anything but `origin` (and about:, data:, blob:) are "foreign-request". Pass `events`
 * to share one list between contexts; other options go to `browser.newContext`.
 */
export async function newWatchedContext(browser, origin, { events = [], ...options } = {}) {
  const ctx = await browser.newContext(options);
  await ctx.addInitScript(instrument, TAG);
  ctx.on("request", (r) => {
    const u = new URL(r.url());
    if (!["about:", "data:", "blob:"].includes(u.protocol) && u.origin !== origin) {
      events.push({ kind: "foreign-request", detail: r.url(), url: r.frame()?.url() });
    }
  });
  const watch = (page) => {
    page.on("console", (m) => {
      const text = m.text();
      if (text.startsWith(TAG)) {
        try { events.push(JSON.parse(text.slice(TAG.length))); } catch { /* not ours */ }
      } else if (m.type() === "error" || (m.type() === "warning" && /herenow/i.test(text))) {
        events.push({ kind: "console", detail: `${m.type()}: ${text}`, url: page.url() });
      }
    });
    page.on("pageerror", (e) => events.push({ kind: "pageerror", detail: String(e), url: page.url() }));
  };
  ctx.on("page", watch);
  return { ctx, events };
}
