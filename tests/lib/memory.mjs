// Memory of a `wrangler dev` started by ./wrangler.mjs, for the load test: the RSS of each
// of *its* processes (found by process group, so that other wrangler/workerd processes on
// the machine do not count), the JS heap of the worker's isolate after a full GC (through
// wrangler's inspector port) and, with DEBUG_STATS set, the worker's wasm linear memory and
// state sizes (/healthz).
import { execFileSync } from "node:child_process";
import { readFileSync, readdirSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";
import { ROOT } from "./miniflare.mjs";

// Clock ticks per second of /proc/<pid>/stat's CPU times.
const CLK_TCK = Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim()) || 100;

/**
 * The processes in process group `pgid` (wrangler and its workerd children), each as
 * { pid, role, rssMb, cpuMs } (cpuMs: user + system CPU time so far). role: "wrangler" (node), "runtime" (the workerd that runs the
 * worker and the local KV, started with an inspector address), "proxy" (wrangler's other
 * workerd, the dev proxy that owns the public port and forwards every request), or "other".
 */
export function groupProcesses(pgid) {
  const out = [];
  for (const pid of readdirSync("/proc").filter((p) => /^\d+$/.test(p))) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
      // Fields after the command name, which is in parentheses: state ppid pgrp …
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      if (Number(fields[2]) !== pgid) continue;
      const cpuMs = ((Number(fields[11]) + Number(fields[12])) * 1000) / CLK_TCK;
      const cmd = readFileSync(`/proc/${pid}/cmdline`, "utf8");
      const rss = Number(readFileSync(`/proc/${pid}/status`, "utf8").match(/VmRSS:\s+(\d+)/)?.[1] ?? 0);
      let role = "other";
      if (cmd.includes("workerd")) role = cmd.includes("--inspector-addr") ? "runtime" : "proxy";
      else if (/(^|\/)node\0/.test(cmd) || cmd.includes("wrangler")) role = "wrangler";
      out.push({ pid: Number(pid), role, rssMb: rss / 1024, cpuMs });
    } catch { /* gone meanwhile */ }
  }
  return out;
}

/** RSS in MB by role ({ runtime, proxy, wrangler, workerd: runtime + proxy }). */
export function rssByRole(pgid) {
  const by = { runtime: 0, proxy: 0, wrangler: 0, other: 0 };
  for (const p of groupProcesses(pgid)) by[p.role] += p.rssMb;
  by.workerd = by.runtime + by.proxy;
  return by;
}

// `ws`, as Miniflare (pinned in package.json) depends on it: Node 20 has no WebSocket client.
const WebSocket = createRequire(join(ROOT, "node_modules", "miniflare", "package.json"))("ws");

/**
 * The used JS heap of the worker's isolate after a full garbage collection, in MB, through
 * wrangler's --inspector-port (connected only for this, so that the debugger is not enabled
 * during the load). workerd runs HeapProfiler.collectGarbage only when the isolate next
 * handles an event and never answers it, so a request to `origin` follows it. Returns
 * { usedMb, totalMb } or null; bounded by a 20 s time-out. With several workers in one workerd,
 * `worker` names the one to measure (its inspector target's id or title contains the name;
 * `origin` must reach that worker); by default the first target.
 */
export async function heapAfterGc(inspectorPort, origin, worker) {
  let ws;
  const work = (async () => {
    const targets = await (await fetch(`http://127.0.0.1:${inspectorPort}/json`)).json();
    const target = worker === undefined ? targets[0]
      : targets.find((t) => `${t.id} ${t.title}`.includes(worker));
    if (!target) throw new Error(`no inspector target for ${worker} in ${JSON.stringify(targets.map((t) => t.id))}`);
    ws = new WebSocket(target.webSocketDebuggerUrl);
    await new Promise((resolve, reject) => { ws.once("open", resolve); ws.once("error", reject); });
    const replies = new Map();
    ws.on("message", (d) => {
      const m = JSON.parse(d);
      replies.get(m.id)?.(m);
    });
    const send = (id, method) => {
      ws.send(JSON.stringify({ id, method, params: {} }));
      return new Promise((resolve) => replies.set(id, resolve));
    };
    void send(1, "HeapProfiler.collectGarbage");
    for (let i = 0; i < 2; i++) {
      await (await fetch(`${origin}/healthz`)).arrayBuffer();
      await new Promise((r) => setTimeout(r, 250));
    }
    const r = (await send(2, "Runtime.getHeapUsage")).result;
    return { usedMb: r.usedSize / 2 ** 20, totalMb: r.totalSize / 2 ** 20 };
  })();
  const timeout = new Promise((resolve) => setTimeout(() => resolve(null), 20_000));
  try {
    return await Promise.race([work.catch(() => null), timeout]);
  } finally {
    ws?.close();
  }
}

/**
 * The worker's /healthz with DEBUG_STATS set: { isolate, wasmMb, engine, limiterKeys }, or
 * null if it does not answer with them.
 */
export async function workerStats(origin) {
  try {
    const j = await (await fetch(`${origin}/healthz`)).json();
    if (j.wasm_memory_bytes == null) return null;
    return { isolate: j.isolate, wasmMb: j.wasm_memory_bytes / 2 ** 20, engine: j.engine, limiterKeys: j.limiter_keys };
  } catch { return null; }
}
