// The built worker inside real workerd (Miniflare): every endpoint, errors that record
// nothing, CORS, two tabs = one person, leave and window expiry, persistence, KV writes.
import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect } from "node:net";
import { startWorker, visitor, body, post, count, until, mintToken, ORIGIN } from "./lib/miniflare.mjs";
import { freePort } from "./lib/wrangler.mjs";

describe("edge worker in workerd", () => {
  let mf;
  before(async () => { mf = await startWorker({ vars: { WINDOW_S: "2" } }); });
  after(async () => { await mf?.dispose(); });

  test("GET /healthz is 200", async () => {
    const r = await mf.dispatchFetch(`${ORIGIN}/healthz`);
    assert.equal(r.status, 200);
    assert.deepEqual(await r.json(), { ok: true });
  });

  test("two tabs of one visitor are one person; a second visitor makes two; a leave drops at once", async () => {
    const a = visitor(), b = visitor();
    let r = await post(mf, "/v1/heartbeat", body(a, "t1"));
    assert.equal(r.status, 200);
    const first = await r.json();
    assert.equal(first.online, 1);
    assert.equal(first.window_s, 2);
    assert.ok(first.next_heartbeat_ms > 0 && first.next_heartbeat_ms < 2000);
    r = await post(mf, "/v1/heartbeat", body(a, "t2", { page: "/about" }));
    const two = await r.json();
    assert.deepEqual([two.online, two.tabs], [1, 2]);
    r = await post(mf, "/v1/heartbeat", body(b, "t3"));
    assert.equal((await r.json()).online, 2);
    const c = await count(mf, "&page=/about");
    assert.deepEqual([c.online, c.tabs, c.guests, c.members, c.page], [2, 3, 2, 0, 1]);
    r = await post(mf, "/v1/leave", body(b, "t3"));
    assert.equal(r.status, 204);
    const started = Date.now();
    const after = await until(async () => (await count(mf)).online === 1, 1000);
    assert.ok(after, "online back to 1 within 1 s of the leave");
    assert.ok(Date.now() - started < 1000);
    await post(mf, "/v1/leave", body(a, "t1"));
    await post(mf, "/v1/leave", body(a, "t2"));
    assert.equal((await count(mf)).online, 0);
  });

  test("idle tabs: a visitor whose only tab is hidden counts idle", async () => {
    const v = visitor();
    const r = await post(mf, "/v1/heartbeat", body(v, "t", { state: "idle" }));
    assert.equal((await r.json()).idle, 1);
    await post(mf, "/v1/leave", body(v, "t"));
  });

  test("a tab with no heartbeat for the window is gone", async () => {
    const v = visitor();
    await post(mf, "/v1/heartbeat", body(v, "t"));
    assert.equal((await count(mf)).online, 1);
    const gone = await until(async () => (await count(mf)).online === 0, 4000, 200);
    assert.ok(gone, "expired within the 2 s window (+ slack)");
  });

  test("bad input: a clear error and nothing recorded", async () => {
    const v = visitor();
    const cases = [
      [{ body: "{" }, 400, "invalid_json"],
      [{ body: body("not-a-uuid", "t") }, 400, "invalid_visitor"],
      [{ body: body(v, "") }, 400, "invalid_tab"],
      [{ body: body(v, "t", { page: "nope" }) }, 400, "invalid_page"],
      [{ body: body(v, "t", { state: "away" }) }, 400, "invalid_state"],
      [{ body: body(v, "t", { site: "other" }) }, 403, "unknown_site"],
      [{ body: body(v, "t"), headers: { origin: "https://evil.example" } }, 403, "origin_not_allowed"],
      [{ body: body(v, "t"), headers: { "content-type": "application/x-www-form-urlencoded" } }, 415, "unsupported_media_type"],
      [{ body: body(v, "t", { page: "/" + "a".repeat(5000) }) }, 413, "body_too_large"],
    ];
    for (const [req, status, code] of cases) {
      const r = await post(mf, "/v1/heartbeat", req.body, req.headers ?? {});
      assert.equal(r.status, status, code);
      assert.equal((await r.json()).error.code, code);
    }
    let r = await mf.dispatchFetch(`${ORIGIN}/v1/heartbeat`);
    assert.equal(r.status, 405);
    r = await mf.dispatchFetch(`${ORIGIN}/v1/nope`);
    assert.equal(r.status, 404);
    assert.equal((await r.json()).error.code, "not_found");
    assert.equal((await count(mf)).online, 0, "no error recorded a visitor");
  });

  test("CORS: allowed origins get headers and preflights; others do not", async () => {
    let r = await mf.dispatchFetch(`${ORIGIN}/v1/heartbeat`, {
      method: "OPTIONS",
      headers: { origin: "http://localhost:8787", "access-control-request-method": "POST" },
    });
    assert.equal(r.status, 204);
    assert.equal(r.headers.get("access-control-allow-origin"), "http://localhost:8787");
    assert.match(r.headers.get("access-control-allow-methods") ?? "", /POST/);
    assert.equal(r.headers.get("access-control-allow-headers"), "content-type, authorization");
    // An actual response: the origin, and Retry-After readable by the page.
    r = await mf.dispatchFetch(`${ORIGIN}/v1/count?site=demo`, { headers: { origin: "http://localhost:8787" } });
    assert.equal(r.status, 200);
    assert.equal(r.headers.get("access-control-allow-origin"), "http://localhost:8787");
    assert.equal(r.headers.get("access-control-expose-headers"), "retry-after");
    assert.equal(r.headers.get("vary"), "Origin");
    r = await mf.dispatchFetch(`${ORIGIN}/v1/heartbeat`, {
      method: "OPTIONS",
      headers: { origin: "https://evil.example", "access-control-request-method": "POST" },
    });
    assert.equal(r.status, 403);
    assert.equal(r.headers.get("access-control-allow-origin"), null);
  });
});

describe("members, online list, last seen, badge", () => {
  let mf;
  const READ_KEY = "read-key-read-key-read-key-read-key-0123";
  before(async () => { mf = await startWorker({ vars: { WINDOW_S: "60", SOLO_DELAY_S: "1", READ_KEY_DEMO: READ_KEY } }); });
  after(async () => { await mf?.dispose(); });
  const nowS = () => Math.floor(Date.now() / 1000);
  const readKey = { headers: { authorization: `Bearer ${READ_KEY}` } };

  test("a valid member token counts the visitor as that member; /v1/online lists members only", async () => {
    const m = visitor(), g = visitor();
    const token = mintToken({ sub: "ada", name: "Ada Lovelace", exp: nowS() + 600, nbf: nowS() - 5 });
    let r = await post(mf, "/v1/heartbeat", body(m, "t1", { member_token: token, page: "/docs" }));
    assert.equal(r.status, 200);
    r = await post(mf, "/v1/heartbeat", body(g, "t2"));
    const c = await r.json();
    assert.deepEqual([c.online, c.members, c.guests], [2, 1, 1]);
    r = await mf.dispatchFetch(`${ORIGIN}/v1/online?site=demo`, readKey);
    assert.equal(r.status, 200);
    const online = await r.json();
    assert.equal(online.members.length, 1);
    assert.deepEqual([online.members[0].id, online.members[0].name, online.members[0].page], ["ada", "Ada Lovelace", "/docs"]);
    assert.ok(online.members[0].since <= Date.now());
    r = await mf.dispatchFetch(`${ORIGIN}/v1/last-seen?site=demo&member=ada`);
    assert.equal((await r.json()).online, true);
    await post(mf, "/v1/leave", body(m, "t1"));
    await post(mf, "/v1/leave", body(g, "t2"));
    const seen = await until(async () => {
      const j = await (await mf.dispatchFetch(`${ORIGIN}/v1/last-seen?site=demo&member=ada`)).json();
      return j.online === false && j.last_seen > 0 && j;
    }, 3000);
    assert.ok(seen, "last seen recorded on leave");
    assert.ok(Math.abs(seen.last_seen - Date.now()) < 10_000);
  });

  test("/v1/online: without the read key 401, a wrong key 403, each naming the fix; with the key 200; counts stay public", async () => {
    const m = visitor();
    const token = mintToken({ sub: "grace", name: "Grace Hopper", exp: nowS() + 600 });
    assert.equal((await post(mf, "/v1/heartbeat", body(m, "t", { member_token: token }))).status, 200);
    let r = await mf.dispatchFetch(`${ORIGIN}/v1/online?site=demo`, { headers: { origin: ORIGIN } });
    assert.equal(r.status, 401);
    assert.equal(r.headers.get("access-control-allow-origin"), ORIGIN, "the page can read why");
    let e = (await r.json()).error;
    assert.equal(e.code, "read_key_required");
    assert.match(e.message, /READ_KEY_DEMO/);
    assert.match(e.message, /members_public/);
    for (const auth of [`Bearer ${READ_KEY.slice(0, -1)}x`, `Bearer ${READ_KEY}x`, `Basic ${READ_KEY}`]) {
      r = await mf.dispatchFetch(`${ORIGIN}/v1/online?site=demo`, { headers: { authorization: auth } });
      assert.ok([401, 403].includes(r.status), `${auth}: ${r.status}`);
      e = (await r.json()).error;
      assert.ok(!JSON.stringify(e).includes("Grace"), "no name leaks in the error");
    }
    r = await mf.dispatchFetch(`${ORIGIN}/v1/online?site=demo`, { headers: { authorization: `Bearer ${READ_KEY.slice(0, -1)}x` } });
    assert.equal(r.status, 403);
    assert.equal((await r.json()).error.code, "invalid_read_key");
    r = await mf.dispatchFetch(`${ORIGIN}/v1/online?site=demo`, readKey);
    assert.equal(r.status, 200);
    assert.deepEqual((await r.json()).members.map((x) => x.name), ["Grace Hopper"]);
    // A browser may send the key from another allowed origin: the preflight allows the header.
    r = await mf.dispatchFetch(`${ORIGIN}/v1/online?site=demo`, {
      method: "OPTIONS",
      headers: { origin: ORIGIN, "access-control-request-method": "GET", "access-control-request-headers": "authorization" },
    });
    assert.equal(r.status, 204);
    assert.match(r.headers.get("access-control-allow-headers"), /authorization/);
    const c = await count(mf);
    assert.equal(c.members, 1, "the count of members stays public");
    await post(mf, "/v1/leave", body(m, "t"));
  });

  test("/v1/online of a site with members_public: true names its members without a key", async () => {
    const pub = await startWorker({
      vars: { SITES: JSON.stringify({ demo: { origins: [ORIGIN], members_public: true } }), WINDOW_S: "60" },
    });
    try {
      const m = visitor();
      const token = mintToken({ sub: "ada", name: "Ada", exp: nowS() + 600 });
      assert.equal((await post(pub, "/v1/heartbeat", body(m, "t", { member_token: token }))).status, 200);
      const r = await pub.dispatchFetch(`${ORIGIN}/v1/online?site=demo`);
      assert.equal(r.status, 200);
      assert.deepEqual((await r.json()).members.map((x) => x.id), ["ada"]);
    } finally {
      await pub.dispose();
    }
  });

  test("bad tokens: expired, not yet valid, wrong key, alg none, other alg, tampered → 401, nothing recorded", async () => {
    const v = visitor();
    const good = mintToken({ sub: "ada", name: "Ada", exp: nowS() + 600 });
    const [h, , s] = good.split(".");
    const forged = Buffer.from(JSON.stringify({ sub: "root", name: "Root", exp: nowS() + 600 })).toString("base64url");
    const tokens = {
      expired: mintToken({ sub: "ada", name: "Ada", exp: nowS() - 10 }),
      notYetValid: mintToken({ sub: "ada", name: "Ada", exp: nowS() + 600, nbf: nowS() + 300 }),
      wrongKey: mintToken({ sub: "ada", name: "Ada", exp: nowS() + 600, secret: "another-secret-another-secret-000000" }),
      algNone: mintToken({ sub: "ada", name: "Ada", exp: nowS() + 600, alg: "none" }),
      hs512: mintToken({ sub: "ada", name: "Ada", exp: nowS() + 600, alg: "HS512" }),
      tampered: `${h}.${forged}.${s}`,
    };
    const before = await count(mf);
    for (const [name, token] of Object.entries(tokens)) {
      const r = await post(mf, "/v1/heartbeat", body(v, "t", { member_token: token }));
      assert.equal(r.status, 401, name);
      assert.equal((await r.json()).error.code, "invalid_member_token", name);
    }
    assert.deepEqual((await count(mf)).online, before.online, "no token error recorded a visitor");
  });

  test("the badge is an SVG with the count and only digits from it", async () => {
    const v = visitor();
    await post(mf, "/v1/heartbeat", body(v, "t"));
    const r = await mf.dispatchFetch(`${ORIGIN}/v1/badge.svg?site=demo&label=%3Cscript%3Ealert(1)%3C/script%3E`);
    assert.equal(r.status, 200);
    assert.match(r.headers.get("content-type"), /^image\/svg\+xml/);
    assert.match(r.headers.get("cache-control"), /max-age=5/);
    const svg = await r.text();
    const n = (await count(mf)).online;
    assert.ok(svg.includes(`online: ${n}`));
    assert.ok(!svg.includes("script"));
    await post(mf, "/v1/leave", body(v, "t"));
  });

  test("one address can add at most the new-visitor cap; 429 carries Retry-After", async () => {
    const local = await startWorker({ vars: { NEW_VISITORS_PER_IP_PER_MIN: "5" } });
    try {
      const statuses = [];
      for (let i = 0; i < 20; i++) {
        const r = await post(local, "/v1/heartbeat", body(visitor(), "t"), { "cf-connecting-ip": "198.51.100.7" });
        statuses.push(r.status);
        if (r.status === 429) assert.ok(Number(r.headers.get("retry-after")) > 0);
      }
      assert.equal(statuses.filter((s) => s === 200).length, 5);
      assert.equal(statuses.filter((s) => s === 429).length, 15);
      assert.equal((await count(local)).online, 5);
      const other = await post(local, "/v1/heartbeat", body(visitor(), "t"), { "cf-connecting-ip": "198.51.100.8" });
      assert.equal(other.status, 200);
    } finally {
      await local.dispose();
    }
  });
});

describe("KV use", () => {
  test("KV operations, counted at the binding: no write per heartbeat, no read per count", async () => {
    const mf = await startWorker({ faults: true, vars: { WINDOW_S: "60" } });
    try {
      const ids = Array.from({ length: 10 }, () => visitor());
      for (const v of ids) assert.equal((await post(mf, "/v1/heartbeat", body(v, "t"))).status, 200);
      const before = { ...mf.kvOps };
      // 200 steady heartbeats and 200 counts within one second.
      for (let i = 0; i < 200; i++) {
        await post(mf, "/v1/heartbeat", body(ids[i % ids.length], "t"));
        await count(mf);
      }
      const d = Object.fromEntries(Object.keys(before).map((k) => [k, mf.kvOps[k] - before[k]]));
      // Joins publish once (and may coalesce into one more write); steady beats publish nothing.
      assert.ok(d.put <= 2, `puts during 200 steady heartbeats: ${d.put}`);
      // Counts reuse the merged view (refreshed at most once a second, with no read of this
      // isolate's own record): a few lists, not one per request.
      const elapsedS = 1 + 200 * 0.02;
      assert.ok(d.list <= Math.ceil(elapsedS) + 2, `lists for 400 requests: ${d.list}`);
      assert.ok(d.get <= 1, `gets: ${d.get}`);
    } finally {
      await mf.dispose();
    }
  });

  test("steady heartbeats write nothing each; the record is rewritten only on change", async () => {
    // A lone isolate publishes changes within SOLO_DELAY_S (default 180 s; 2 s here).
    const mf = await startWorker({ vars: { WINDOW_S: "60", SOLO_DELAY_S: "2" } });
    try {
      const kv = await mf.getKVNamespace("PRESENCE");
      const v = visitor();
      await post(mf, "/v1/heartbeat", body(v, "t"));
      const meta = async () => (await kv.list({ prefix: "r:demo:" })).keys.map((k) => `${k.name}@${JSON.stringify(k.metadata)}`);
      const first = await until(async () => { const m = await meta(); return m.length === 1 && m; }, 3000);
      assert.ok(first, "one record written after the join");
      for (let i = 0; i < 20; i++) {
        const r = await post(mf, "/v1/heartbeat", body(v, "t"));
        assert.equal(r.status, 200);
      }
      await new Promise((r) => setTimeout(r, 1100));
      await post(mf, "/v1/heartbeat", body(v, "t"));
      assert.deepEqual(await meta(), first, "20 heartbeats later the record is unchanged");
      await post(mf, "/v1/leave", body(v, "t"));
      const rewritten = await until(async () => {
        await count(mf);
        const m = await meta();
        return m[0] !== first[0] && m;
      }, 5000, 200);
      assert.ok(rewritten, "the leave rewrote the record");
    } finally {
      await mf.dispose();
    }
  });

  test("a record whose summary lists many long page paths is stored (metadata within KV's 1,024 bytes)", async () => {
    // KV counts metadata after serialising it: sent as a string it is escaped again and a
    // summary near the budget is refused with 413, so no record is ever written.
    // 150 new visitors from one address in a second: past the default 60 a minute, so raised.
    const mf = await startWorker({ vars: { WINDOW_S: "60", SOLO_DELAY_S: "1", NEW_VISITORS_PER_IP_PER_MIN: "1000" } });
    try {
      const kv = await mf.getKVNamespace("PRESENCE");
      const n = 150;
      for (let i = 0; i < n; i++) {
        const page = `/articles/${String(i).padStart(3, "0")}/a-rather-long-slug-${"x".repeat(40)}`;
        // One address each: new visitors per address are rate-limited.
        const ip = `198.18.${Math.floor(i / 200)}.${(i % 200) + 1}`;
        assert.equal((await post(mf, "/v1/heartbeat", body(visitor(), "t", { page }), { "cf-connecting-ip": ip })).status, 200);
      }
      const stored = await until(async () => {
        const keys = (await kv.list({ prefix: "r:demo:" })).keys;
        return keys.length === 1 && keys[0].metadata?.t === n && keys[0].metadata;
      }, 5000, 200);
      assert.ok(stored, "the record with 150 tabs on 150 pages was written, its summary in the metadata");
      assert.ok(JSON.stringify(stored).length <= 1024, `metadata ${JSON.stringify(stored).length} B`);
      assert.ok(Array.isArray(stored.p) || typeof stored.p === "object", "the summary lists pages");
    } finally {
      await mf.dispose();
    }
  });

  test("presence survives a restart (KV persisted on disk)", async () => {
    const dir = mkdtempSync(join(tmpdir(), "herenow-kv-"));
    try {
      let mf = await startWorker({ persist: dir });
      const v = visitor();
      await post(mf, "/v1/heartbeat", body(v, "t"));
      const kv = await mf.getKVNamespace("PRESENCE");
      assert.ok(await until(async () => (await kv.list({ prefix: "r:demo:" })).keys.length === 1, 3000));
      await mf.dispose();
      mf = await startWorker({ persist: dir });
      try {
        const c = await count(mf);
        assert.equal(c.online, 1, "the new isolate sees the old isolate's visitor");
      } finally {
        await mf.dispose();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("oversized bodies", () => {
  test("a chunked body with no length is cut off and answered 413, recording nothing", async () => {
    const mf = await startWorker();
    try {
      const big = new ReadableStream({
        start(c) {
          for (let i = 0; i < 64; i++) c.enqueue(new TextEncoder().encode("x".repeat(1024)));
          c.close();
        },
      });
      const r = await mf.dispatchFetch(`${ORIGIN}/v1/heartbeat`, {
        method: "POST",
        headers: { "content-type": "text/plain", origin: ORIGIN },
        body: big,
        duplex: "half",
      });
      assert.equal(r.status, 413);
      assert.equal((await r.json()).error.code, "body_too_large");
      assert.equal((await count(mf)).online, 0);
    } finally {
      await mf.dispose();
    }
  });
});

// Slow bodies: workerd waits for a request body as long as the connection stays open, so
// the edge races its body read against BODY_TIMEOUT_S (default 10 s) and answers 408
// `slow_body`, recording nothing. A body that arrives in pieces but in time is fine, and
// stalled connections hold up no other request. Raw sockets against the worker listening
// on 127.0.0.1, so that the body really trickles in.
describe("slow bodies", () => {
  const TIMEOUT_MS = 1000;
  let mf, port;
  before(async () => {
    port = await freePort();
    mf = await startWorker({ port, vars: { BODY_TIMEOUT_S: String(TIMEOUT_MS / 1000) } });
  });
  after(async () => { await mf?.dispose(); });

  /**
   * POSTs /v1/heartbeat over a raw socket: the head at once, then `pieces` of the body
   * `pauseMs` apart (with `Content-Length`, or as chunks), then nothing more (a stall when
   * the pieces do not make the whole body). Resolves with the status, the JSON body and
   * the milliseconds from the head to the answer, and the visitor id used; the socket is
   * destroyed after `limitMs`.
   */
  function trickle({ chunked = false, pieces, pauseMs, limitMs = 10_000, ip, to = port }) {
    const id = visitor();
    const payload = body(id, "slow");
    const size = Math.ceil(payload.length / pieces.total);
    const parts = [];
    for (let i = 0; i < pieces.sent; i++) parts.push(payload.slice(i * size, (i + 1) * size));
    const head = [
      "POST /v1/heartbeat HTTP/1.1", `Host: 127.0.0.1:${to}`, `Origin: ${ORIGIN}`,
      "Content-Type: text/plain;charset=UTF-8", "Connection: close",
      chunked ? "Transfer-Encoding: chunked" : `Content-Length: ${Buffer.byteLength(payload)}`,
      ...(ip ? [`CF-Connecting-IP: ${ip}`] : []),
    ].join("\r\n") + "\r\n\r\n";
    return new Promise((resolve, reject) => {
      const socket = connect(to, "127.0.0.1");
      let raw = "";
      let sent = 0;
      let answeredAt = null;
      let timer = null;
      const start = Date.now();
      const limit = setTimeout(() => socket.destroy(new Error(`no answer in ${limitMs} ms`)), limitMs);
      const stop = () => { clearTimeout(limit); clearInterval(timer); };
      socket.on("connect", () => {
        socket.write(head);
        timer = setInterval(() => {
          if (answeredAt !== null || sent >= parts.length) { clearInterval(timer); return; }
          const part = parts[sent++];
          socket.write(chunked ? `${Buffer.byteLength(part).toString(16)}\r\n${part}\r\n` : part);
          if (chunked && sent === pieces.total) socket.write("0\r\n\r\n");
        }, pauseMs);
      });
      // The answer is complete once its declared length or its last chunk is in (the
      // connection may stay open while the worker's waitUntil work runs).
      const parse = () => {
        const split = raw.indexOf("\r\n\r\n");
        if (split < 0) return null;
        const headText = raw.slice(0, split);
        let text = raw.slice(split + 4);
        if (/\r\ntransfer-encoding: chunked/i.test(headText)) {
          let out = "";
          for (let at = 0; ;) {
            const eol = text.indexOf("\r\n", at);
            if (eol < 0) return null;
            const n = parseInt(text.slice(at, eol), 16);
            if (n === 0) break;
            if (!(n > 0) || text.length < eol + 2 + n + 2) return null;
            out += text.slice(eol + 2, eol + 2 + n);
            at = eol + 2 + n + 2;
          }
          text = out;
        } else {
          const n = Number(headText.match(/\r\ncontent-length: (\d+)/i)?.[1] ?? NaN);
          if (!(Buffer.byteLength(text) >= n)) return null;
        }
        let json = null;
        try { json = JSON.parse(text); } catch { /* not JSON */ }
        const status = Number(headText.match(/^HTTP\/1\.1 (\d{3})/)?.[1]);
        return { status, json, headers: headText, ms: answeredAt - start, visitor: id };
      };
      socket.on("data", (d) => {
        answeredAt ??= Date.now();
        raw += d;
        const answer = parse();
        if (answer) { stop(); socket.destroy(); resolve(answer); }
      });
      socket.on("error", (e) => { stop(); reject(e); });
      socket.on("close", () => { stop(); reject(new Error(`closed without a whole answer: ${JSON.stringify(raw)}`)); });
    });
  }

  for (const chunked of [false, true]) {
    const how = chunked ? "chunked" : "with Content-Length";
    test(`a body that trickles in ${how} and stalls is answered 408 slow_body after the timeout`, async () => {
      // Three of eight pieces, 200 ms apart, then silence.
      const r = await trickle({ chunked, pieces: { total: 8, sent: 3 }, pauseMs: 200 });
      assert.equal(r.status, 408, r.headers);
      assert.equal(r.json?.error?.code, "slow_body");
      assert.ok(r.ms >= TIMEOUT_MS - 50 && r.ms <= TIMEOUT_MS + 1500, `answered after ${r.ms} ms`);
      assert.match(r.headers, /access-control-allow-origin: http:\/\/127\.0\.0\.1:8787/i, "CORS headers, so a browser can read it");
      assert.equal((await count(mf)).online, 0, "nothing recorded");
    });

    test(`a body that arrives ${how} in pieces but within the timeout is accepted`, async () => {
      const r = await trickle({ chunked, pieces: { total: 4, sent: 4 }, pauseMs: 100 });
      assert.equal(r.status, 200, r.headers);
      assert.equal(r.json?.online, 1);
      assert.ok(r.ms < TIMEOUT_MS, `answered after ${r.ms} ms`);
      assert.equal((await post(mf, "/v1/leave", body(r.visitor, "slow"))).status, 204);
      assert.ok(await until(async () => (await count(mf)).online === 0, 2000), "left");
    });
  }

  test("a head with no body at all is 408 too, and stalled connections hold up no other request", async () => {
    const stalled = Array.from({ length: 20 }, (_, i) =>
      trickle({ chunked: i % 2 === 1, pieces: { total: 4, sent: 0 }, pauseMs: 50 }));
    // While twenty connections stall, a normal heartbeat over the same listener is prompt.
    const t0 = Date.now();
    const v = visitor();
    const r = await fetch(`${mf.url.origin}/v1/heartbeat`, {
      method: "POST", headers: { origin: ORIGIN, "content-type": "text/plain" }, body: body(v, "t"),
    });
    const took = Date.now() - t0;
    assert.equal(r.status, 200);
    assert.ok(took < TIMEOUT_MS / 2, `a normal heartbeat answered in ${took} ms`);
    const answers = await Promise.all(stalled);
    for (const a of answers) {
      assert.equal(a.status, 408, a.headers);
      assert.equal(a.json?.error?.code, "slow_body");
      assert.ok(a.ms <= TIMEOUT_MS + 1500, `answered after ${a.ms} ms`);
    }
    await post(mf, "/v1/leave", body(v, "t"));
    assert.ok(await until(async () => (await count(mf)).online === 0, 2000), "only the normal heartbeat was recorded");
  });

  test("stalled bodies count against their address's request limit: past it, 429 at once, before any body", async () => {
    const to = await freePort();
    const limited = await startWorker({ port: to, vars: { BODY_TIMEOUT_S: String(TIMEOUT_MS / 1000), RATE_IP_PER_MIN: "3" } });
    try {
      const ip = "203.0.113.9";
      const stalled = await Promise.all([0, 1, 2].map(() => trickle({ pieces: { total: 4, sent: 0 }, pauseMs: 50, ip, to })));
      for (const a of stalled) assert.equal(a.status, 408, a.headers);
      const refused = await trickle({ pieces: { total: 4, sent: 0 }, pauseMs: 50, ip, to });
      assert.equal(refused.status, 429, refused.headers);
      assert.equal(refused.json?.error?.code, "rate_limited");
      assert.match(refused.headers, /\r\nretry-after: \d+/i);
      assert.ok(refused.ms < TIMEOUT_MS / 2, `refused after ${refused.ms} ms, without waiting for a body`);
      const other = await trickle({ pieces: { total: 2, sent: 2 }, pauseMs: 10, ip: "203.0.113.10", to });
      assert.equal(other.status, 200, `another address is not limited: ${other.headers}`);
    } finally {
      await limited.dispose();
    }
  });
});

describe("privacy", () => {
  test("KV holds no IP address or user agent", async () => {
    const mf = await startWorker({ vars: { WINDOW_S: "60", SOLO_DELAY_S: "1" } });
    try {
      const ip = "203.0.113.77", ua = "Mozilla/5.0 (X11; herenow-privacy-probe)";
      const v = visitor();
      const token = mintToken({ sub: "grace", name: "Grace", exp: Math.floor(Date.now() / 1000) + 600 });
      await post(mf, "/v1/heartbeat", body(v, "t", { member_token: token }), { "cf-connecting-ip": ip, "user-agent": ua });
      await post(mf, "/v1/heartbeat", body(visitor(), "u"), { "cf-connecting-ip": ip, "user-agent": ua });
      await post(mf, "/v1/leave", body(v, "t"), { "cf-connecting-ip": ip, "user-agent": ua });
      const kv = await mf.getKVNamespace("PRESENCE");
      const all = await until(async () => {
        await count(mf);
        const keys = (await kv.list()).keys;
        return keys.some((k) => k.name.startsWith("m:")) && keys;
      }, 3000);
      assert.ok(all && all.length >= 2, "records and a last-seen value were written");
      for (const k of all) {
        const value = (await kv.get(k.name)) ?? "";
        const blob = `${k.name} ${JSON.stringify(k.metadata ?? null)} ${value}`;
        assert.ok(!blob.includes(ip) && !blob.includes("203.0.113"), `no IP in ${k.name}`);
        assert.ok(!blob.includes("Mozilla") && !blob.includes("privacy-probe"), `no user agent in ${k.name}`);
      }
    } finally {
      await mf.dispose();
    }
  });
});
