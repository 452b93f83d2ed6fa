// History, records and spike alerts against the built worker in workerd (Miniflare).
// Several workers inside one Miniflare share one KV namespace (persisted on disk): isolates
// of one location, or of two (LOCATION), without the SQLite-busy failures of two workerd
// processes on one directory. A node http server on 127.0.0.1 receives the webhooks.
// HISTORY_WRITE_S=2 makes the writer rewrite every 2 s (claims confirmed after 2 s) and the
// alerts' cooldown_s is 3, so each test takes seconds.
import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { createServer } from "node:http";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Miniflare } from "miniflare";
import { BUILD, ORIGIN, visitor, until } from "./lib/miniflare.mjs";

const COOLDOWN_S = 3;
const WRITE_S = 2;

/** A webhook receiver on 127.0.0.1 (a free port): records each POST; `/fail` answers 500. */
async function receiver() {
  const calls = [];
  const server = createServer((req, res) => {
    let data = "";
    req.on("data", (c) => { data += c; });
    req.on("end", () => {
      calls.push({ path: req.url, t: Date.now(), type: req.headers["content-type"], body: data });
      res.statusCode = req.url === "/fail" ? 500 : 204;
      res.end();
    });
  });
  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  const url = `http://127.0.0.1:${server.address().port}`;
  return { calls, url, close: () => new Promise((r) => server.close(r)) };
}

/** The sites, one per test: `demo` keeps history only, `spiky` alerts above 2 people,
 * `failing` above 0 to a receiver answering 500, `closed` sets `public: false`. */
const sites = (hook) => JSON.stringify({
  demo: { origins: [ORIGIN] },
  spiky: { origins: [ORIGIN], alerts: [{ above: 2, webhook: `${hook}/hook`, cooldown_s: COOLDOWN_S }] },
  failing: { origins: [ORIGIN], alerts: [{ above: 0, webhook: `${hook}/fail` }] },
  closed: { origins: [ORIGIN], public: false },
});

/** One Miniflare running the built worker as `workers` ({name: LOCATION}) on one KV namespace. */
async function start(workers, { persist, hook }) {
  const bindings = {
    SITES: sites(hook), WINDOW_S: "30", HISTORY_WRITE_S: String(WRITE_S), SOLO_DELAY_S: "1", REMOTE_DELAY_S: "1",
    RATE_IP_PER_MIN: "1000000", RATE_VISITOR_PER_MIN: "1000000", NEW_VISITORS_PER_IP_PER_MIN: "1000000",
  };
  const mf = new Miniflare({
    kvPersist: persist,
    workers: Object.entries(workers).map(([name, location]) => ({
      name, modules: true, scriptPath: join(BUILD, "index.js"), modulesRoot: BUILD,
      modulesRules: [{ type: "ESModule", include: ["**/*.js"] }, { type: "CompiledWasm", include: ["**/*.wasm"] }],
      compatibilityDate: "2026-04-01", bindings: { ...bindings, LOCATION: location },
      kvNamespaces: { PRESENCE: "presence" },
    })),
  });
  await mf.ready;
  const fetchers = Object.fromEntries(await Promise.all(Object.keys(workers).map(async (n) => [n, await mf.getWorker(n)])));
  const kv = await mf.getKVNamespace("PRESENCE", Object.keys(workers)[0]);
  return { mf, w: fetchers, kv };
}

/** A heartbeat of `v` on `site` at worker `w`: the status, the answer and how long it took. */
async function beat(w, v, site = "demo") {
  const t = Date.now();
  const r = await w.fetch(`${ORIGIN}/v1/heartbeat`, {
    method: "POST",
    headers: { "content-type": "text/plain;charset=UTF-8", origin: ORIGIN },
    body: JSON.stringify({ site, visitor: v, tab: "t", page: "/", state: "active" }),
  });
  const text = await r.text();
  return { status: r.status, ms: Date.now() - t, json: r.status === 200 ? JSON.parse(text) : text };
}

async function leave(w, v, site = "demo") {
  const r = await w.fetch(`${ORIGIN}/v1/leave`, {
    method: "POST",
    headers: { "content-type": "text/plain;charset=UTF-8", origin: ORIGIN },
    body: JSON.stringify({ site, visitor: v, tab: "t", page: "/", state: "active" }),
  });
  await r.arrayBuffer();
  assert.equal(r.status, 204);
}

async function history(w, site = "demo", range = "1h") {
  const r = await w.fetch(`${ORIGIN}/v1/history?site=${site}&range=${range}`);
  const text = await r.text();
  assert.equal(r.status, 200, text);
  return JSON.parse(text);
}

// Paces the beats of a check that nothing happens for a while (no condition to poll for).
const pace = () => new Promise((r) => setTimeout(r, 200));

const stored = async (kv, site = "demo") => JSON.parse((await kv.get(`h:${site}`)) ?? "null");

describe("history, records and alerts in workerd", () => {
  let dir, hook, run;
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), "herenow-history-"));
    hook = await receiver();
    // a and b: two isolates of one location; far: another location.
    run = await start({ a: "loc-a", b: "loc-a", far: "loc-b" }, { persist: dir, hook: hook.url });
  });
  after(async () => {
    await run?.mf.dispose();
    await hook?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test("the record only rises and carries its time; history survives a restart and another location sees it", async () => {
    const { a } = run.w;
    const people = [visitor(), visitor(), visitor()];
    // One person, then three: the record is 3 from the beat that first counted 3.
    const records = [];
    records.push((await beat(a, people[0])).json.record);
    const beforeThree = Date.now();
    await beat(a, people[1]);
    const third = await beat(a, people[2]);
    assert.equal(third.json.online, 3);
    const afterThree = Date.now();
    const record = await until(async () => {
      const r = (await beat(a, people[0])).json.record;
      records.push(r);
      return r?.online === 3 && r;
    }, 5000);
    assert.ok(record, `the record reached 3: ${JSON.stringify(records)}`);
    assert.ok(record.at >= beforeThree && record.at <= afterThree, `its time is the beat's: ${record.at}`);
    // Two leave: the count falls, the record stays, with its time.
    await leave(a, people[1]);
    await leave(a, people[2]);
    const low = await beat(a, people[0]);
    assert.equal(low.json.online, 1);
    assert.deepEqual(low.json.record, record);
    const known = records.filter(Boolean);
    for (let i = 1; i < known.length; i++) {
      assert.ok(known[i].online >= known[i - 1].online, `never falls: ${JSON.stringify(known)}`);
      if (known[i].online === known[i - 1].online) assert.equal(known[i].at, known[i - 1].at, "same count, same time");
    }

    // Written to KV within a write interval or two (the writer writes after a request).
    const written = await until(async () => {
      await beat(a, people[0]);
      return (await stored(run.kv))?.record?.online === 3;
    }, 3 * WRITE_S * 1000, 100);
    assert.ok(written, "the writer wrote the record");
    // Another location, which never counted anyone, sees the history from KV.
    const far = await history(run.w.far);
    assert.deepEqual(far.record, record);
    assert.equal(far.peak.online, 3);
    assert.ok(far.points.some(([, n]) => n === 3), "a step with 3 people");

    // A restart: a new Miniflare (new isolates) on the same KV directory.
    await run.mf.dispose();
    run = await start({ a: "loc-a", b: "loc-a", far: "loc-b" }, { persist: dir, hook: hook.url });
    const again = await history(run.w.a, "demo", "24h");
    assert.deepEqual(again.record, record, "the record survives the restart");
    assert.equal(again.step_s, 300);
    assert.ok(again.points.some(([, n]) => n === 3), "so does the chart");
    const farAgain = await history(run.w.far, "demo", "7d");
    assert.equal(farAgain.points.at(-1)[1], 3);
    for (const v of people.slice(0, 1)) await leave(run.w.a, v);
  });

  test("a crossing makes one webhook call across two isolates, then none until below and cooled down", async () => {
    const { a, b } = run.w;
    const calls = () => hook.calls.filter((c) => c.path === "/hook");
    const base = calls().length;
    const crowd = [visitor(), visitor(), visitor(), visitor()];
    // Four people, two at each isolate, beating until both count them.
    const beatAll = async (vs) => Promise.all(vs.map((v, i) => beat(i % 2 ? b : a, v, "spiky")));
    const called = await until(async () => {
      await beatAll(crowd);
      return calls().length > base;
    }, 10_000, 200);
    assert.ok(called, "the crossing was called");
    const first = calls()[base];
    const body = JSON.parse(first.body);
    assert.deepEqual(Object.keys(body).sort(), ["at", "online", "site", "threshold"]);
    assert.equal(body.site, "spiky");
    assert.equal(body.threshold, 2);
    assert.ok(body.online > 2, `online ${body.online}`);
    assert.ok(Math.abs(body.at - first.t) < 10_000, "at is the firing's time");
    assert.match(first.type, /application\/json/);

    // Still above, for longer than the cooldown, at both isolates: no second call.
    const quietUntil = Date.now() + (COOLDOWN_S + 2 * WRITE_S) * 1000;
    while (Date.now() < quietUntil) {
      await beatAll(crowd);
      await pace();
    }
    assert.equal(calls().length, base + 1, "one call while above");

    // Below the threshold (one person) past the cooldown: armed again, no call.
    for (const [i, v] of crowd.entries()) if (i > 0) await leave(i % 2 ? b : a, v, "spiky");
    const armedBy = Date.now() + (COOLDOWN_S + 2 * WRITE_S) * 1000;
    while (Date.now() < armedBy) {
      await beatAll(crowd.slice(0, 1));
      await pace();
    }
    assert.equal(calls().length, base + 1, "no call below the threshold");
    // The next crossing: one more call.
    const again = await until(async () => {
      await beatAll(crowd);
      return calls().length > base + 1;
    }, 10_000, 200);
    assert.ok(again, "the next crossing is called");
    const settle = Date.now() + 2 * WRITE_S * 1000;
    while (Date.now() < settle) {
      await beatAll(crowd);
      await pace();
    }
    assert.equal(calls().length, base + 2, "exactly one call for it");
    for (const [i, v] of crowd.entries()) await leave(i % 2 ? b : a, v, "spiky");
  });

  test("a failing webhook is retried with backoff and given up; heartbeats are unaffected", async () => {
    const { a } = run.w;
    const fails = () => hook.calls.filter((c) => c.path === "/fail");
    const v = visitor();
    const beats = [];
    // Beats keep going while the retries run: all 200, all quick.
    const firstFail = await until(async () => {
      beats.push(await beat(a, v, "failing"));
      return fails().length > 0;
    }, 10_000, 100);
    assert.ok(firstFail, "the alert was attempted");
    const gaveUp = await until(async () => {
      beats.push(await beat(a, v, "failing"));
      return fails().length >= 4 && Date.now() - fails().at(-1).t > 6_000;
    }, 30_000, 100);
    assert.ok(gaveUp, `attempts: ${fails().length}`);
    const t = fails().map((c) => c.t);
    assert.equal(t.length, 4, "one call and three retries, then given up");
    const gaps = t.slice(1).map((x, i) => x - t[i]);
    for (const [i, want] of [1000, 2000, 4000].entries()) {
      assert.ok(gaps[i] >= want - 100 && gaps[i] < want + 3000, `gap ${i}: ${gaps[i]} ms (backoff ${want})`);
    }
    assert.ok(beats.every((b) => b.status === 200), "every heartbeat answered 200");
    const slowest = Math.max(...beats.map((b) => b.ms));
    assert.ok(slowest < 1000, `heartbeats never wait for the webhook (slowest ${slowest} ms of ${beats.length})`);
    await leave(a, v, "failing");
  });

  test("public: false turns the widget, history and badge into 403 not_public", async () => {
    const { a } = run.w;
    for (const path of ["/v1/widget", "/v1/history", "/v1/badge.svg"]) {
      const r = await a.fetch(`${ORIGIN}${path}?site=closed`);
      const text = await r.text();
      assert.equal(r.status, 403, `${path}: ${text}`);
      assert.equal(JSON.parse(text).error.code, "not_public", path);
    }
    // Its counts stay public.
    const c = await a.fetch(`${ORIGIN}/v1/count?site=closed`);
    assert.equal(c.status, 200, await c.text());
  });
});
