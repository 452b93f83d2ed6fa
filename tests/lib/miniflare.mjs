// Runs the built edge worker (edge/build, from `make build`) inside real workerd via Miniflare.
import { Miniflare } from "miniflare";
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { dirname, join } from "node:path";
import { randomUUID, createHmac } from "node:crypto";

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
export const BUILD = join(ROOT, "edge", "build");
export const ORIGIN = "http://127.0.0.1:8787";
export const SITES = JSON.stringify({ demo: { origins: [ORIGIN, "http://localhost:8787"] } });
export const MEMBER_SECRET = "test-secret-test-secret-test-secret-0123";

// A KV binding that forwards to a real (local) KV namespace, reports every operation to
// Node (for accounting) and fails, delays or serves stale data on command: each operation
// asks Node for the current fault mode — "ok"; "fail" (throws, as KV does in an outage);
// "delay:<ms>"; "stale" (every read returns what the same read returned when last answered
// outside "stale", as a location whose cached copies stopped refreshing: KV's own
// eventual consistency, stretched; a read never answered before goes through). Writes go
// through in every mode but "fail". It runs inside workerd as a wrapped binding, so the
// worker sees a binding that behaves like KV, or like KV under an outage.
const FAULTY_KV = `
const answered = new Map(); // read → what it last returned outside "stale"
async function gate(env, op) {
  const m = await (await env.CONTROL.fetch("http://control/" + op)).text();
  if (m === "fail") throw new Error("injected KV failure");
  if (m.startsWith("delay:")) await new Promise((r) => setTimeout(r, Number(m.slice(6))));
  return m;
}
async function read(env, op, args, go) {
  const mode = await gate(env, op);
  const k = op + JSON.stringify(args);
  if (mode === "stale" && answered.has(k)) return structuredClone(answered.get(k));
  const v = await go();
  answered.set(k, structuredClone(v));
  return v;
}
export default function (env) {
  const kv = env.REAL;
  return {
    get(key, opts) { return read(env, "get", [key, opts], () => kv.get(key, opts)); },
    getWithMetadata(key, opts) { return read(env, "getWithMetadata", [key, opts], () => kv.getWithMetadata(key, opts)); },
    list(opts) { return read(env, "list", [opts], () => kv.list(opts)); },
    async put(key, value, opts) { await gate(env, "put"); return kv.put(key, value, opts); },
    async delete(key) { await gate(env, "delete"); return kv.delete(key); },
  };
}`;

/**
 * Starts the worker; `vars` override wrangler.toml-like settings; `persist` is a KV dir.
 * With `faults: true` the PRESENCE binding is the instrumented wrapper above: set its mode
 * with `mf.setFault("fail" | "ok" | "delay:300" | "stale")`, or a timed schedule of modes
 * with `mf.setSchedule([["fail", 1000], ["stale", 2000], …])` (each for its milliseconds,
 * from now; "ok" after the last); `mf.kvOps` counts operations by kind, `mf.kvOpsFailed`
 * those refused by "fail". The KV namespace is
 * the same one, wrapped or not, so a faulty and a plain worker can share a `persist` dir.
 * With `port` the worker also listens on 127.0.0.1:`port` (for browsers and raw sockets);
 * `mf.url` is then its origin as a URL. With `inspectorPort` workerd serves the V8 inspector
 * there (for the JS heap in tests/lib/memory.mjs).
 */
export async function startWorker({ vars = {}, persist = false, faults = false, port, inspectorPort } = {}) {
  if (!existsSync(join(BUILD, "index.js"))) {
    throw new Error(`no built worker at ${BUILD}: run \`make build\` first`);
  }
  let fault = "ok";
  let schedule = null; // { t0, steps: [[mode, ms], …] }
  const mode = () => {
    if (!schedule) return fault;
    let t = Date.now() - schedule.t0;
    for (const [m, ms] of schedule.steps) {
      if (t < ms) return m;
      t -= ms;
    }
    return "ok";
  };
  const kvOps = { get: 0, getWithMetadata: 0, put: 0, delete: 0, list: 0 };
  const kvOpsFailed = { get: 0, getWithMetadata: 0, put: 0, delete: 0, list: 0 };
  const edge = {
    name: "herenow",
    modules: true,
    scriptPath: join(BUILD, "index.js"),
    modulesRoot: BUILD,
    modulesRules: [
      { type: "ESModule", include: ["**/*.js"] },
      { type: "CompiledWasm", include: ["**/*.wasm"] },
    ],
    compatibilityDate: "2026-04-01",
    bindings: { SITES, WINDOW_S: "60", MEMBER_SECRET_DEMO: MEMBER_SECRET, ...vars },
  };
  const options = faults
    ? {
        kvPersist: persist,
        workers: [
          { ...edge, wrappedBindings: { PRESENCE: { scriptName: "faulty-kv" } } },
          {
            name: "faulty-kv",
            modules: true,
            script: FAULTY_KV,
            kvNamespaces: { REAL: "PRESENCE" },
            serviceBindings: {
              CONTROL: (req) => {
                const op = new URL(req.url).pathname.slice(1);
                const m = mode();
                if (op in kvOps) kvOps[op] += 1;
                if (op in kvOps && m === "fail") kvOpsFailed[op] += 1;
                return new Response(m);
              },
            },
          },
        ],
      }
    : { ...edge, kvNamespaces: ["PRESENCE"], kvPersist: persist };
  if (port !== undefined) Object.assign(options, { host: "127.0.0.1", port });
  if (inspectorPort !== undefined) Object.assign(options, { inspectorPort });
  const mf = new Miniflare(options);
  mf.url = await mf.ready;
  mf.setFault = (m) => { schedule = null; fault = m; };
  mf.setSchedule = (steps) => { schedule = { t0: Date.now(), steps }; };
  mf.kvOps = kvOps;
  mf.kvOpsFailed = kvOpsFailed;
  return mf;
}

const b64url = (buf) => Buffer.from(buf).toString("base64url");

/** Mints an HS256 member token as a site's backend would (`alg` may be overridden to test rejection). */
export function mintToken({ sub, name, exp, nbf, secret = MEMBER_SECRET, alg = "HS256" }) {
  const header = b64url(JSON.stringify({ alg, typ: "JWT" }));
  const claims = { sub, name, exp };
  if (nbf !== undefined) claims.nbf = nbf;
  const payload = b64url(JSON.stringify(claims));
  const sig = alg === "none" ? "" : createHmac("sha256", secret).update(`${header}.${payload}`).digest("base64url");
  return `${header}.${payload}.${sig}`;
}

/** A fresh visitor id (uuid v4). */
export const visitor = () => randomUUID();

/** A heartbeat or leave body. */
export function body(v, tab, extra = {}) {
  return JSON.stringify({ site: "demo", visitor: v, tab, page: "/", state: "active", ...extra });
}

/** POSTs to `path` the way the client does (text/plain, same origin). */
export async function post(mf, path, payload, headers = {}) {
  return mf.dispatchFetch(`${ORIGIN}${path}`, {
    method: "POST",
    headers: { "content-type": "text/plain;charset=UTF-8", origin: ORIGIN, ...headers },
    body: payload,
  });
}

/**
 * GET /v1/count for demo, parsed. Like a dashboard, it retries a 503 (the store unavailable:
 * two workerd processes sharing one on-disk KV, as tests/locations.test.mjs runs them,
 * now and then fail a KV operation with SQLite busy) up to `retries` times, 200 ms apart;
 * any other status, or a 503 that persists, throws.
 */
export async function count(mf, query = "", { retries = 3 } = {}) {
  for (let attempt = 0; ; attempt++) {
    const r = await mf.dispatchFetch(`${ORIGIN}/v1/count?site=demo${query}`);
    if (r.status === 200) return r.json();
    const text = await r.text();
    if (r.status !== 503 || attempt >= retries) throw new Error(`count: ${r.status} ${text}`);
    await new Promise((res) => setTimeout(res, 200));
  }
}

/** Polls `fn` until it returns truthy or `ms` pass; returns the last value. */
export async function until(fn, ms, every = 50) {
  const deadline = Date.now() + ms;
  let last;
  for (;;) {
    last = await fn();
    if (last || Date.now() > deadline) return last;
    await new Promise((r) => setTimeout(r, every));
  }
}
