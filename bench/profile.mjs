#!/usr/bin/env node
// Diagnostic, not part of make bench (which profiles once per level itself): where herenow's
// time goes under load. Starts herenow (a snapshot of edge/build) under wrangler dev,
// pre-populates VISITORS visitors, profiles SECONDS s of wrk load through the worker's V8
// inspector and prints the functions with the most self time.
//   node bench/profile.mjs [visitors=100] [seconds=5] [beat|count]
import { startWrangler, snapshotEdge } from "./lib/wrangler.mjs";
import { seedHeartbeats } from "./lib/seed.mjs";
import { runWrk } from "./lib/wrk.mjs";
import { profileDuring } from "./lib/profile.mjs";

const visitors = Number(process.argv[2] ?? 100);
const seconds = Number(process.argv[3] ?? 5);
const mode = process.argv[4] ?? "beat";
const PREFIX = "0badbeef";
const snap = snapshotEdge();
const s = await startWrangler({ dir: snap.dir, persistRoot: "/dev/shm",
  vars: { RATE_IP_PER_MIN: "100000000", RATE_VISITOR_PER_MIN: "100000000", NEW_VISITORS_PER_IP_PER_MIN: "100000000", WINDOW_S: "900" } });
try {
  const seed = await seedHeartbeats({ origin: s.origin, prefix: PREFIX, from: 0, to: visitors, deadlineMs: Date.now() + 300_000 });
  console.log(`seeded ${seed.sent} visitors in ${seed.seconds.toFixed(1)} s`);
  const { during: w, summary } = await profileDuring(s.inspectorPort, () =>
    runWrk({ origin: s.origin, mode, from: 0, to: visitors, prefix: PREFIX, seconds, connections: 8 }));
  console.log(`${mode}: ${w.rps.toFixed(1)} req/s, p50 ${(w.p50_us / 1000).toFixed(1)} ms under the profiler; busy ${summary.busyMs.toFixed(0)} ms, idle ${summary.idleMs.toFixed(0)} ms`);
  for (const k of summary.kinds) console.log(`${k.pct.toFixed(1).padStart(5)}%  ${k.name}`);
  console.log("top self time:");
  for (const t of summary.top) console.log(`${t.pct.toFixed(1).padStart(5)}%  ${t.name.slice(0, 140)}`);
} finally {
  await s.stop();
  snap.remove();
}
