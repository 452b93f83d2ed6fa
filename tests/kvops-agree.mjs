// The edge's KV operations per request against the simulation's, for the same load (issue 15:
// they must agree within 25 %).
//
// Usage: node tests/kvops-agree.mjs [random|sticky|both=both] [--visitors=120] [--channel=kv|cache|both]
//   (make kvops-agree)
//
// --channel (default kv): kv runs the edge without a working Cache API (Miniflare's
// `cache: false`, as on *.workers.dev), so its isolates exchange records through KV, against
// the simulation's KV model; cache runs it with one shared working cache (its per-location
// channel on, edge/src/cache.rs) against the simulation's `--channel cache`; both, each.
//
// The edge: the built worker as 4 workers of one location (the same cf.colo) in one Miniflare
// sharing one KV namespace, its KV binding counted (bench/lib/kvops.mjs), driven by the
// simulation's workload in real time (bench/lib/kvload.mjs): 120 s of warm-up, 180 s measured
// (two heartbeats each), at the default engine settings (heartbeat 90 s, window 225 s), given
// to the edge explicitly so that both sides run the same ones. The simulation: the same load through its flags
// (bench/lib/kvload.mjs `simulationArgs`: one location, 4 isolates, the routing, the
// visitors, no evictions, the same sampling, warm-up and measured time), seeds 1-3 averaged.
// Compared: KV operations (get + list + put + delete) per request (heartbeats, idle beacons,
// leaves, counts), each kind reported. Checks per routing: the edge's load ran clean (every
// answer as expected, no KV write refused: a refused write is retried and inflates the
// count), the simulation ran, and the totals agree within 25 %.
//
// Bounded: each edge run ≤ 4 min + 10 s, each simulation run ≤ 3 min, the whole ≤ 15 min a
// channel.
import { spawn } from "node:child_process";
import { ROOT } from "./lib/miniflare.mjs";
import { startCounted } from "../bench/lib/kvops.mjs";
import { runLoad, simulationArgs } from "../bench/lib/kvload.mjs";

const args = process.argv.slice(2);
const which = args.find((a) => !a.startsWith("--")) ?? "both";
const VISITORS = Number(args.find((a) => a.startsWith("--visitors="))?.split("=")[1] ?? 120);
const ROUTINGS = which === "both" ? ["random", "sticky"] : [which];
const CHANNEL = args.find((a) => a.startsWith("--channel="))?.split("=")[1] ?? "kv";
if (!["kv", "cache", "both"].includes(CHANNEL)) {
  console.error(`kvops-agree: --channel must be kv, cache or both, got ${JSON.stringify(CHANNEL)}`);
  process.exit(2);
}
const CHANNELS = CHANNEL === "both" ? ["kv", "cache"] : [CHANNEL];
const LOAD = { visitors: VISITORS, isolates: 4, warmupS: 120, measureS: 180, sampleS: 30, heartbeatS: 90, windowS: 225, moveProb: 0.02 };
const SEEDS = [1, 2, 3];
const TOLERANCE = 0.25;
const ORIGIN = "http://127.0.0.1:8787"; // dispatch only: nothing listens
const SECRET = "agree-member-secret-agree-member-secret-0";
const LIMITS = { RATE_IP_PER_MIN: "100000000", RATE_VISITOR_PER_MIN: "100000000", NEW_VISITORS_PER_IP_PER_MIN: "100000000" };
const T0 = Date.now();
const say = (m) => console.log(`[kvops-agree ${((Date.now() - T0) / 1000).toFixed(0)}s] ${m}`);
setTimeout(() => { say(`over the ${15 * CHANNELS.length}-minute bound: stopping`); process.exit(2); }, 15 * 60_000 * CHANNELS.length).unref();

function runSim(simArgs) {
  return new Promise((resolve) => {
    const child = spawn("cargo", ["run", "-q", "-p", "herenow-sim", "--release", "--example", "simulate", "--", ...simArgs],
      { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"], detached: true });
    let out = "";
    let err = "";
    child.stdout.on("data", (d) => { out += d; });
    child.stderr.on("data", (d) => { err = (err + d).slice(-4000); });
    const timer = setTimeout(() => { try { process.kill(-child.pid, "SIGKILL"); } catch { /* gone */ } }, 180_000);
    child.on("exit", (code) => { clearTimeout(timer); resolve({ code, out, err }); });
  });
}

/** The simulation's herenow ops per request by kind, from its --json lines, averaged over seeds. */
async function simulated(routing, channel) {
  const sums = { get: 0, list: 0, put: 0, delete: 0, requests: 0 };
  for (const seed of SEEDS) {
    const a = simulationArgs({ ...LOAD, routing, seed, channel });
    const r = await runSim(a);
    if (r.code !== 0) return { error: `the simulation refused \`${a.join(" ")}\` (exit ${r.code}): ${r.err.trim().split("\n").slice(-3).join(" | ")}` };
    const line = r.out.split("\n").filter((l) => l.startsWith("{")).map((l) => JSON.parse(l))
      .find((j) => j.design === "herenow" && (j.routing ?? routing) === routing && (j.channel ?? "kv") === channel);
    if (!line?.per_visitor_hour) {
      return { error: `no herenow JSON line with per_visitor_hour in the simulation's output for \`${a.join(" ")}\` `
        + `(a simulation without --json, or one that ignores flags, prints its text report): ${r.out.split("\n")[0].slice(0, 120)}` };
    }
    const v = line.per_visitor_hour;
    // Per visitor-hour, so weighted alike per seed: sum the rates, divide at the end.
    sums.get += v.reads; sums.list += v.lists; sums.put += v.writes; sums.delete += v.deletes; sums.requests += v.requests;
  }
  const per = Object.fromEntries(["get", "list", "put", "delete"].map((k) => [k, sums[k] / sums.requests]));
  per.total = per.get + per.list + per.put + per.delete;
  return { per, command: `make simulate ARGS="${simulationArgs({ ...LOAD, routing, seed: 1, channel }).join(" ")}"` };
}

const checks = [];
const fmt = (p) => `${p.total.toFixed(3)} (get ${p.get.toFixed(3)}, list ${p.list.toFixed(3)}, put ${p.put.toFixed(3)}, delete ${p.delete.toFixed(3)})`;
for (const channel of CHANNELS) for (const routing of ROUTINGS) {
  const run = `${routing}, channel ${channel}`;
  const c = await startCounted({ kind: "herenow", isolates: LOAD.isolates, dir: `${ROOT}/edge`, origin: ORIGIN, cache: channel === "cache",
    vars: { ...LIMITS, MEMBER_SECRET_DEMO: SECRET, HEARTBEAT_S: String(LOAD.heartbeatS), WINDOW_S: String(LOAD.windowS) } });
  let edge;
  try {
    say(`edge, ${run}: ${LOAD.visitors} visitors, ${LOAD.isolates} isolates of one location, ${LOAD.warmupS} s + ${LOAD.measureS} s`);
    edge = await runLoad(c, { ...LOAD, routing, memberSecret: SECRET, onProgress: (l) => say(`  ${l}`) });
    edge.lastFailure = c.lastFailure.why;
  } finally {
    await c.mf.dispose();
  }
  say(`edge, ${run}: ${edge.requests.total} requests measured, KV ops per request ${fmt(edge.perRequest)}; ${JSON.stringify(edge.byTag)}`);
  checks.push([`edge ${run}: every answer as expected (${edge.bad + edge.errors} not: ${edge.lastBad || "-"}) and no KV write refused (${edge.ops.failed}${edge.ops.failed ? `: ${edge.lastFailure}` : ""})`,
    edge.bad === 0 && edge.errors === 0 && edge.ops.failed === 0 && edge.requests.total > 0]);
  const sim = await simulated(routing, channel);
  if (sim.error) {
    say(sim.error);
    checks.push([`simulation ${run} ran with the load's flags`, false]);
    continue;
  }
  say(`simulation, ${run} (seeds ${SEEDS.join(", ")}): KV ops per request ${fmt(sim.per)} — ${sim.command}`);
  const ratio = edge.perRequest.total / sim.per.total;
  checks.push([`${run}: edge ${edge.perRequest.total.toFixed(3)} vs simulation ${sim.per.total.toFixed(3)} KV ops per request, ratio ${ratio.toFixed(2)} (within ±${TOLERANCE * 100} %)`,
    Math.abs(ratio - 1) <= TOLERANCE]);
}
for (const [name, ok] of checks) console.log(`${ok ? "PASS" : "FAIL"} ${name}`);
const failed = checks.filter(([, ok]) => !ok).length;
console.log(`kvops-agree: ${checks.length - failed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
