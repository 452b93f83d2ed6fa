// Samples the V8 CPU profile of a worker under wrangler dev through its inspector port while
// `during()` runs, and summarizes where the time went: the functions with the most self time
// (wasm functions by the names in the module's name section) and coarse shares.
import { createRequire } from "node:module";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";

// `ws`, as Miniflare (pinned in package.json) depends on it: Node 20 has no WebSocket client.
const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const WebSocket = createRequire(join(ROOT, "node_modules", "miniflare", "package.json"))("ws");

export async function profileDuring(inspectorPort, during, { intervalUs = 500, worker } = {}) {
  const targets = await (await fetch(`http://127.0.0.1:${inspectorPort}/json`)).json();
  // One of several workers of a Miniflare by its name, else the only one.
  const target = worker === undefined ? targets[0] : targets.find((t) => `${t.id} ${t.title}`.includes(worker));
  if (!target) throw new Error(`no inspector target for ${worker}`);
  const ws = new WebSocket(target.webSocketDebuggerUrl);
  await new Promise((resolve, reject) => { ws.once("open", resolve); ws.once("error", reject); });
  let id = 0;
  const pending = new Map();
  ws.on("message", (d) => {
    const m = JSON.parse(d);
    if (pending.has(m.id)) { pending.get(m.id)(m); pending.delete(m.id); }
  });
  const send = (method, params = {}) => new Promise((resolve, reject) => {
    const i = ++id;
    const timer = setTimeout(() => { pending.delete(i); reject(new Error(`inspector: ${method} timed out`)); }, 30_000);
    pending.set(i, (m) => { clearTimeout(timer); resolve(m); });
    ws.send(JSON.stringify({ id: i, method, params }));
  });
  let duringResult;
  let profile;
  try {
    await send("Profiler.enable");
    await send("Profiler.setSamplingInterval", { interval: intervalUs });
    await send("Profiler.start");
    duringResult = await during();
    profile = (await send("Profiler.stop")).result.profile;
    // Name anonymous frames after the property they are defined under in the bundle
    // (wasm-bindgen's import shims are `__wbg_<name>_<hash>: function (…) {…}`).
    await send("Debugger.enable");
    const sources = new Map();
    for (const n of profile.nodes) {
      const cf = n.callFrame;
      if (cf.functionName || !cf.url || /\.wasm/.test(cf.url)) continue;
      if (!sources.has(cf.scriptId)) {
        const r = await send("Debugger.getScriptSource", { scriptId: cf.scriptId }).catch(() => null);
        sources.set(cf.scriptId, r?.result?.scriptSource?.split("\n") ?? null);
      }
      const line = sources.get(cf.scriptId)?.[cf.lineNumber];
      const before = line?.slice(Math.max(0, cf.columnNumber - 200), cf.columnNumber) ?? "";
      const m = before.match(/([A-Za-z_$][\w$]*)\s*[:=]\s*(?:\/\*[^*]*\*\/\s*)?(?:__name\()?\s*(?:async\s*)?(?:function\s*)?(?:\([^)]*\)\s*=>\s*)?$/);
      if (m) cf.functionName = `${m[1]} (anonymous)`;
    }
  } finally {
    ws.close();
  }
  return { during: duringResult, summary: summarizeProfile(profile) };
}

const IDLE = new Set(["(idle)"]);

function kind(cf) {
  if (/\.wasm/.test(cf.url) || cf.url.startsWith("wasm://")) {
    if (/herenow_core::/.test(cf.functionName)) return "herenow-core (engine, protocol)";
    if (/hash|sip|hashbrown/i.test(cf.functionName)) return "hashing (std HashMap)";
    if (/alloc|malloc|free|memcpy|memmove|memcmp|memset|dlmalloc/i.test(cf.functionName)) return "allocation and memory";
    if (/serde/.test(cf.functionName)) return "serde (JSON)";
    return "other wasm (worker crate, wasm-bindgen, std)";
  }
  if (/^(\(program\)|\(garbage collector\))$/.test(cf.functionName)) return "V8: program and GC";
  if (cf.url && /^__wbg_|^__wbindgen_/.test(cf.functionName)) return "JS: wasm-bindgen import shims (calls from wasm into JS)";
  if (cf.url) return "JS: other (wasm-bindgen and worker-build glue, wrangler's dev middleware)";
  return "runtime built-ins (Request, Headers, streams, …)";
}

export function summarizeProfile(prof) {
  const byId = new Map(prof.nodes.map((n) => [n.id, n]));
  const self = new Map();
  const kinds = new Map();
  let busy = 0;
  let idle = 0;
  for (let i = 0; i < prof.samples.length; i++) {
    const n = byId.get(prof.samples[i]);
    const us = prof.timeDeltas[i] ?? 0;
    const cf = n.callFrame;
    if (IDLE.has(cf.functionName)) { idle += us; continue; }
    busy += us;
    const name = cf.functionName
      ? cf.functionName.replace(/::h[0-9a-f]{16}$/, "").replace(/\[[0-9a-f]{16}\]/g, "").replace(/_[0-9a-f]{16}( \(anonymous\))?$/, "$1")
      : `(anonymous) ${cf.url.split("/").pop()}`;
    self.set(name, (self.get(name) ?? 0) + us);
    const k = kind(cf);
    kinds.set(k, (kinds.get(k) ?? 0) + us);
  }
  const pct = (us) => (100 * us) / (busy || 1);
  return {
    busyMs: busy / 1000,
    idleMs: idle / 1000,
    top: [...self].sort((a, b) => b[1] - a[1]).slice(0, Number(process.env.PROFILE_TOP ?? 12)).map(([name, us]) => ({ name, pct: pct(us) })),
    kinds: [...kinds].sort((a, b) => b[1] - a[1]).map(([name, us]) => ({ name, pct: pct(us) })),
  };
}
