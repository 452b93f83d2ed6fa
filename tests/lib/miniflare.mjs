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
// Node (for accounting) and fails or delays on command: each operation asks Node for the
// current fault mode ("ok", "fail", "delay:<ms>"). It runs inside workerd as a wrapped
// binding, so the worker sees a binding that behaves like KV, or like KV under an outage.
const FAULTY_KV = `
async function gate(env, op) {
  const m = await (await env.CONTROL.fetch("http://control/" + op)).text();
  if (m === "fail") throw new Error("injected KV failure");
  if (m.startsWith("delay:")) await new Promise((r) => setTimeout(r, Number(m.slice(6))));
}
export default function (env) {
  const kv = env.REAL;
  return {
    async get(key, opts) { await gate(env, "get"); return kv.get(key, opts); },
    async getWithMetadata(key, opts) { await gate(env, "getWithMetadata"); return kv.getWithMetadata(key, opts); },
    async put(key, value, opts) { await gate(env, "put"); return kv.put(key, value, opts); },
    async delete(key) { await gate(env, "delete"); return kv.delete(key); },
    async list(opts) { await gate(env, "list"); return kv.list(opts); },
  };
}`;

/**
 * Starts the worker; `vars` override wrangler.toml-like settings; `persist` is a KV dir.
 * With `faults: true` the PRESENCE binding is the instrumented wrapper above: set its mode
 * with `mf.setFault("fail" | "ok" | "delay:300")`; `mf.kvOps` counts operations by kind.
 * With `port` the worker also listens on 127.0.0.1:`port` (for browsers and raw sockets);
 * `mf.url` is then its origin as a URL.
 */
export async function startWorker({ vars = {}, persist = false, faults = false, port } = {}) {
  if (!existsSync(join(BUILD, "index.js"))) {
    throw new Error(`no built worker at ${BUILD}: run \`make build\` first`);
  }
  let fault = "ok";
  const kvOps = { get: 0, getWithMetadata: 0, put: 0, delete: 0, list: 0 };
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
            kvNamespaces: { REAL: "presence" },
            serviceBindings: {
              CONTROL: (req) => {
                const op = new URL(req.url).pathname.slice(1);
                if (op in kvOps) kvOps[op] += 1;
                return new Response(fault);
              },
            },
          },
        ],
      }
    : { ...edge, kvNamespaces: ["PRESENCE"], kvPersist: persist };
  if (port !== undefined) Object.assign(options, { host: "127.0.0.1", port });
  const mf = new Miniflare(options);
  mf.url = await mf.ready;
  mf.setFault = (mode) => { fault = mode; };
  mf.kvOps = kvOps;
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

/** GET /v1/count for demo, parsed. */
export async function count(mf, query = "") {
  const r = await mf.dispatchFetch(`${ORIGIN}/v1/count?site=demo${query}`);
  if (r.status !== 200) throw new Error(`count: ${r.status} ${await r.text()}`);
  return r.json();
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
