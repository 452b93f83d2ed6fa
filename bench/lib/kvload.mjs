// The simulation's workload, driven in real time against isolates of one location in workerd
// (bench/lib/kvops.mjs's counted workers), so that the edge's KV operations per request can be
// set beside the simulation's for the same load (issue 15).
//
// What visitors do is ported from sim/src/run.rs (`Sim::handle`, `Sim::arrive`, the initial
// population in `run`) with the defaults of sim/src/scenario.rs's `Workload`: visits
// exponential (mean 10 min), Poisson arrivals at visitors / mean visit; the focused tab
// heartbeats every interval ±10% while visible; visitors look away after 8 min on average
// (one idle beacon, then silence) for 2 min on average; navigate every 4 min on average (half
// of them full page loads: a leave, then a new tab id 0.2-1 s later; the rest the same tab on
// a new page); 30% open a second tab (an idle beacon) and switch every 3 min; 10% of visits end
// without a leave, the rest leave every tab; 10% of visitors are members (a signed token). The
// count is sampled every `sampleS` at a random isolate during the measured part, as the
// simulation samples it. Pages: 200, popularity falling with the cube of a uniform draw.
//
// Time: the simulation starts its population a window after its t = 0 (away visitors' idle
// beacons sent up to a window before); here t = 0 is that instant, and beacons the model
// places before it are sent at 0. Measured: the ops and requests of [warmupS, warmupS +
// measureS); the simulation's matching run: warm-up = window + warmupS (see
// `simulationArgs`).
//
// Routing: "random" sends each request to a uniformly random isolate; "sticky" keeps a tab on
// the isolate of its first request and moves it to another one with probability `moveProb`
// per request (a new HTTP/2 connection), as the simulation's sticky routing does.
//
// Bounded: at most `maxRequests` requests, and it stops at warmupS + measureS (in-flight
// requests are awaited at most 10 s more).
import { randomUUID, createHmac } from "node:crypto";

/** The simulation's `Workload::default()` (sim/src/scenario.rs), in ms and shares. */
export const WORKLOAD = {
  meanVisitMs: 10 * 60_000,
  meanPageMs: 4 * 60_000,
  mpaShare: 0.5,
  meanVisibleMs: 8 * 60_000,
  meanAwayMs: 2 * 60_000,
  extraTabShare: 0.3,
  meanSwitchMs: 3 * 60_000,
  vanishShare: 0.1,
  memberShare: 0.1,
  pages: 200,
};

/** A seeded PRNG (mulberry32), so one seed gives one sequence of visitor behaviour. */
export function rng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const b64url = (s) => Buffer.from(s).toString("base64url");
/** An HS256 member token as a site's backend mints it. */
export function memberToken(secret, sub, name, expS) {
  const head = b64url(JSON.stringify({ alg: "HS256", typ: "JWT" }));
  const body = b64url(JSON.stringify({ sub, name, exp: expS }));
  const sig = createHmac("sha256", secret).update(`${head}.${body}`).digest("base64url");
  return `${head}.${body}.${sig}`;
}

/** A min-heap of [t, seq, fn]. */
class Queue {
  constructor() { this.h = []; this.seq = 0; }
  get size() { return this.h.length; }
  push(t, fn) {
    const h = this.h;
    h.push([t, this.seq++, fn]);
    let i = h.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (less(h[p], h[i])) break;
      [h[p], h[i]] = [h[i], h[p]];
      i = p;
    }
  }
  peek() { return this.h[0]; }
  pop() {
    const h = this.h;
    const top = h[0];
    const last = h.pop();
    if (h.length) {
      h[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < h.length && less(h[l], h[m])) m = l;
        if (r < h.length && less(h[r], h[m])) m = r;
        if (m === i) break;
        [h[m], h[i]] = [h[i], h[m]];
        i = m;
      }
    }
    return top;
  }
}
const less = (a, b) => a[0] < b[0] || (a[0] === b[0] && a[1] < b[1]);

/**
 * The simulation flags that describe this load (for `make simulate ARGS="…"`): one location,
 * `isolates`, `routing`, `visitors`, no isolate evictions, the count sampled every `sampleS`,
 * a warm-up of the window plus `warmupS` and `measureS` measured.
 */
export function simulationArgs({ visitors, isolates, routing, moveProb, warmupS, measureS, sampleS, windowS, heartbeatS, seed, channel = "kv" }) {
  // `--channel`: KV alone (workers.dev) or the per-location channel; without the flag the
  // simulation runs both.
  return ["--channel", channel, "--json", "--only", "small", "--locations", "1", "--visitors", String(visitors), "--isolates", String(isolates),
    "--routing", routing, ...(routing === "sticky" ? ["--move-prob", String(moveProb)] : []),
    "--heartbeat-s", String(heartbeatS), "--window-s", String(windowS), "--no-evictions",
    "--sample-s", String(sampleS), "--warmup-s", String(windowS + warmupS), "--measure-s", String(measureS), "--seed", String(seed)];
}

/**
 * Runs the load against `c` (from startCounted with `isolates` workers); returns
 * { requests (by kind, in the measured part), ops (KV ops in the measured part), perRequest,
 * bad (answers other than expected, whole run), online (count answers seen), sent }.
 * `onProgress(line)` is called every 15 s.
 */
export async function runLoad(c, {
  visitors = 120, routing = "random", moveProb = 0.02, warmupS = 60, measureS = 60, sampleS = 30,
  heartbeatS = 15, windowS = 60, seed = 1, memberSecret, maxRequests = 50_000, onProgress = () => {},
  workload = WORKLOAD,
} = {}) {
  const w = workload;
  const rand = rng(seed);
  const route = rng(seed ^ 0x1500_1a7e);
  const exp = (mean) => Math.floor(-Math.log(1 - rand()) * mean) + 1;
  let hbMs = heartbeatS * 1000; // the server's next_heartbeat_ms, once it answers
  const hbDelay = () => Math.floor(hbMs * (0.9 + 0.2 * rand()));
  const windowMs = windowS * 1000;
  const page = () => {
    const k = Math.floor(rand() ** 3 * w.pages);
    return k === 0 ? "/" : `/p/${k}`;
  };
  const n = c.workers.length;
  const visitorsList = [];
  const tabs = [];
  const q = new Queue();
  const t0 = performance.now();
  const nowMs = () => performance.now() - t0;
  const endMs = (warmupS + measureS) * 1000;
  const measureFrom = warmupS * 1000;
  const expS = Math.floor(Date.now() / 1000) + 24 * 3600;

  const req = { beat: 0, idle: 0, leave: 0, count: 0 };
  const all = { sent: 0, bad: 0, errors: 0, lastBad: "" };
  let measuring = false;
  let opsAtStart = null;
  let tagsAtStart = {};
  const inflight = new Set();
  let moves = 0;

  const isolateFor = (tab) => {
    if (routing !== "sticky") return Math.floor(route() * n);
    if (tab.iso === undefined) tab.iso = Math.floor(route() * n);
    else if (n > 1 && route() < moveProb) {
      const r = Math.floor(route() * (n - 1));
      tab.iso = r >= tab.iso ? r + 1 : r;
      moves++;
    }
    return tab.iso;
  };
  const send = (iso, path, init, kind, want) => {
    if (all.sent >= maxRequests) return;
    all.sent++;
    if (measuring) req[kind]++;
    const p = (async () => {
      try {
        const r = await c.workers[iso].fetch(`${c.origin}${path}`, init);
        const text = await r.text();
        if (r.status !== want) {
          all.bad++;
          all.lastBad = `${path} ${r.status} ${text.slice(0, 160)}`;
        } else if (kind !== "leave") {
          const j = JSON.parse(text);
          if (Number(j.next_heartbeat_ms) > 0) hbMs = Number(j.next_heartbeat_ms);
        }
      } catch (e) {
        all.errors++;
        all.lastBad = `${path} ${e.message ?? e}`;
      }
    })();
    inflight.add(p);
    p.finally(() => inflight.delete(p));
  };
  const post = (path, tab, state, kind, want) => {
    const v = visitorsList[tab.visitor];
    const body = { site: "demo", visitor: v.id, tab: tab.id, page: tab.page, state };
    if (v.token) body.member_token = v.token;
    send(isolateFor(tab), path, {
      method: "POST",
      headers: { "content-type": "text/plain;charset=UTF-8", origin: c.origin },
      body: JSON.stringify(body),
    }, kind, want);
  };

  // ---- the model (sim/src/run.rs) ----
  const beat = (t, state) => {
    const tab = tabs[t];
    tab.started = true;
    post("/v1/heartbeat", tab, state, state === "idle" ? "idle" : "beat", 200);
  };
  const leave = (t) => post("/v1/leave", tabs[t], "idle", "leave", 204);
  const newTab = (vi) => {
    tabs.push({ visitor: vi, id: `t${tabs.length}`, page: page(), open: true, started: false, visible: false, epoch: 0 });
    const t = tabs.length - 1;
    return t;
  };
  const showTab = (now, t) => {
    const tab = tabs[t];
    tab.visible = true;
    tab.epoch += 1;
    const epoch = tab.epoch;
    beat(t, "active");
    q.push(now + hbDelay(), (at) => beatEv(at, t, epoch));
  };
  const hideTab = (t) => {
    const tab = tabs[t];
    tab.visible = false;
    tab.epoch += 1;
    if (tab.started && tab.open) beat(t, "idle");
  };
  const beatEv = (now, t, epoch) => {
    const tab = tabs[t];
    if (tab.open && tab.visible && tab.epoch === epoch) {
      beat(t, "active");
      q.push(now + hbDelay(), (at) => beatEv(at, t, epoch));
    }
  };
  const hideEv = (now, v, epoch) => {
    const vis = visitorsList[v];
    if (vis.ended || vis.epoch !== epoch || vis.away) return;
    vis.away = true;
    vis.epoch += 1;
    const g = vis.epoch;
    hideTab(vis.focus);
    q.push(now + exp(w.meanAwayMs), (at) => showEv(at, v, g));
  };
  const showEv = (now, v, epoch) => {
    const vis = visitorsList[v];
    if (vis.ended || vis.epoch !== epoch || !vis.away) return;
    vis.away = false;
    vis.epoch += 1;
    const g = vis.epoch;
    const f = vis.focus;
    if (tabs[f].started || tabs[f].open) showTab(now, f);
    q.push(now + exp(w.meanVisibleMs), (at) => hideEv(at, v, g));
  };
  const navigateEv = (now, v) => {
    const vis = visitorsList[v];
    if (vis.ended) return;
    q.push(now + exp(w.meanPageMs), (at) => navigateEv(at, v));
    const f = vis.focus;
    if (vis.away || !tabs[f].started) return;
    if (rand() < w.mpaShare) {
      tabs[f].open = false;
      tabs[f].epoch += 1;
      leave(f);
      const nt = newTab(v);
      vis.tabs = vis.tabs.filter((x) => x !== f);
      vis.tabs.push(nt);
      vis.focus = nt;
      q.push(now + 200 + Math.floor(rand() * 800), (at) => newPageEv(at, nt));
    } else {
      tabs[f].page = page();
      showTab(now, f);
    }
  };
  const newPageEv = (now, t) => {
    const tab = tabs[t];
    if (!tab.open) return;
    if (visitorsList[tab.visitor].away) beat(t, "idle");
    else showTab(now, t);
  };
  const openExtraEv = (now, v) => {
    const vis = visitorsList[v];
    if (vis.ended || vis.tabs.length >= 2) return;
    const t = newTab(v);
    vis.tabs.push(t);
    beat(t, "idle");
    q.push(now + exp(w.meanSwitchMs), (at) => switchEv(at, v));
  };
  const switchEv = (now, v) => {
    const vis = visitorsList[v];
    if (vis.ended || vis.tabs.length < 2) return;
    const old = vis.focus;
    const other = vis.tabs.find((x) => x !== old);
    q.push(now + exp(w.meanSwitchMs), (at) => switchEv(at, v));
    if (vis.away || other === undefined) return;
    if (!tabs[old].started || !tabs[other].started) return;
    hideTab(old);
    vis.focus = other;
    showTab(now, other);
  };
  const endEv = (v) => {
    const vanishes = rand() < w.vanishShare;
    const vis = visitorsList[v];
    vis.ended = true;
    vis.epoch += 1;
    for (const t of vis.tabs) {
      tabs[t].open = false;
      tabs[t].epoch += 1;
      if (tabs[t].started && !vanishes) leave(t);
    }
    vis.tabs = [];
  };
  const arrive = (now, start) => {
    const vi = visitorsList.length;
    const member = rand() < w.memberShare;
    visitorsList.push({
      id: randomUUID(), token: member && memberSecret ? memberToken(memberSecret, `m${vi}`, `Member ${vi}`, expS) : null,
      tabs: [], focus: 0, away: false, ended: false, epoch: 0,
    });
    const vis = visitorsList[vi];
    const t = newTab(vi);
    vis.tabs.push(t);
    vis.focus = t;
    if (start.away) {
      vis.away = true;
      if (start.beacon) beat(t, "idle");
      q.push(start.showAt, (at) => showEv(at, vi, 0));
    } else {
      showTab(now, t);
      q.push(now + exp(w.meanVisibleMs), (at) => hideEv(at, vi, 0));
    }
    q.push(now + exp(w.meanVisitMs), () => endEv(vi));
    q.push(now + exp(w.meanPageMs), (at) => navigateEv(at, vi));
    if (rand() < w.extraTabShare) q.push(now + exp(w.meanVisitMs / 2), (at) => openExtraEv(at, vi));
  };

  // The initial population, in its steady state (as `run` in sim/src/run.rs), its heartbeats
  // spread over one interval from t = 0.
  const [rHide, rShow, rEnd] = [1 / w.meanVisibleMs, 1 / w.meanAwayMs, 1 / w.meanVisitMs];
  const pAway = rHide / (rHide + rShow + rEnd);
  for (let i = 0; i < visitors; i++) {
    const t = Math.floor(rand() * hbMs);
    if (rand() < pAway) {
      const age = Math.floor(-Math.log(1 - rand()) / (rShow + rEnd));
      const showAt = t + exp(w.meanAwayMs);
      const beacon = age < windowMs;
      q.push(Math.max(0, beacon ? t - age : t), (at) => arrive(at, { away: true, beacon, showAt }));
    } else {
      q.push(t, (at) => arrive(at, { away: false }));
    }
  }
  let nextArrival = hbMs;
  const arriveEv = (now) => {
    arrive(now, { away: false });
    nextArrival += -Math.log(1 - rand()) * (w.meanVisitMs / Math.max(1, visitors));
    q.push(Math.max(now, Math.ceil(nextArrival)), arriveEv);
  };
  q.push(hbMs, arriveEv);
  // Count samples: the simulation samples at its times 1 + k·sampleS (its t = 0 is a window
  // before ours), and only while measuring.
  const sampleMs = sampleS * 1000;
  const firstSample = (() => {
    let s = 1 - windowMs;
    while (s < measureFrom) s += sampleMs;
    return s;
  })();
  const sampleEv = (now) => {
    send(Math.floor(route() * n), "/v1/count?site=demo", undefined, "count", 200);
    q.push(now + sampleMs, sampleEv);
  };
  q.push(firstSample, sampleEv);
  q.push(measureFrom, () => {
    measuring = true;
    opsAtStart = { ...c.ops };
    tagsAtStart = { ...c.byTag };
  });

  // ---- real time ----
  let lastReport = 0;
  while (q.size && q.peek()[0] < endMs && all.sent < maxRequests) {
    const [at, , fn] = q.pop();
    const wait = at - nowMs();
    if (wait > 1) await new Promise((r) => setTimeout(r, wait));
    fn(at);
    if (nowMs() - lastReport > 15_000) {
      lastReport = nowMs();
      onProgress(`${(nowMs() / 1000).toFixed(0)} s: ${all.sent} requests sent (${inflight.size} in flight), ${visitorsList.length} visitors so far, `
        + `KV ${JSON.stringify(c.ops)}${all.bad + all.errors ? `, ${all.bad + all.errors} not as expected (${all.lastBad})` : ""}`);
    }
  }
  const wait = endMs - nowMs();
  if (wait > 0) await new Promise((r) => setTimeout(r, wait));
  const opsEnd = { ...c.ops };
  const tagsEnd = { ...(c.byTag ?? {}) };
  measuring = false;
  // In-flight requests finish (bounded); their ops after the end are not counted.
  await Promise.race([Promise.allSettled([...inflight]), new Promise((r) => setTimeout(r, 10_000))]);
  const start = opsAtStart ?? { get: 0, put: 0, delete: 0, list: 0, bytes: 0 };
  const ops = Object.fromEntries(Object.keys(opsEnd).map((k) => [k, opsEnd[k] - start[k]]));
  const byTag = Object.fromEntries(Object.keys(tagsEnd).map((k) => [k, tagsEnd[k] - (tagsAtStart[k] ?? 0)]));
  const requests = req.beat + req.idle + req.leave + req.count;
  const perRequest = Object.fromEntries(["get", "list", "put", "delete"].map((k) => [k, requests ? ops[k] / requests : NaN]));
  perRequest.total = perRequest.get + perRequest.list + perRequest.put + perRequest.delete;
  return {
    visitors, routing, moveProb: routing === "sticky" ? moveProb : undefined, moves, warmupS, measureS, sampleS, heartbeatS: hbMs / 1000, windowS, seed,
    isolates: n, requests: { ...req, total: requests }, ops, byTag, perRequest, sent: all.sent, bad: all.bad, errors: all.errors, lastBad: all.lastBad,
    visitorsSeen: visitorsList.length, capped: all.sent >= maxRequests,
  };
}
