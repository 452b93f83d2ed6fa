// The naive design, kept for comparison: one KV key per tab, written on every heartbeat
// with a TTL, and a count that lists every key of the site (all pages) and aggregates.
// Same API shape as herenow for the routes the bench drives: POST /v1/heartbeat answers the
// count, GET /v1/count answers it, GET /healthz.
const TTL_DEFAULT = 60;
let sitesCache = null;

function json(status, obj) {
  return new Response(JSON.stringify(obj), {
    status,
    headers: { "content-type": "application/json; charset=utf-8", "cache-control": "no-store" },
  });
}
const error = (status, code, message) => json(status, { error: { code, message } });

function sites(env) {
  sitesCache ??= JSON.parse(env.SITES || "{}");
  return sitesCache;
}

async function count(env, site, page) {
  const prefix = `v:${site}:`;
  const visitors = new Map(); // visitor -> any tab active?
  const pages = new Map(); // page -> Set(visitor)
  let tabs = 0;
  let cursor;
  do {
    const res = await env.KV.list({ prefix, cursor });
    for (const k of res.keys) {
      const [, , visitor] = k.name.split(":");
      const m = k.metadata || {};
      tabs += 1;
      visitors.set(visitor, visitors.get(visitor) || m.s === "active");
      if (!pages.has(m.p)) pages.set(m.p, new Set());
      pages.get(m.p).add(visitor);
    }
    cursor = res.list_complete ? undefined : res.cursor;
  } while (cursor);
  let idle = 0;
  for (const active of visitors.values()) if (!active) idle += 1;
  const top = [...pages].map(([p, s]) => ({ page: p, online: s.size }))
    .sort((a, b) => b.online - a.online).slice(0, 20);
  const out = { online: visitors.size, tabs, members: 0, guests: visitors.size, idle, pages: top,
    window_s: Number(env.NAIVE_TTL_S || TTL_DEFAULT), as_of: Date.now() };
  if (page !== undefined) out.page = pages.get(page)?.size ?? 0;
  return out;
}

export default {
  async fetch(req, env) {
    const url = new URL(req.url);
    if (url.pathname === "/healthz") return json(200, { ok: true });
    if (url.pathname === "/v1/heartbeat") {
      if (req.method !== "POST") return error(405, "method_not_allowed", "POST");
      let b;
      try { b = JSON.parse(await req.text()); } catch { return error(400, "invalid_json", "bad body"); }
      const { site, visitor, tab, page = "/", state = "active" } = b || {};
      if (typeof site !== "string" || !sites(env)[site]) return error(403, "unknown_site", "unknown site");
      if (!/^[0-9a-f-]{36}$/.test(visitor || "") || !/^[A-Za-z0-9_-]{1,64}$/.test(tab || "")) {
        return error(400, "invalid_visitor", "bad visitor or tab");
      }
      const ttl = Number(env.NAIVE_TTL_S || TTL_DEFAULT);
      await env.KV.put(`v:${site}:${visitor}:${tab}`, "", { expirationTtl: ttl, metadata: { p: page, s: state } });
      return json(200, { ...(await count(env, site, page)), next_heartbeat_ms: 15000 });
    }
    if (url.pathname === "/bench/seed" && env.NAIVE_SEED === "1" && req.method === "POST") {
      // Bench-only pre-population (off unless NAIVE_SEED=1): the same put as a heartbeat for
      // visitors [from, to) of load.lua's scheme, without the count that follows each one
      // (seeding 100,000 visitors through heartbeats would list the keys 100,000 times).
      const { prefix, from, to } = JSON.parse(await req.text());
      const ttl = Number(env.NAIVE_TTL_S || TTL_DEFAULT);
      const pages = ["/", "/pricing", "/docs", "/blog/post", "/about"];
      const puts = [];
      for (let i = from; i < to; i++) {
        const visitor = `${prefix}-0000-4000-8000-${i.toString(16).padStart(12, "0")}`;
        puts.push(env.KV.put(`v:demo:${visitor}:t${i}`, "", { expirationTtl: ttl,
          metadata: { p: pages[i % 5], s: i % 7 === 0 ? "idle" : "active" } }));
      }
      await Promise.all(puts);
      return json(200, { ok: true, put: to - from });
    }
    if (url.pathname === "/v1/count") {
      const site = url.searchParams.get("site");
      if (!site || !sites(env)[site]) return error(403, "unknown_site", "unknown site");
      return json(200, await count(env, site, url.searchParams.get("page") ?? undefined));
    }
    return error(404, "not_found", "no such route");
  },
};
