// Load: N simulated visitors heartbeating against local workerd on loopback for D seconds,
// with churn and an injected KV outage, bounded in count and time. Checks: no 5xx but the
// outage's 503s, and few KV operations during it; the count exact at the end (people and
// tabs); the isolate never restarted; herenow's memory and workerd's RSS flat once warm
// (see "Memory" below).
// Usage: node tests/load.mjs [visitors=10000] [seconds=120] [--wrangler] [--warm=SECONDS]
//
// The server. By default the built worker runs in workerd through Miniflare (one workerd
// process, KV persisted on disk), in a process group of its own so that its RSS and CPU are
// measured apart from this generator's. With --wrangler it runs under `wrangler dev` as
// `make dev` does: two workerd processes, the runtime and wrangler's dev proxy in front of
// it, which doubles the server's CPU per request and sometimes answers 503 "Your worker
// restarted mid-request" itself when a forward fails.
//
// The visitors. Visitor slots heartbeat once per HEARTBEAT_S (15 s; 2 s for runs under a
// minute, with a window of 4 heartbeats), spread evenly, over HTTP/1.1 keep-alive connections (CONCURRENCY in flight).
// Every tenth slot has two tabs (people ≠ tabs). From the second round on, each slot's
// visitor is replaced, 5% of slots a round each: by a leave (POST /v1/leave for each tab,
// then a new visitor joins: the tombstone path), or by vanishing (the old visitor simply
// stops, and must time out after the WINDOW_S window: the time-out path) when that window
// ends before the run does. So at the end exactly one visitor per slot is present.
//
// Warm, then measured. The visitors run on one schedule for WARM_S + SECONDS: the first
// WARM_S (the lease plus the window plus a heartbeat: 135 s, once tombstones of the churn
// reach their steady number and workerd is warm) are the warm-up, the last SECONDS are
// judged. Runs under a minute (the smoke test in `make test`) have no warm-up and judge only
// what needs none: statuses, the exact count, one isolate, bounded state.
//
// Memory, judged over the measured part:
//  - herenow's wasm linear memory (the Rust heap: engine, limiter, record encoding), from
//    /healthz with DEBUG_STATS=1. It never shrinks: it is the high-water mark of the Rust
//    heap, and it grows in steps when a large allocation (the ~2 MB record being encoded)
//    finds no hole big enough in the heap. It must have settled: no growth over the second
//    half of the measured part (≤ +1 MiB), ≤ +25% over all of it. (In five 10,000-visitor
//    runs it settled at 13.8-14.6 MB, once with a last 2 MB step 20 s into the measured
//    part; a 10-minute run stayed at 13.8 MB from 135 s to the end);
//  - the isolate's JS heap after a full GC (wasm-bindgen glue, requests, KV values), through
//    the inspector, at the start and the end: ≤ +50% or +2 MiB;
//  - workerd's RSS after a full GC (every 30 s): its least-squares slope against requests
//    ≤ 0.25 MB per 1,000 requests (a leak of 250 bytes a request fails it), and the end ≤ the
//    start + 10% (or 32 MB). Raw RSS is sampled every 5 s and reported, not judged: between
//    V8's major GCs it swings by ~100 MB of garbage that a GC returns;
//  - the engine's state at the end: tabs plus tombstones no more than the tabs ever seen,
//    limiter keys bounded by the visitors.
// SOLO_DELAY_S=10 and LEASE_S=60 make this lone isolate publish 10 s after a change and renew
// its record every 40 s, so the record with every tab (~1.3 MB of JSON at 10,000 visitors) is
// encoded and written during the run (with the defaults, 180 s and 300 s, it would not be).
//
// Why a warm-up: under any worker, workerd's RSS climbs for the first tens of thousands of
// requests and then levels off (measured 2026-11, workerd 1.20260426 with its tcmalloc: a
// hello-world worker too, and GET /healthz alone, which touches neither engine nor KV, grows
// it as much as heartbeats do, while the wasm memory and the collected JS heap stay flat).
// That is the runtime warming up, not a leak; the warm-up's samples are printed too.
import http from "node:http";
import { randomUUID } from "node:crypto";
import { startWrangler } from "./lib/wrangler.mjs";
import { startWorkerProcess } from "./lib/worker-process.mjs";
import { groupProcesses, heapAfterGc, rssByRole, workerStats } from "./lib/memory.mjs";

const flags = process.argv.slice(2).filter((a) => a.startsWith("--"));
const args = process.argv.slice(2).filter((a) => !a.startsWith("--"));
const VISITORS = Number(args[0] ?? 10_000);
const SECONDS = Number(args[1] ?? 120);
const WRANGLER = flags.includes("--wrangler");
const LONG = SECONDS >= 60;
const HEARTBEAT_S = LONG ? 15 : 2;
const WINDOW_S = 4 * HEARTBEAT_S;
const LEASE_S = LONG ? 60 : WINDOW_S;
const CONCURRENCY = 64;
const SOLO_DELAY_S = LONG ? 10 : 4;
const TWO_TAB_EVERY = 10; // every tenth slot has two tabs
const LEAVE_PCT = 5; // of slots a round, from the second round
const VANISH_PCT = 5;
const WARM_S = Number(flags.find((f) => f.startsWith("--warm="))?.slice(7) ?? (LONG ? LEASE_S + WINDOW_S + HEARTBEAT_S : 0));
const ROUNDS = Math.ceil((WARM_S + SECONDS) / HEARTBEAT_S);
const tabsOf = (s) => (s % TWO_TAB_EVERY === 0 ? ["t1", "t2"] : ["t"]);
const TABS = Array.from({ length: VISITORS }, (_, s) => tabsOf(s).length).reduce((a, b) => a + b, 0);
// Hard bound on requests: every tab every round, plus the leaves, plus slack.
const MAX_REQUESTS = TABS * (ROUNDS + 1) * 2;
const GRACE_MS = 10_000; // a server that falls behind does not stretch the run past this
const SAMPLE_S = LONG ? 5 : 2;
const RSS_CEILING_MB = 1536;

const vars = {
  HEARTBEAT_S: String(HEARTBEAT_S), WINDOW_S: String(WINDOW_S), SOLO_DELAY_S: String(SOLO_DELAY_S), LEASE_S: String(LEASE_S),
  DEBUG_STATS: "1",
  RATE_IP_PER_MIN: "100000000", RATE_VISITOR_PER_MIN: "100000000", NEW_VISITORS_PER_IP_PER_MIN: "100000000",
};
const server = WRANGLER ? await startWrangler({ vars }) : await startWorkerProcess({ vars, faults: true });
// A KV outage injected into the measured part (not under wrangler dev, whose KV binding is
// not wrapped): every KV operation fails for OUTAGE_S from OUTAGE_AT_S. Two of the lone
// isolate's publication delays long, so that at least one write is refused and retried.
const INJECT = !WRANGLER;
const OUTAGE_AT_S = LONG ? 40 : 6;
const OUTAGE_S = 2 * SOLO_DELAY_S;
// The server asks a failing store again only after the Retry-After it answers with (one
// heartbeat interval, at most 5 s), so 503s go on that long after the outage ends.
const RETRY_AFTER_MS = Math.min(HEARTBEAT_S, 5) * 1000;
const { hostname, port } = new URL(server.origin);
const agent = new http.Agent({ keepAlive: true, maxSockets: CONCURRENCY });
const roles = WRANGLER ? ["runtime", "proxy"] : ["runtime"];

/**
 * One request over the keep-alive agent: { status, body, retryAfter }, or throws on a
 * transport error. A request that fails on a *reused* connection before any answer (the
 * server closed that idle connection as the request went out: ECONNRESET or EPIPE) is sent
 * once more on a new one, as browsers do; those retries are counted in `resent`.
 */
let resent = 0;
function request(method, path, body, retried = false) {
  return new Promise((resolve, reject) => {
    const headers = { origin: server.origin };
    if (body !== undefined) Object.assign(headers, { "content-type": "text/plain", "content-length": Buffer.byteLength(body) });
    let answered = false;
    const req = http.request({ agent, hostname, port, method, path, headers }, (res) => {
      answered = true;
      let data = "";
      res.setEncoding("utf8");
      res.on("data", (d) => { data += d; });
      res.on("end", () => resolve({ status: res.statusCode, body: data, retryAfter: res.headers["retry-after"] }));
      res.on("error", reject);
    });
    req.setTimeout(30_000, () => req.destroy(new Error("no answer in 30 s")));
    req.on("error", (e) => {
      if (!retried && !answered && req.reusedSocket && (e.code === "ECONNRESET" || e.code === "EPIPE")) {
        resent++;
        resolve(request(method, path, body, true));
      } else reject(e);
    });
    req.end(body);
  });
}

const stats = { ok: 0, other: 0, errors: 0, sent: 0, leaves: 0, vanished: 0, maxLateMs: 0 };
const latencies = [];
let recent = []; // latencies since the last sample
const slow = []; // answers over 1 s: [seconds since start when sent, ms]
const failures = []; // the first few answers other than those expected, to say what failed
const beatBody = (v, tab, s) => JSON.stringify({ site: "demo", visitor: v, tab, page: `/p${s % 10}` });
const fives = []; // every 5xx: { at (Unix ms when sent), injected (a 503 store_unavailable with Retry-After) }
async function call(path, body, want) {
  const t0 = performance.now();
  const sentAt = Date.now();
  stats.sent++;
  try {
    const r = await request("POST", path, body);
    const injected = r.status === 503 && Number(r.retryAfter) > 0 && r.body.includes('"store_unavailable"');
    if (r.status === want) stats.ok++;
    else if (r.status >= 500) fives.push({ at: sentAt, injected });
    else stats.other++;
    if (r.status !== want && !injected && failures.length < 5) failures.push(`${path} ${r.status} ${r.body.slice(0, 200)}`);
  } catch (e) {
    stats.errors++;
    if (failures.length < 5) failures.push(`${path} transport: ${e.code ?? e.message}`);
  }
  const ms = performance.now() - t0;
  latencies.push(ms);
  recent.push(ms);
  if (ms > 1000) slow.push([(Date.now() - ms - start) / 1000, ms]);
}

// A measurement: RSS of the server's processes, the worker's wasm memory and state; with
// `heap`, the JS heap after a full GC and the RSS right after it.
const isolates = new Set();
const samples = [];
async function measure(label, { heap = false } = {}) {
  const t = (Date.now() - start) / 1000;
  const rss = rssByRole(server.pid);
  const w = await workerStats(server.origin);
  if (w) isolates.add(w.isolate);
  const h = heap ? await heapAfterGc(server.inspectorPort, server.origin) : null;
  const rssGc = h ? rssByRole(server.pid) : null;
  const lat = recent.sort((x, y) => x - y);
  recent = [];
  const q = (p) => (lat.length ? lat[Math.min(lat.length - 1, Math.floor(lat.length * p))].toFixed(0) : "-");
  const m = { t, sent: stats.sent, rss, rssGc, w, heap: h };
  samples.push(m);
  const f = (x, d = 0) => (x == null ? "?" : x.toFixed(d));
  console.log(`  ${label.padEnd(5)} ${f(t).padStart(3)} s: ${String(stats.sent).padStart(6)} sent, ${fives.length} 5xx, p50/p99 ${q(0.5)}/${q(0.99)} ms; RSS runtime ${f(rss.runtime)} MB`
    + (WRANGLER ? `, dev proxy ${f(rss.proxy)} MB` : "")
    + (rssGc ? ` (after a full GC ${f(rssGc.runtime)}${WRANGLER ? `, ${f(rssGc.proxy)}` : ""} MB)` : "")
    + `; wasm ${f(w?.wasmMb, 1)} MB${h ? `, JS heap after GC ${f(h.usedMb, 1)} MB` : ""}; tabs ${w?.engine.tabs ?? "?"}, tombstones ${w?.engine.tombstones ?? "?"}, limiter keys ${w?.limiterKeys ?? "?"}`);
  return m;
}
const serverCpuMs = () => groupProcesses(server.pid).filter((p) => roles.includes(p.role)).reduce((a, p) => a + p.cpuMs, 0);

console.log(`==> load: ${VISITORS} visitors (${TABS} tabs), a heartbeat per tab every ${HEARTBEAT_S} s, window ${WINDOW_S} s, `
  + `${WARM_S ? `${WARM_S} s warm-up then ` : ""}${SECONDS} s measured, ${CONCURRENCY} in flight, churn ${LEAVE_PCT}% leave + ${VANISH_PCT}% vanish a round, `
  + `against ${WRANGLER ? "wrangler dev" : "workerd (Miniflare)"} on ${server.origin}`);

// The schedule: slot s's round-r heartbeats are due at start + r·HEARTBEAT_S + s·HEARTBEAT_S/N.
const ids = Array.from({ length: VISITORS }, () => randomUUID());
const lastSent = new Array(VISITORS).fill(0);
let endedTabs = 0;
const start = Date.now();
const measuredFrom = start + WARM_S * 1000;
const deadline = measuredFrom + SECONDS * 1000;
const due = (i) => start + Math.floor(i / VISITORS) * HEARTBEAT_S * 1000 + (i % VISITORS) * (HEARTBEAT_S * 1000 / VISITORS);
// From round 1, a slot's visitor is replaced with probability LEAVE_PCT + VANISH_PCT (hashed,
// so the same slots churn in every run).
const churn = (s, r) => {
  if (r === 0) return null;
  const h = Math.imul(s + 1, 2654435761) ^ Math.imul(r + 1, 40503);
  const x = ((h >>> 0) % 1000) / 10;
  return x < LEAVE_PCT ? "leave" : x < LEAVE_PCT + VANISH_PCT ? "vanish" : null;
};
let firstRoundAt = null;
let next = 0;
async function visitors() {
  for (;;) {
    const i = next++;
    if (i >= MAX_REQUESTS || due(i) >= deadline || Date.now() >= deadline + GRACE_MS) return;
    const wait = due(i) - Date.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    stats.maxLateMs = Math.max(stats.maxLateMs, Date.now() - due(i));
    const s = i % VISITORS;
    const kind = churn(s, Math.floor(i / VISITORS));
    if (kind === "leave") {
      for (const tab of tabsOf(s)) await call("/v1/leave", beatBody(ids[s], tab, s), 204);
      stats.leaves++;
      endedTabs += tabsOf(s).length;
      ids[s] = randomUUID();
    } else if (kind === "vanish" && lastSent[s] + (WINDOW_S + 5) * 1000 < deadline) {
      // A vanished visitor must time out before the end: its last heartbeat plus the window
      // (and a flush) before the count is read.
      stats.vanished++;
      endedTabs += tabsOf(s).length;
      ids[s] = randomUUID();
    }
    lastSent[s] = Date.now();
    for (const tab of tabsOf(s)) await call("/v1/heartbeat", beatBody(ids[s], tab, s), 200);
    if (i === VISITORS - 1) firstRoundAt ??= Date.now();
  }
}
// The baseline: at the end of the warm-up; with none, once the first round is done and
// every tab has been published (the solo delay plus a margin later; in a short run, halfway
// to the end).
let baseline = null;
async function takeBaseline() {
  for (;;) {
    if (WARM_S > 0 && Date.now() >= measuredFrom) break;
    if (WARM_S === 0 && firstRoundAt !== null) {
      const at = firstRoundAt + Math.min((SOLO_DELAY_S + 5) * 1000, Math.max(0, (deadline - firstRoundAt) / 2));
      if (Date.now() >= at) break;
    }
    if (Date.now() >= deadline + GRACE_MS) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  baseline = await measure("base", { heap: true });
}
// Samples every SAMPLE_S; in the measured part, every GC_EVERY_S one with a full GC.
const GC_EVERY_S = 30;
let sampling = true;
async function sampler() {
  let gcAt = measuredFrom + GC_EVERY_S * 1000;
  for (let at = Date.now(); sampling; at += SAMPLE_S * 1000) {
    while (sampling && Date.now() < at) await new Promise((r) => setTimeout(r, 100));
    if (!sampling) break;
    const gc = WARM_S > 0 && baseline && Date.now() >= gcAt - 1000;
    if (gc) gcAt += GC_EVERY_S * 1000;
    await measure(gc ? "gc" : "", { heap: gc });
  }
}
const outage = { from: null, to: null, opsAtEnd: null };
async function injectOutage() {
  if (!INJECT) return;
  const at = measuredFrom + OUTAGE_AT_S * 1000;
  while (Date.now() < at) await new Promise((r) => setTimeout(r, 100));
  await server.setFault("fail");
  outage.from = Date.now();
  console.log(`  KV outage from ${((outage.from - start) / 1000).toFixed(0)} s for ${OUTAGE_S} s: every KV operation fails`);
  while (Date.now() < outage.from + OUTAGE_S * 1000) await new Promise((r) => setTimeout(r, 100));
  await server.setFault("ok");
  outage.to = Date.now();
  outage.opsAtEnd = await server.kvOps();
  console.log(`  KV outage over at ${((outage.to - start) / 1000).toFixed(0)} s: ${JSON.stringify(outage.opsAtEnd.failed)} refused`);
}
const cpu0 = serverCpuMs();
const samplerDone = sampler();
await Promise.all([...Array.from({ length: CONCURRENCY }, visitors), takeBaseline(), injectOutage()]);
sampling = false;
await samplerDone;
const elapsed = (Date.now() - start) / 1000;
const cpuRun = serverCpuMs() - cpu0;
const countRes = await request("GET", "/v1/count?site=demo");
const count = JSON.parse(countRes.body);
const end = await measure("end", { heap: true });
const opsEnd = INJECT ? await server.kvOps() : null;
agent.destroy();
await server.stop();

latencies.sort((a, b) => a - b);
const pct = (p) => latencies[Math.min(latencies.length - 1, Math.floor(latencies.length * p))]?.toFixed(1);
let scheduled = 0;
while (scheduled < MAX_REQUESTS && due(scheduled) < deadline) scheduled++;
console.log(`heartbeat slots ${scheduled} scheduled; ${stats.sent} requests sent in ${elapsed.toFixed(0)} s (${(stats.sent / elapsed).toFixed(0)}/s), `
  + `p50 ${pct(0.5)} ms, p99 ${pct(0.99)} ms; server CPU ${(cpuRun / stats.sent * 1000).toFixed(0)} µs a request`
  + ` (${(cpuRun / 1000 / elapsed * 100).toFixed(0)}% of a core)`);
console.log(`churn: ${stats.leaves} visitors left, ${stats.vanished} vanished (to time out), ${stats.leaves + stats.vanished} new visitors joined`);
if (stats.maxLateMs > 1000) {
  console.log(`  the load fell behind its schedule: heartbeats went out up to ${(stats.maxLateMs / 1000).toFixed(0)} s late`
    + (stats.maxLateMs > (WINDOW_S - HEARTBEAT_S) * 1000 ? ` (over ${WINDOW_S - HEARTBEAT_S} s: some tabs may have gone a whole window without one and timed out)` : ""));
}
if (slow.length) {
  slow.sort((x, y) => y[1] - x[1]);
  console.log(`  ${slow.length} answers took over 1 s; the slowest: ${slow.slice(0, 3).map(([t, ms]) => `${(ms / 1000).toFixed(1)} s (sent at ${t.toFixed(0)} s)`).join(", ")}`);
}
for (const f of failures) console.log(`  not as expected: ${f}`);
if (failures.some((f) => f.includes("Your worker restarted mid-request"))) {
  console.log("  (that 503 is wrangler dev's proxy answering a POST whose forward to the runtime failed; herenow answers errors in JSON)");
}
console.log(`statuses: ${stats.ok} as expected, ${fives.length} 5xx, ${stats.other} other, ${stats.errors} transport errors`
  + (resent ? ` (${resent} sent again after the server closed a kept-alive connection under them)` : ""));
console.log(`count at the end: online ${count.online} (want ${VISITORS}), tabs ${count.tabs} (want ${TABS})`);

// RSS flatness over the measured part: least-squares slope of the RSS after a full GC against
// requests sent.
const measured = samples.filter((m) => baseline && m.t >= baseline.t);
const slope = (role) => {
  const pts = measured.filter((m) => m.rssGc?.[role] > 0).map((m) => [m.sent / 1000, m.rssGc[role]]);
  if (pts.length < 3) return null;
  const mx = pts.reduce((a, [x]) => a + x, 0) / pts.length;
  const my = pts.reduce((a, [, y]) => a + y, 0) / pts.length;
  const sxx = pts.reduce((a, [x]) => a + (x - mx) ** 2, 0);
  return sxx > 0 ? pts.reduce((a, [x, y]) => a + (x - mx) * (y - my), 0) / sxx : null;
};
const grew = (a, b) => (a == null || b == null ? "?" : `${a.toFixed(1)} → ${b.toFixed(1)} MB`);
const within = (a, b, frac, absMb) => a != null && b != null && b <= a + Math.max(a * frac, absMb);
const slopes = Object.fromEntries(roles.map((r) => [r, slope(r)]));
if (baseline) {
  console.log(`measured part (${baseline.t.toFixed(0)} s → ${end.t.toFixed(0)} s, ${end.sent - baseline.sent} requests):`);
  console.log(`  wasm memory ${grew(baseline.w?.wasmMb, end.w?.wasmMb)}; JS heap after GC ${grew(baseline.heap?.usedMb, end.heap?.usedMb)}`);
  for (const r of roles) {
    const raw = measured.map((m) => m.rss[r]);
    console.log(`  workerd RSS (${r === "runtime" ? "runtime" : "dev proxy"}): after a full GC ${grew(baseline.rssGc?.[r], end.rssGc?.[r])}, `
      + `slope ${slopes[r]?.toFixed(2) ?? "?"} MB per 1,000 requests (${measured.filter((m) => m.rssGc).length} GCs); `
      + `raw ${Math.min(...raw).toFixed(0)}-${Math.max(...raw).toFixed(0)} MB over ${raw.length} samples`);
  }
}
// KV operations the outage refused (Infinity if it never ended).
const refused = outage.opsAtEnd ? Object.values(outage.opsAtEnd.failed).reduce((a, b) => a + b, 0) : Infinity;
if (INJECT && outage.opsAtEnd) {
  const putsAfter = opsEnd.ops.put - outage.opsAtEnd.ops.put;
  console.log(`KV outage: ${refused} operations refused (${JSON.stringify(outage.opsAtEnd.failed)}), ${fives.length} answers 5xx; `
    + `${putsAfter} writes after it`);
}
// The first sample of the measured part's second half.
const midway = measured.find((m) => m.t >= WARM_S + SECONDS / 2);
const e = end.w?.engine;
const checks = [
  ["no transport errors, every answer as expected but 5xx", stats.errors === 0 && stats.other === 0],
  INJECT
    ? [`no 5xx but injected ones (${fives.length}): each a 503 store_unavailable with Retry-After, sent during the KV outage or the Retry-After after it`,
      fives.every((f) => f.injected && outage.from !== null && f.at >= outage.from - 500 && f.at <= (outage.to ?? Infinity) + RETRY_AFTER_MS + 500)]
    : ["no 5xx", fives.length === 0],
  ["count exact at the end (people and tabs, after leaves and time-outs)", count.online === VISITORS && count.tabs === TABS],
  [`one isolate throughout (saw ${isolates.size})`, isolates.size === 1],
  ["engine state bounded (tabs + tombstones ≤ tabs ever seen; limiter keys ≤ 2 per visitor)",
    e != null && e.tabs + e.tombstones <= TABS + endedTabs && end.w.limiterKeys <= 2 * (VISITORS + stats.leaves + stats.vanished) + 2],
  [`workerd RSS bounded (each process ≤ ${RSS_CEILING_MB} MB)`, roles.every((r) => end.rss[r] <= RSS_CEILING_MB)],
];
if (INJECT) {
  checks.push(
    ["the outage was felt and recovered from: writes refused during it, written again after",
      outage.opsAtEnd !== null && outage.opsAtEnd.failed.put > 0 && opsEnd.ops.put > outage.opsAtEnd.ops.put],
    [`the outage cost few KV operations (${refused}; at most 2 a second of it), not one per request`, refused <= 2 * OUTAGE_S],
  );
}
if (WARM_S > 0) {
  checks.push(
    [`herenow's wasm memory settled (second half of the measured part ${grew(midway?.w?.wasmMb, end.w?.wasmMb)}: ≤ +1 MiB; all of it ≤ +25%)`,
      within(midway?.w?.wasmMb, end.w?.wasmMb, 0, 1) && within(baseline?.w?.wasmMb, end.w?.wasmMb, 0.25, 1)],
    ["herenow's JS heap after a full GC flat over the measured part (≤ +50% or +2 MiB)", within(baseline?.heap?.usedMb, end.heap?.usedMb, 0.5, 2)],
    ["workerd's RSS after a full GC flat over the measured part (slope ≤ 0.25 MB per 1,000 requests; end ≤ start + 10% or 32 MB)",
      roles.every((r) => slopes[r] != null && slopes[r] <= 0.25 && within(baseline?.rssGc?.[r], end.rssGc?.[r], 0.1, 32))],
  );
} else {
  console.log("(no warm-up: memory is reported, not judged flat; `make load` judges it)");
}
for (const [name, ok] of checks) console.log(`${ok ? "PASS" : "FAIL"} ${name}`);
const failed = checks.filter(([, ok]) => !ok).length;
console.log(`load: ${checks.length - failed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
