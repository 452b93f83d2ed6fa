// Two edge instances (two workerd processes) sharing one persisted KV directory stand in for
// two Cloudflare locations: visitors split between them, each converges to the true total,
// a leave at one shows at the other, and neither's writes erase the other's visitors.
import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startWorker, visitor, body, post, count, until } from "./lib/miniflare.mjs";

const WINDOW_S = 4;
// Documented bound for a change at one location to show at another: the join delay (at
// most half the window here) + the record spacing (1 s) + the merged-view cache (1 s).
const BOUND_MS = (WINDOW_S / 2) * 1000 + 1000 + 1000;

describe("two locations sharing KV", () => {
  let dir, a, b;
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), "herenow-2loc-"));
    a = await startWorker({ persist: dir, vars: { WINDOW_S: String(WINDOW_S) } });
    b = await startWorker({ persist: dir, vars: { WINDOW_S: String(WINDOW_S) } });
  });
  after(async () => {
    await a?.dispose();
    await b?.dispose();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test("split visitors converge everywhere, a leave shows elsewhere, nobody erases anybody", async () => {
    const atA = Array.from({ length: 6 }, () => visitor());
    const atB = Array.from({ length: 4 }, () => visitor());
    const beatAll = async () => {
      await Promise.all([
        ...atA.map((v) => post(a, "/v1/heartbeat", body(v, "t"))),
        ...atB.map((v) => post(b, "/v1/heartbeat", body(v, "t"))),
      ]);
    };
    await beatAll();
    const t0 = Date.now();
    const converged = await until(async () => {
      await beatAll();
      const [ca, cb] = [await count(a), await count(b)];
      return ca.online === 10 && cb.online === 10;
    }, BOUND_MS + 1000, 250);
    assert.ok(converged, "both locations count all 10 visitors");
    const tookMs = Date.now() - t0;
    assert.ok(tookMs <= BOUND_MS + 1000, `converged in ${tookMs} ms`);

    // Several rounds of heartbeats and flushes on both sides: still 10 on both.
    for (let round = 0; round < 6; round++) {
      await beatAll();
      await new Promise((r) => setTimeout(r, 400));
    }
    assert.equal((await count(a)).online, 10);
    assert.equal((await count(b)).online, 10);

    // A leave at A shows at B within the bound.
    const leaver = atA.pop();
    assert.equal((await post(a, "/v1/leave", body(leaver, "t"))).status, 204);
    const tl = Date.now();
    const seen = await until(async () => {
      await beatAll();
      return (await count(b)).online === 9;
    }, WINDOW_S * 1000 + 1000, 100);
    assert.ok(seen, "B sees the leave");
    const leaveMs = Date.now() - tl;
    assert.ok(leaveMs <= WINDOW_S * 1000 + 1000, `leave visible at B after ${leaveMs} ms`);
    assert.equal((await count(a)).online, 9, "A saw its own leave at once");

    // A visitor that moves from A to B (routing changed) is still one person.
    const mover = atA.pop();
    atB.push(mover);
    const moved = await until(async () => {
      await beatAll();
      return (await count(a)).online === 9 && (await count(b)).online === 9;
    }, BOUND_MS + 1000, 250);
    assert.ok(moved, "a moved visitor counts once at both");
  });
});
