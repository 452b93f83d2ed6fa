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
  const note = (op, bytes = 0) => env.COUNT.fetch("http://count/" + op + "?bytes=" + bytes);
  return {
    async get(key, opts) { await note("get"); return kv.get(key, opts); },
    async getWithMetadata(key, opts) { await note("get"); return kv.getWithMetadata(key, opts); },
    async put(key, value, opts) {
      await note("put", size(value) + (opts?.metadata ? size(JSON.stringify(opts.metadata)) : 0));
      return kv.put(key, value, opts);
    },
    async delete(key) { await note("delete"); return kv.delete(key); },
    async list(opts) { await note("list"); return kv.list(opts); },
  };
}`;

export const zeroOps = () => ({ get: 0, put: 0, delete: 0, list: 0, bytes: 0 });

function compatDate(dir) {
  const m = readFileSync(join(dir, "wrangler.toml"), "utf8").match(/compatibility_date\s*=\s*"([^"]+)"/);
  return m ? m[1] : "2026-04-01";
}

/**
 * Starts `kind` ("herenow": the built edge worker in `dir`/build; "naive": bench/naive) with
 * its KV binding counted, as `isolates` workers (separate isolates) on one KV namespace;
 * requests go round-robin across them. Returns { mf, ops, reset(), fetch(), origin }.
 */
export async function startCounted({ kind, dir, vars, origin, isolates = 1 }) {
  const ops = zeroOps();
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
    workers: [
      ...names.map((name) => ({
        ...worker,
        name,
        compatibilityDate: compatDate(dir),
        bindings: { SITES: JSON.stringify({ demo: { origins: [origin] } }), ...vars },
        wrappedBindings: { [binding]: { scriptName: "counting-kv" } },
      })),
      {
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
            return new Response("ok");
          },
        },
      },
    ],
  });
  await mf.ready;
  const workers = await Promise.all(names.map((n) => mf.getWorker(n)));
  let turn = 0;
  const fetch = (url, init) => workers[turn++ % workers.length].fetch(url, init);
  const reset = () => { for (const k of Object.keys(ops)) ops[k] = 0; };
  return { mf, ops, reset, fetch, origin, isolates };
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
