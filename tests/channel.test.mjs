// The per-location channel (edge/src/cache.rs) in workerd: several workers in one Miniflare
// are isolates of one location (LOCATION) that share one KV namespace and, as the isolates
// of one Cloudflare data center do, one `caches.default`. With the cache working, they
// exchange records through it and only the location's publisher writes KV; with
// `cache: false` (as on *.workers.dev, where `put` does nothing and `match` misses) or
// `CHANNEL=kv`, the probe keeps the channel off and every isolate publishes to KV as before.
// KV operations are counted by bench/lib/kvops.mjs's wrapped binding.
import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { Miniflare } from "miniflare";
import { countingKv, listKeys } from "../bench/lib/kvops.mjs";
// A seeded PRNG: the same visitors go to the same workers on every run.
import { rng } from "../bench/lib/kvload.mjs";
import { BUILD, ORIGIN, visitor, until } from "./lib/miniflare.mjs";

const VARS = {
  SITES: JSON.stringify({ demo: { origins: [ORIGIN] } }),
  // Long enough that no tab times out during a test: counts change only by leaves.
  WINDOW_S: "60",
  SOLO_DELAY_S: "1",
  REMOTE_DELAY_S: "1",
  DEBUG_STATS: "1",
  RATE_IP_PER_MIN: "1000000",
  RATE_VISITOR_PER_MIN: "1000000",
  NEW_VISITORS_PER_IP_PER_MIN: "1000000",
};
// Every count at every isolate right: a peer's record reaches the channel within the record
// spacing (1 s) and the others poll it every 500 ms; through KV, the same with KV's local
// (lag-free) copy. Generous for a loaded 2-core machine.
const CONVERGE_MS = 15_000;
// A leave at one isolate of a tab another isolate holds shows at all four within ~2 s:
// the leaving isolate's next record write (1 s spacing) plus a poll (500 ms), with slack.
const LEAVE_BOUND_MS = 2_500;

/** `workers`: [{ name, location, cache = true, vars }], one Miniflare, KV counted. */
async function start(workers) {
  if (!existsSync(join(BUILD, "index.js"))) throw new Error(`no built worker at ${BUILD}: run \`make build-edge\` first`);
  const counting = countingKv();
  const mf = new Miniflare({
    workers: [
      ...workers.map(({ name, location, cache = true, vars = {} }) => ({
        name, modules: true, scriptPath: join(BUILD, "index.js"), modulesRoot: BUILD,
        modulesRules: [{ type: "ESModule", include: ["**/*.js"] }, { type: "CompiledWasm", include: ["**/*.wasm"] }],
        compatibilityDate: "2026-04-01",
        cache,
        bindings: { ...VARS, LOCATION: location, ...vars },
        wrappedBindings: { PRESENCE: { scriptName: "counting-kv" } },
      })),
      counting.worker,
    ],
  });
  await mf.ready;
  const w = await Promise.all(workers.map(({ name }) => mf.getWorker(name)));
  return { mf, w, ops: counting.ops, reset: counting.reset, keys: () => listKeys(mf) };
}


const json = (v) => JSON.stringify({ site: "demo", visitor: v, tab: "t", page: "/", state: "active" });
const send = (w, path, v) => w.fetch(`${ORIGIN}${path}`, {
  method: "POST",
  headers: { "content-type": "text/plain;charset=UTF-8", origin: ORIGIN },
  body: json(v),
});

async function beat(w, v) {
  const r = await send(w, "/v1/heartbeat", v);
  const text = await r.text();
  assert.equal(r.status, 200, text);
}

async function leave(w, v) {
  const r = await send(w, "/v1/leave", v);
  await r.arrayBuffer();
  assert.equal(r.status, 204);
}

async function online(w) {
  const r = await w.fetch(`${ORIGIN}/v1/count?site=demo`);
  const text = await r.text();
  assert.equal(r.status, 200, text);
  return JSON.parse(text).online;
}

/** This isolate's id (as in its record key) and whether its channel is on. */
async function health(w) {
  const r = await w.fetch(`${ORIGIN}/healthz`);
  return r.json();
}

/** The isolates whose records KV holds for `location`. */
async function recordIsolates(run, location) {
  const prefix = `r:demo:${location}/`;
  return (await run.keys()).filter((k) => k.startsWith(prefix)).map((k) => k.slice(prefix.length));
}

/** Polls until every worker in `ws` counts `want`; returns how long it took, or fails. */
async function allCount(ws, want, ms, what) {
  const t0 = Date.now();
  let seen = [];
  const ok = await until(async () => {
    seen = await Promise.all(ws.map(online));
    return seen.every((n) => n === want);
  }, ms, 100);
  assert.ok(ok, `${what}: every isolate counts ${want} within ${ms} ms; they count ${seen.join(", ")}`);
  return Date.now() - t0;
}

/**
 * ~30 visitors heartbeat to random workers of one location and 8 leave through random
 * workers; then a tab that heartbeated to worker 0 leaves through worker 3. Returns
 * { holders: the isolates that received heartbeats, tookMs, leaveMs, left: the truth }.
 */
async function visitAndLeave(run, ws, seed) {
  const random = rng(seed);
  const pick = () => Math.floor(random() * ws.length);
  const people = Array.from({ length: 30 }, (_, i) => ({ v: visitor(), at: i === 0 ? 0 : pick() }));
  await Promise.all(people.map((p) => beat(ws[p.at], p.v)));
  const ids = await Promise.all(ws.map(async (w) => (await health(w)).isolate));
  const holders = new Set(people.map((p) => ids[p.at]));
  const leaving = people.slice(1, 9);
  await Promise.all(leaving.map((p) => leave(ws[pick()], p.v)));
  let truth = people.length - leaving.length;
  const tookMs = await allCount(ws, truth, CONVERGE_MS, "after 30 visits and 8 leaves");
  // The tab of people[0] heartbeated to worker 0; it leaves through worker 3.
  const t0 = Date.now();
  await leave(ws[3], people[0].v);
  truth -= 1;
  await allCount(ws, truth, CONVERGE_MS, "after a leave through worker 3 of worker 0's tab");
  const leaveMs = Date.now() - t0;
  return { holders, ids, tookMs, leaveMs, truth };
}

describe("the per-location channel (Cache API) in workerd", () => {
  describe("with the cache working", () => {
    let run, result;
    before(async () => {
      // Four isolates of loc-a, and one of loc-b (for the second location's test).
      run = await start([
        ...[0, 1, 2, 3].map((i) => ({ name: `a${i}`, location: "loc-a" })),
        { name: "far", location: "loc-b" },
      ]);
    });
    after(async () => { await run?.mf.dispose(); });

    test("4 isolates of one location agree through the channel; only the publisher writes KV", async () => {
      const ws = run.w.slice(0, 4);
      result = await visitAndLeave(run, ws, 1);
      for (const w of ws) assert.equal((await health(w)).channel, true, "the probe found the cache working");
      assert.ok(result.leaveMs <= LEAVE_BOUND_MS, `the leave showed everywhere in ${result.leaveMs} ms`);
      // The publisher writes the location's record after the join delay (1 s).
      const published = await until(async () => (await recordIsolates(run, "loc-a")).length > 0, CONVERGE_MS, 200);
      assert.ok(published, "the location's publisher wrote its record to KV");
      const keys = await recordIsolates(run, "loc-a");
      assert.equal(keys.length, 1, `KV holds one record of loc-a, not ${keys.length}: ${keys.join(", ")}`);
      assert.ok(result.ids.includes(keys[0]), "the record is one of the four isolates'");
      console.log(`# channel: converged in ${result.tookMs} ms, the leave showed in ${result.leaveMs} ms; KV ops ${JSON.stringify(run.ops)}`);
    });

    test("a second location sees the first location's count through KV, and the first sees it", async () => {
      assert.ok(result, "needs the test above");
      const far = run.w[4];
      const t0 = Date.now();
      // far counts loc-a's visitors from its publisher's record in KV.
      await allCount([far], result.truth, CONVERGE_MS, "the other location");
      // Two visitors at far: every isolate of loc-a learns of them through KV.
      await Promise.all([beat(far, visitor()), beat(far, visitor())]);
      await allCount(run.w, result.truth + 2, CONVERGE_MS, "both locations");
      console.log(`# second location: both ways in ${Date.now() - t0} ms`);
      const keys = await recordIsolates(run, "loc-a");
      assert.equal(keys.length, 1, `still one record of loc-a in KV: ${keys.join(", ")}`);
      assert.equal((await recordIsolates(run, "loc-b")).length, 1, "far's own record");
    });
  });

  for (const [name, workers] of [
    ["without a working cache (workers.dev: cache: false), every isolate exchanges its record through KV",
      (i) => ({ name: `a${i}`, location: "loc-a", cache: false })],
    ["with CHANNEL=kv and the cache working, every isolate exchanges its record through KV",
      (i) => ({ name: `a${i}`, location: "loc-a", vars: { CHANNEL: "kv" } })],
  ]) {
    test(name, async () => {
      const run = await start([0, 1, 2, 3].map(workers));
      try {
        const result = await visitAndLeave(run, run.w, 1);
        for (const w of run.w) assert.equal((await health(w)).channel, false, "the channel is off");
        assert.ok(result.leaveMs <= LEAVE_BOUND_MS, `the leave showed everywhere in ${result.leaveMs} ms`);
        const missing = async () => {
          const inKv = new Set(await recordIsolates(run, "loc-a"));
          return [...result.holders].filter((id) => !inKv.has(id));
        };
        const all = await until(async () => (await missing()).length === 0, CONVERGE_MS, 200);
        assert.ok(all, `each isolate that held tabs has its own record in KV; missing: ${(await missing()).join(", ")}`);
        assert.ok(result.holders.size >= 3, `the visitors spread over ${result.holders.size} isolates`);
        console.log(`# KV: converged in ${result.tookMs} ms, the leave showed in ${result.leaveMs} ms; ${result.holders.size} records; KV ops ${JSON.stringify(run.ops)}`);
      } finally {
        await run.mf.dispose();
      }
    });
  }

  test("KV writes and lists: 4 isolates with the channel cost at most 2x one isolate; without it several times more", async () => {
    // The same churn (a visitor joins and one leaves every 100 ms, five beat, a count is
    // read), routed at random over the isolates, counted after a warm-up.
    const WARMUP_MS = 4_000;
    const MEASURE_MS = 12_000;
    const load = async (run) => {
      const random = rng(7);
      const pick = () => run.w[Math.floor(random() * run.w.length)];
      const pool = [];
      const tick = async () => {
        const v = visitor();
        pool.push(v);
        const jobs = [beat(pick(), v), online(pick())];
        if (pool.length > 20) jobs.push(leave(pick(), pool.splice(Math.floor(random() * pool.length), 1)[0]));
        for (let i = 0; i < 5 && pool.length; i++) jobs.push(beat(pick(), pool[Math.floor(random() * pool.length)]));
        await Promise.all(jobs);
      };
      const phase = async (ms) => {
        const end = Date.now() + ms;
        while (Date.now() < end) {
          const t = Date.now();
          await tick();
          await new Promise((r) => setTimeout(r, Math.max(0, 100 - (Date.now() - t))));
        }
      };
      await phase(WARMUP_MS);
      run.reset();
      const t0 = Date.now();
      await phase(MEASURE_MS);
      const minutes = (Date.now() - t0) / 60_000;
      return { perMin: (run.ops.put + run.ops.list) / minutes, ops: { ...run.ops } };
    };
    const measure = async (workers) => {
      const run = await start(workers);
      try {
        return await load(run);
      } finally {
        await run.mf.dispose();
      }
    };
    const one = await measure([{ name: "a0", location: "loc-a" }]);
    const channel = await measure([0, 1, 2, 3].map((i) => ({ name: `a${i}`, location: "loc-a" })));
    const kv = await measure([0, 1, 2, 3].map((i) => ({ name: `a${i}`, location: "loc-a", cache: false })));
    const show = (r) => `${r.perMin.toFixed(0)}/min ${JSON.stringify(r.ops)}`;
    console.log(`# KV puts+lists: 1 isolate ${show(one)}; 4 with the channel ${show(channel)}; 4 through KV ${show(kv)}`);
    assert.ok(channel.perMin <= 2 * one.perMin, `4 isolates with the channel: ${channel.perMin.toFixed(0)}/min, one: ${one.perMin.toFixed(0)}/min`);
    assert.ok(kv.perMin >= 2.5 * channel.perMin, `4 isolates through KV: ${kv.perMin.toFixed(0)}/min, with the channel: ${channel.perMin.toFixed(0)}/min`);
  });
});
