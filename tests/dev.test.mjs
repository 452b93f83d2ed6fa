// `make dev` itself: it builds, serves http://127.0.0.1:8787 with wrangler dev (local KV on
// disk), and a page opened in Chromium counts itself; a second browser adds one.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
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
  const child = spawn("make", ["--no-print-directory", "dev"], { cwd: ROOT, detached: true, stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  child.stdout.on("data", (d) => { out += d; });
  child.stderr.on("data", (d) => { out += d; });
  let exited = null;
  child.on("exit", (c) => { exited = c; });
  const browser = await launch();
  try {
    const deadline = Date.now() + 180_000;
    for (;;) {
      assert.equal(exited, null, `make dev exited:\n${out}`);
      const ok = await fetch(`${ORIGIN}/healthz`).then((r) => r.ok, () => false);
      if (ok) break;
      assert.ok(Date.now() < deadline, `make dev not serving within 180 s:\n${out}`);
      await new Promise((r) => setTimeout(r, 250));
    }
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
    try { process.kill(-child.pid, "SIGTERM"); } catch { /* gone */ }
    const until = Date.now() + 10_000;
    while (exited === null && Date.now() < until) await new Promise((r) => setTimeout(r, 100));
    if (exited === null) { try { process.kill(-child.pid, "SIGKILL"); } catch { /* gone */ } }
  }
});
