// KV operations accounting: runs a worker in workerd through Miniflare with its KV binding
// wrapped (a `wrappedBindings` worker that forwards every call to a real local KV namespace
// and reports it to Node through a function service binding first), drives it with
// dispatchFetch and counts operations and bytes written per request. Separate from the wrk
// run: each KV op costs a round trip to Node here, so rates from this run are not throughput.
import { Miniflare } from "miniflare";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { beatBody } from "./seed.mjs";

const COUNTING_KV = `
const size = (v) => typeof v === "string" ? new TextEncoder().encode(v).length : (v?.byteLength ?? 0);
export default function (env) {
  const kv = env.REAL;
  const tag = (key) => String(key).split(":")[0];
  const note = (op, bytes = 0, key = "") => env.COUNT.fetch("http://count/" + op + "?bytes=" + bytes + "&tag=" + tag(key));
  return {
    async get(key, opts) { await note("get", 0, key); return kv.get(key, opts); },
    async getWithMetadata(key, opts) { await note("get", 0, key); return kv.getWithMetadata(key, opts); },
    async put(key, value, opts) {
      await note("put", size(value) + (opts?.metadata ? size(JSON.stringify(opts.metadata)) : 0), key);
      try {
        return await kv.put(key, value, opts);
      } catch (e) {
        await env.COUNT.fetch("http://count/failed?tag=" + tag(key) + "&why=" + encodeURIComponent(String(e.message ?? e).slice(0, 200)));
        throw e;
      }
    },
    async delete(key) { await note("delete", 0, key); return kv.delete(key); },
    async list(opts) { await note("list"); return kv.list(opts); },
  };
}`;

export const zeroOps = () => ({ get: 0, put: 0, delete: 0, list: 0, bytes: 0, failed: 0 });

/** Ops by kind and key tag (`put:r`, `get:m`, …: the engine's record and last-seen keys). */
export const OP_KINDS = ["get", "list", "put", "delete"];

function compatDate(dir) {
  const m = readFileSync(join(dir, "wrangler.toml"), "utf8").match(/compatibility_date\s*=\s*"([^"]+)"/);
  return m ? m[1] : "2026-04-01";
}

/**
 * The counting KV binding: a worker named `counting-kv` holding the real namespace `real`
 * (REAL) that a worker reaches through `wrappedBindings: { <binding>: { scriptName:
 * "counting-kv" } }`; every operation is counted in `ops` (by kind, bytes written) and
 * `byTag` (`put:r`, `get:m`, …) before it runs. Returns { worker, ops, byTag, lastFailure,
 * reset() }.
 */
export function countingKv() {
  const ops = zeroOps();
  const byTag = {};
  const lastFailure = { why: "" };
  const worker = {
    name: "counting-kv",
    modules: true,
    script: COUNTING_KV,
    kvNamespaces: { REAL: "real" },
    serviceBindings: {
      COUNT: (req) => {
        const u = new URL(req.url);
        const op = u.pathname.slice(1);
        if (op in ops) ops[op] += 1;
        ops.bytes += Number(u.searchParams.get("bytes") || 0);
        if (op === "failed") lastFailure.why = u.searchParams.get("why");
        const t = u.searchParams.get("tag");
        if (t && op !== "list") byTag[`${op}:${t}`] = (byTag[`${op}:${t}`] ?? 0) + 1;
        return new Response("ok");
      },
    },
  };
  const reset = () => {
    for (const k of Object.keys(ops)) ops[k] = 0;
    for (const k of Object.keys(byTag)) delete byTag[k];
  };
  return { worker, ops, byTag, lastFailure, reset };
}

/**
 * Starts `kind` ("herenow": the built edge worker in `dir`/build; "naive": bench/naive) with
 * its KV binding counted, as `isolates` workers (separate isolates) on one KV namespace;
 * `fetch` sends requests round-robin across them, `workers[i].fetch` to one of them. Every
 * request carries `cf` as its `request.cf` (the edge reads its location from `cf.colo`
 * once per isolate, edge/src/glue.rs), so all of them are isolates of one location. With
 * `cache` (default) the workers share one working `caches.default`, as the isolates of a
 * data center do on a custom domain, so herenow's per-location channel comes on
 * (edge/src/cache.rs); `cache: false` makes it a no-op, as on *.workers.dev: everything
 * goes through KV.
 * Returns { mf, ops, reset(), fetch(), workers, origin, isolates }.
 */
export async function startCounted({ kind, dir, vars, origin, isolates = 1, cf = { colo: "BNC" }, cache = true }) {
  const counting = countingKv();
  const { ops, byTag, lastFailure, reset } = counting;
  const binding = kind === "herenow" ? "PRESENCE" : "KV";
  const worker = kind === "herenow"
    ? {
        name: "subject",
        modules: true,
        scriptPath: join(dir, "build", "index.js"),
        modulesRoot: join(dir, "build"),
        modulesRules: [
          { type: "ESModule", include: ["**/*.js"] },
          { type: "CompiledWasm", include: ["**/*.wasm"] },
        ],
      }
    : { name: "subject", modules: true, scriptPath: join(dir, "worker.js") };
  const names = Array.from({ length: isolates }, (_, i) => `subject${i}`);
  const mf = new Miniflare({
    cf,
    workers: [
      ...names.map((name) => ({
        ...worker,
        name,
        compatibilityDate: compatDate(dir),
        cache,
        bindings: { SITES: JSON.stringify({ demo: { origins: [origin] } }), ...vars },
        wrappedBindings: { [binding]: { scriptName: "counting-kv" } },
      })),
      counting.worker,
    ],
  });
  await mf.ready;
  const workers = (await Promise.all(names.map((n) => mf.getWorker(n))))
    .map((w) => ({ fetch: (url, init = {}) => w.fetch(url, { ...init, cf }) }));
  let turn = 0;
  const fetch = (url, init) => workers[turn++ % workers.length].fetch(url, init);
  return { mf, ops, byTag, lastFailure, reset, fetch, workers, origin, isolates, keys: () => listKeys(mf) };
}

/** Every key in the shared namespace (for checks: record keys name their location). */
export async function listKeys(mf) {
  const kv = await mf.getKVNamespace("REAL", "counting-kv");
  const out = [];
  let cursor;
  for (let i = 0; i < 100; i++) {
    const page = await kv.list({ cursor });
    out.push(...page.keys.map((k) => k.name));
    if (page.list_complete) break;
    cursor = page.cursor;
  }
  return out;
}

/** Sends `body` to /v1/heartbeat the way the client does. */
export async function mfBeat(c, body) {
  const r = await c.fetch(`${c.origin}/v1/heartbeat`, {
    method: "POST",
    headers: { "content-type": "text/plain;charset=UTF-8", origin: c.origin },
    body,
  });
  await r.arrayBuffer();
  return r.status;
}

export async function mfCount(c) {
  const r = await c.fetch(`${c.origin}/v1/count?site=demo`);
  const text = await r.text();
  return { status: r.status, body: r.status === 200 ? JSON.parse(text) : text };
}

/** Runs `fn` with `concurrency` workers until `ms` pass or `max` calls; returns { n, bad, seconds }. */
export async function drive(fn, { ms, max = Infinity, concurrency = 8 }) {
  const t0 = Date.now();
  let n = 0;
  let bad = 0;
  const w = async () => {
    while (Date.now() - t0 < ms && n < max) {
      n += 1;
      if ((await fn(n)) !== 200) bad += 1;
    }
  };
  await Promise.all(Array.from({ length: concurrency }, w));
  return { n, bad, seconds: (Date.now() - t0) / 1000 };
}

/** Seeds visitors [from, to) into a counted worker (herenow: heartbeats; naive: its seed route). */
export async function seedCounted(c, kind, prefix, from, to, deadlineMs) {
  if (kind === "naive") {
    for (let i = from; i < to && Date.now() < deadlineMs; i += 250) {
      const r = await c.fetch(`${c.origin}/bench/seed`, {
        method: "POST",
        body: JSON.stringify({ prefix, from: i, to: Math.min(to, i + 250) }),
      });
      await r.arrayBuffer();
      if (r.status !== 200) throw new Error(`naive seed: ${r.status}`);
    }
    return;
  }
  let next = from;
  await drive(async () => {
    const i = next++;
    if (i >= to) return 200;
    return mfBeat(c, beatBody(prefix, i));
  }, { ms: Math.max(0, deadlineMs - Date.now()), max: to - from, concurrency: 8 });
}
