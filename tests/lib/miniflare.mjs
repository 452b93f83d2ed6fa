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

/** Starts the worker; `vars` override wrangler.toml-like settings; `persist` is a KV dir. */
export async function startWorker({ vars = {}, persist = false } = {}) {
  if (!existsSync(join(BUILD, "index.js"))) {
    throw new Error(`no built worker at ${BUILD}: run \`make build\` first`);
  }
  const mf = new Miniflare({
    modules: true,
    scriptPath: join(BUILD, "index.js"),
    modulesRoot: BUILD,
    modulesRules: [
      { type: "ESModule", include: ["**/*.js"] },
      { type: "CompiledWasm", include: ["**/*.wasm"] },
    ],
    compatibilityDate: "2026-04-01",
    kvNamespaces: ["PRESENCE"],
    kvPersist: persist,
    bindings: { SITES, WINDOW_S: "60", MEMBER_SECRET_DEMO: MEMBER_SECRET, ...vars },
  });
  await mf.ready;
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
