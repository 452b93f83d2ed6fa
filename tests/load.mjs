// Load: N simulated visitors heartbeating against `wrangler dev` (local workerd) on loopback
// for D seconds, bounded in count and time. Checks: no 5xx, the count exact at the end, and
// workerd's memory flat (RSS at the end within a margin of RSS after the first full round).
// Usage: node tests/load.mjs [visitors=10000] [seconds=120]
import { readFileSync, readdirSync } from "node:fs";
import { randomUUID } from "node:crypto";
import { startWrangler } from "./lib/wrangler.mjs";

const VISITORS = Number(process.argv[2] ?? 10_000);
const SECONDS = Number(process.argv[3] ?? 120);
const CONCURRENCY = 64;
const HEARTBEAT_S = 15;
const MAX_REQUESTS = Math.ceil(VISITORS * (SECONDS / HEARTBEAT_S + 2)); // hard bound

function workerdRssMb() {
  let kb = 0;
  for (const pid of readdirSync("/proc").filter((p) => /^\d+$/.test(p))) {
    try {
      if (!readFileSync(`/proc/${pid}/cmdline`, "utf8").includes("workerd")) continue;
      const m = readFileSync(`/proc/${pid}/status`, "utf8").match(/VmRSS:\s+(\d+)/);
      if (m) kb += Number(m[1]);
    } catch { /* process gone */ }
  }
  return kb / 1024;
}

const server = await startWrangler({
  vars: {
    HEARTBEAT_S: String(HEARTBEAT_S),
    RATE_IP_PER_MIN: "100000000", RATE_VISITOR_PER_MIN: "100000000", NEW_VISITORS_PER_IP_PER_MIN: "100000000",
  },
});
const ids = Array.from({ length: VISITORS }, () => randomUUID());
const stats = { ok: 0, s5xx: 0, other: 0, errors: 0, sent: 0 };
const latencies = [];
async function beat(v) {
  const t0 = performance.now();
  try {
    const r = await fetch(`${server.origin}/v1/heartbeat`, {
      method: "POST",
      headers: { "content-type": "text/plain", origin: server.origin },
      body: JSON.stringify({ site: "demo", visitor: v, tab: "t", page: `/p${v.charCodeAt(0) % 10}` }),
    });
    await r.arrayBuffer();
    if (r.status === 200) stats.ok++; else if (r.status >= 500) stats.s5xx++; else stats.other++;
  } catch { stats.errors++; }
  latencies.push(performance.now() - t0);
}

// Each visitor beats once per HEARTBEAT_S, spread evenly; CONCURRENCY requests in flight.
const start = Date.now();
const deadline = start + SECONDS * 1000;
let rssAfterFirstRound = null;
let next = 0;
const due = (i) => start + (i % VISITORS) * (HEARTBEAT_S * 1000 / VISITORS) + Math.floor(i / VISITORS) * HEARTBEAT_S * 1000;
async function worker() {
  for (;;) {
    const i = next++;
    if (i >= MAX_REQUESTS || due(i) >= deadline) return;
    const wait = due(i) - Date.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    stats.sent++;
    await beat(ids[i % VISITORS]);
    if (i === VISITORS && rssAfterFirstRound === null) rssAfterFirstRound = workerdRssMb();
  }
}
const progress = setInterval(() => {
  console.log(`  ${Math.round((Date.now() - start) / 1000)} s: ${stats.sent} sent, ${stats.ok} ok, ${stats.s5xx} 5xx, rss ${workerdRssMb().toFixed(0)} MB`);
}, 10_000);
console.log(`==> load: ${VISITORS} visitors, one heartbeat each per ${HEARTBEAT_S} s, for ${SECONDS} s, ${CONCURRENCY} in flight, on ${server.origin}`);
await Promise.all(Array.from({ length: CONCURRENCY }, worker));
clearInterval(progress);
const rssEnd = workerdRssMb();
const count = await (await fetch(`${server.origin}/v1/count?site=demo`)).json();
await server.stop();

latencies.sort((a, b) => a - b);
const pct = (p) => latencies[Math.min(latencies.length - 1, Math.floor(latencies.length * p))]?.toFixed(1);
const elapsed = (Date.now() - start) / 1000;
console.log(`requests ${stats.sent} in ${elapsed.toFixed(0)} s (${(stats.sent / elapsed).toFixed(0)}/s), p50 ${pct(0.5)} ms, p99 ${pct(0.99)} ms`);
console.log(`statuses: ${stats.ok} ok, ${stats.s5xx} 5xx, ${stats.other} other, ${stats.errors} transport errors`);
console.log(`count at the end: online ${count.online} (want ${VISITORS}), tabs ${count.tabs}`);
console.log(`workerd RSS: ${rssAfterFirstRound?.toFixed(0)} MB after the first round, ${rssEnd.toFixed(0)} MB at the end`);
const checks = [
  ["no 5xx and no transport errors", stats.s5xx === 0 && stats.errors === 0 && stats.other === 0],
  ["count exact at the end", count.online === VISITORS && count.tabs === VISITORS],
  ["workerd memory flat (end ≤ first round + 25%)", rssAfterFirstRound === null || rssEnd <= rssAfterFirstRound * 1.25],
];
for (const [name, ok] of checks) console.log(`${ok ? "PASS" : "FAIL"} ${name}`);
const failed = checks.filter(([, ok]) => !ok).length;
console.log(`load: ${checks.length - failed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
