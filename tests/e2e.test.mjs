// The demo, served by `wrangler dev` (real workerd, local KV), in headless Chromium.
import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { startWrangler } from "./lib/wrangler.mjs";
import { launch, waitText, ARTIFACTS } from "./lib/browser.mjs";

const ONLINE = '[data-herenow="online"]';

describe("demo in Chromium", () => {
  let server, browser;
  before(async () => {
    // A short window so heartbeats come every second and expiry takes seconds.
    server = await startWrangler({ vars: { WINDOW_S: "4" } });
    browser = await launch();
  });
  after(async () => {
    await browser?.close();
    await server?.stop();
  });

  test("two browsers with their own cookies count 2; leaving drops it back", async () => {
    const a = await browser.newContext();
    const b = await browser.newContext();
    try {
      const pa = await a.newPage();
      await pa.goto(`${server.origin}/`);
      await waitText(pa, ONLINE, "1");
      const cookie = (await a.cookies()).find((c) => c.name === "herenow_vid");
      assert.ok(cookie, "visitor cookie set");
      assert.match(cookie.value, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
      assert.equal(cookie.sameSite, "Lax");
      assert.equal(cookie.path, "/");
      assert.ok(cookie.expires * 1000 - Date.now() > 360 * 86400e3, "max-age about a year");
      const pb = await b.newPage();
      await pb.goto(`${server.origin}/`);
      await waitText(pb, ONLINE, "2");
      await waitText(pa, ONLINE, "2");
      await pa.screenshot({ path: join(ARTIFACTS, "index.png") });
      // Navigating away sends the leave beacon; the other browser sees 1 within 2 s.
      await pb.goto("about:blank");
      const t0 = Date.now();
      await waitText(pa, ONLINE, "1", 2000 + 1500);
      assert.ok(Date.now() - t0 < 3500);
    } finally {
      await a.close();
      await b.close();
    }
  });

  test("two tabs of one browser are one person", async () => {
    const a = await browser.newContext();
    try {
      const p1 = await a.newPage();
      await p1.goto(`${server.origin}/`);
      await waitText(p1, ONLINE, "1");
      const p2 = await a.newPage();
      await p2.goto(`${server.origin}/`);
      await waitText(p2, ONLINE, "1");
      const r = await fetch(`${server.origin}/v1/count?site=demo`);
      const c = await r.json();
      assert.equal(c.online, 1);
      assert.equal(c.tabs, 2);
    } finally {
      await a.close();
    }
  });
});
