// `make dev` itself: it builds, serves http://127.0.0.1:8787 with wrangler dev (local KV on
// disk), and a page opened in Chromium counts itself; a second browser adds one. Run with
// ORIGINS, as the README shows: those origins are allowed for the demo site, others are not.
// It serves the dev asset set, with the demo's member sign-in (scripts/dev-assets.mjs).
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnGroup } from "./lib/process-group.mjs";
import { createServer } from "node:net";
import { ROOT } from "./lib/miniflare.mjs";
import { launch } from "./lib/browser.mjs";
import { randomUUID } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";

const ORIGIN = "http://127.0.0.1:8787";
const EXTRA = ["http://localhost:3000", "http://127.0.0.1:4000"];
const ONLINE = '[data-herenow="online"]';

const portFree = () => new Promise((resolve) => {
  const s = createServer();
  s.once("error", () => resolve(false));
  s.listen(8787, "127.0.0.1", () => s.close(() => resolve(true)));
});

/** A heartbeat (or a leave) sent with `Origin: origin`, as a page on that origin would. */
const beatFrom = (origin, visitor = randomUUID(), route = "heartbeat") => fetch(`${ORIGIN}/v1/${route}`, {
  method: "POST",
  headers: { origin, "content-type": "text/plain" },
  body: JSON.stringify({ site: "demo", visitor, tab: "dev-test", page: "/" }),
});

test("make dev ORIGINS=… serves the demo, allows those origins, and the count is live in Chromium", async () => {
  assert.ok(await portFree(), "port 8787 is busy: stop the running `make dev` first");
  const child = spawnGroup("make", ["--no-print-directory", "dev", `ORIGINS=${EXTRA.join(" ")}`, "HEARTBEAT_S=5"], { cwd: ROOT });
  const browser = await launch();
  try {
    await child.waitFor(() => fetch(`${ORIGIN}/healthz`).then((r) => r.ok, () => false), 180_000, "make dev");
    for (const o of EXTRA) {
      const visitor = randomUUID();
      const r = await beatFrom(o, visitor);
      assert.equal(r.status, 200, `${o}: ${await r.text()}`);
      assert.equal(r.headers.get("access-control-allow-origin"), o);
      assert.equal((await beatFrom(o, visitor, "leave")).status, 204); // out of the counts below
    }
    // An origin not in ORIGINS (nor in wrangler.toml) is refused, and edge/wrangler.toml is
    // as it was: ORIGINS changes this run only.
    const r = await beatFrom("http://127.0.0.1:4001");
    assert.equal(r.status, 403);
    assert.equal((await r.json()).error.code, "origin_not_allowed");
    // The refusal itself is readable by that page, so its client can say why (issue 13's
    // readable 403, edge/src/app.rs handle_admitted); the heartbeat recorded nothing.
    assert.equal(r.headers.get("access-control-allow-origin"), "http://127.0.0.1:4001");
    assert.ok(!readFileSync(join(ROOT, "edge", "wrangler.toml"), "utf8").includes("localhost:3000"));
    const a = await browser.newContext();
    const pa = await a.newPage();
    await pa.goto(`${ORIGIN}/`);
    await pa.waitForFunction((sel) => Number(document.querySelector(sel)?.textContent) >= 1, ONLINE, { timeout: 15_000 });
    // make dev serves the dev asset set: the demo's member sign-in (www-dev/) is there.
    assert.equal(await pa.locator("#signin-form").isVisible(), true, "the dev sign-in form is shown");
    const signin = await fetch(`${ORIGIN}/dev-signin.js`);
    assert.equal(signin.status, 200);
    assert.match(await signin.text(), /DEVELOPMENT ONLY/);
    const n1 = Number(await pa.textContent(ONLINE));
    const b = await browser.newContext();
    const pb = await b.newPage();
    await pb.goto(`${ORIGIN}/`);
    await pb.waitForFunction(([sel, n]) => Number(document.querySelector(sel)?.textContent) === n, [ONLINE, n1 + 1], { timeout: 15_000 });
    // The first browser sees the second at its next heartbeat (5 s, set above; 60 s deployed).
    await pa.waitForFunction(([sel, n]) => Number(document.querySelector(sel)?.textContent) === n, [ONLINE, n1 + 1], { timeout: 15_000 });
    await a.close();
    await b.close();
  } finally {
    await browser.close();
    await child.stop();
  }
});
