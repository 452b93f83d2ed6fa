// Store faults inside workerd: the PRESENCE binding is wrapped to fail, delay or serve stale
// data on command or on a schedule. The edge answers 503 with Retry-After (never a crash, never
// another error), and converges once KV is back. Stale data across two locations: see
// locations.test.mjs.
import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { startWorker, visitor, body, post, until, ORIGIN } from "./lib/miniflare.mjs";

describe("KV faults", () => {
  let mf;
  // A lone isolate reads KV only every SOLO_DELAY_S (default 180 s): 1 s here, so that
  // the store is in use during the test.
  before(async () => { mf = await startWorker({ faults: true, vars: { WINDOW_S: "3", SOLO_DELAY_S: "1" } }); });
  after(async () => { await mf?.dispose(); });

  const countStatus = async () => {
    const r = await mf.dispatchFetch(`${ORIGIN}/v1/count?site=demo`);
    return { status: r.status, retry: r.headers.get("retry-after"), json: await r.json() };
  };

  test("a failing store gives 503 with Retry-After on every API route, and the worker keeps serving", async () => {
    const a = visitor();
    assert.equal((await post(mf, "/v1/heartbeat", body(a, "t"))).status, 200);
    mf.setFault("fail");
    // Wait out the merged-view cache so the next count must read KV.
    await new Promise((r) => setTimeout(r, 1100));
    const hb = await post(mf, "/v1/heartbeat", body(visitor(), "t"));
    assert.equal(hb.status, 503);
    assert.ok(Number(hb.headers.get("retry-after")) > 0);
    const failed = await hb.json();
    assert.equal(failed.error.code, "store_unavailable");
    // Nothing of the runtime's error (message, stack) reaches the client.
    assert.doesNotMatch(JSON.stringify(failed), /injected|Error:|\bat /);
    const c = await countStatus();
    assert.equal(c.status, 503);
    assert.ok(Number(c.retry) > 0);
    const health = await mf.dispatchFetch(`${ORIGIN}/healthz`);
    assert.equal(health.status, 200, "the isolate survived");
    mf.setFault("ok");
    await post(mf, "/v1/leave", body(a, "t"));
  });

  test("once the fault clears, the count converges within one window", async () => {
    mf.setFault("fail");
    const v = [visitor(), visitor(), visitor()];
    for (const id of v) await post(mf, "/v1/heartbeat", body(id, "t"));
    mf.setFault("ok");
    const cleared = Date.now();
    // Keep the three visitors heartbeating, as clients backing off would, until it converges.
    const ok = await until(async () => {
      for (const id of v) await post(mf, "/v1/heartbeat", body(id, "t"));
      const c = await countStatus();
      return c.status === 200 && c.json.online === 3;
    }, 3000, 250);
    assert.ok(ok, "count is 3 again");
    assert.ok(Date.now() - cleared <= 3000 + 500, "within one window");
    for (const id of v) await post(mf, "/v1/leave", body(id, "t"));
  });

  test("a slow store delays answers but loses nothing", async () => {
    const id = visitor();
    // Let the merged view go stale so this heartbeat must list KV through the slow store.
    await new Promise((r) => setTimeout(r, 1100));
    mf.setFault("delay:300");
    const t0 = Date.now();
    const r = await post(mf, "/v1/heartbeat", body(id, "t"));
    const took = Date.now() - t0;
    mf.setFault("ok");
    assert.equal(r.status, 200);
    assert.equal((await r.json()).online, 1);
    assert.ok(took >= 300, `the heartbeat waited for the slow store (${took} ms)`);
    await post(mf, "/v1/leave", body(id, "t"));
  });

  test("a schedule of faults (fail, slow, stale) under steady heartbeats: only 200/204 or 503 with Retry-After, then convergence within one window", async () => {
    const people = [visitor(), visitor(), visitor()];
    for (const id of people) assert.equal((await post(mf, "/v1/heartbeat", body(id, "t"))).status, 200);
    // Let the merged view go stale so that reads during the schedule reach the store.
    await new Promise((r) => setTimeout(r, 1100));
    const steps = [["fail", 1200], ["delay:150", 1000], ["stale", 1200], ["fail", 600]];
    const total = steps.reduce((a, [, ms]) => a + ms, 0);
    mf.setSchedule(steps);
    const t0 = Date.now();
    const seen = new Map(); // status → how many
    const bad = [];
    const note = async (r, want) => {
      seen.set(r.status, (seen.get(r.status) ?? 0) + 1);
      if (r.status === 503) {
        if (!(Number(r.headers.get("retry-after")) > 0)) bad.push("503 without Retry-After");
        const j = await r.json();
        if (j.error?.code !== "store_unavailable") bad.push(`503 ${JSON.stringify(j)}`);
      } else if (r.status !== want) bad.push(`${r.status} ${await r.text()}`);
      else await r.arrayBuffer();
    };
    // Clients keep beating (a real one would back off; the edge must cope either way); one
    // person leaves and another comes while the store misbehaves.
    let left = false;
    while (Date.now() - t0 < total) {
      if (!left && Date.now() - t0 > total / 2) {
        await note(await post(mf, "/v1/leave", body(people[0], "t")), 204);
        people[0] = visitor();
        left = true;
      }
      for (const id of people) await note(await post(mf, "/v1/heartbeat", body(id, "t")), 200);
      const c = await mf.dispatchFetch(`${ORIGIN}/v1/count?site=demo`);
      await note(c, 200);
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.deepEqual(bad, [], "every answer is a success or a 503 with Retry-After");
    assert.ok(seen.get(503) > 0 && seen.get(200) > 0, `the schedule was felt: ${JSON.stringify([...seen])}`);
    assert.equal((await mf.dispatchFetch(`${ORIGIN}/healthz`)).status, 200, "the isolate survived");
    // The schedule is over: with clients beating, the count is the truth (3) within a window.
    const over = Date.now();
    const ok = await until(async () => {
      for (const id of people) await post(mf, "/v1/heartbeat", body(id, "t"));
      const c = await countStatus();
      return c.status === 200 && c.json.online === 3;
    }, 3000 + 500, 100);
    assert.ok(ok, "count is 3 again");
    assert.ok(Date.now() - over <= 3000 + 500, `within one window (${Date.now() - over} ms)`);
    for (const id of people) await post(mf, "/v1/leave", body(id, "t"));
  });
});
