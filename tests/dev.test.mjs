// `make dev` itself: it builds, serves http://127.0.0.1:8787 with wrangler dev (local KV on
// disk), and a page opened in Chromium counts itself; a second browser adds one.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnGroup } from "./lib/process-group.mjs";
import { createServer } from "node:net";
import { ROOT } from "./lib/miniflare.mjs";
import { launch } from "./lib/browser.mjs";

const ORIGIN = "http://127.0.0.1:8787";
const ONLINE = '[data-herenow="online"]';

const portFree = () => new Promise((resolve) => {
  const s = createServer();
  s.once("error", () => resolve(false));
  s.listen(8787, "127.0.0.1", () => s.close(() => resolve(true)));
});

test("make dev serves the demo and the count is live in Chromium", async () => {
  assert.ok(await portFree(), "port 8787 is busy: stop the running `make dev` first");
  const child = spawnGroup("make", ["--no-print-directory", "dev"], { cwd: ROOT });
  const browser = await launch();
  try {
    await child.waitFor(() => fetch(`${ORIGIN}/healthz`).then((r) => r.ok, () => false), 180_000, "make dev");
    const a = await browser.newContext();
    const pa = await a.newPage();
    await pa.goto(`${ORIGIN}/`);
    await pa.waitForFunction((sel) => Number(document.querySelector(sel)?.textContent) >= 1, ONLINE, { timeout: 15_000 });
    const n1 = Number(await pa.textContent(ONLINE));
    const b = await browser.newContext();
    const pb = await b.newPage();
    await pb.goto(`${ORIGIN}/`);
    await pb.waitForFunction(([sel, n]) => Number(document.querySelector(sel)?.textContent) === n, [ONLINE, n1 + 1], { timeout: 15_000 });
    // The first browser sees the second at its next heartbeat (15 s by default).
    await pa.waitForFunction(([sel, n]) => Number(document.querySelector(sel)?.textContent) === n, [ONLINE, n1 + 1], { timeout: 25_000 });
    await a.close();
    await b.close();
  } finally {
    await browser.close();
    await child.stop();
  }
});
