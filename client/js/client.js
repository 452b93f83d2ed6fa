// herenow's browser client: `start(options)` counts this page.
//
// The decisions are the Rust lifecycle machine's (client/src/machine/, tested natively),
// compiled to a wasm with no imports that exports four functions over numbers
// (client/src/exports.rs has the contract and the codes used below). This file is only the
// wiring: page events, the timer and fetch outcomes go in; heartbeats, beacons, the timer,
// aborts, warnings and detaching come out. It never registers `unload`/`beforeunload`
// (they keep a page out of the back/forward cache) and never throws into the page.
//
// Why in JavaScript and not in Rust through wasm-bindgen: the same wiring cost ~16 KB gzip
// as Rust glue and ~2.5 KB here (bench/README.md › Client).
//
// The wasm is inlined (./herenow_wasm.js, base64, written by scripts/build-client.sh): one
// file for the script tag (no second request, no CSP connect-src for it) and a plain module
// that every bundler takes as it is (esbuild copies no `.wasm` asset).
import WASM from "./herenow_wasm.js";

// Event kinds (exports.rs › decode_event).
const START = 0, VISIBILITY = 1, PAGEHIDE = 2, PAGESHOW = 3, FREEZE = 4, RESUME = 5,
  TIMER = 6, BEAT_OK = 7, BEAT_FAILED = 8, NAVIGATE = 9, STOP = 10;
// Action codes (exports.rs › encode_action): action = code + 16 · value.
const HEARTBEAT = 0, BEACON_IDLE = 1, BEACON_LEAVE = 2, SCHEDULE = 3, CANCEL_TIMER = 4,
  ABORT_FETCH = 5, WARN = 6, DETACH = 7;

/** The cookie that keeps the visitor id, and its default Max-Age (30 minutes, renewed by
 * each heartbeat: counting needs the id only while the visitor's tabs are open). */
const COOKIE = "herenow_vid";
const COOKIE_MAX_AGE_S = 1800;
/** The count fields an element can show as a plain number, as in data-herenow="online". */
const FIELDS = ["online", "tabs", "members", "guests", "idle", "page"];
/** The visitor id: a lowercase hyphenated uuid v4, RFC 4122 variant. The server's rule is
 * herenow_core::protocol::is_visitor_id; tests/client.test.mjs holds the two equal. */
const VISITOR_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
const TAB_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

const fail = (message) => new Error("herenow: " + message);
const num = (x) => (typeof x == "number" ? x : NaN);
const absent = (x) => x == null;
const noop = () => {};

let wasm;
/** The machine's exports, compiled once; after a failure (a CSP without 'wasm-unsafe-eval')
 * a later start() tries again. */
const machine = () =>
  (wasm ||= WebAssembly.instantiate(Uint8Array.from(atob(WASM), (c) => c.charCodeAt(0)), {})
    .then((r) => r.instance.exports, (e) => { wasm = 0; throw e; }));

/** `n` random bytes from crypto.getRandomValues. */
const random = (n) => {
  if (!self.crypto?.getRandomValues) throw fail("crypto.getRandomValues is unavailable");
  return crypto.getRandomValues(new Uint8Array(n));
};

/** A fresh visitor id (uuid v4) from 16 random bytes. */
const visitorIdFrom = (b) => {
  b[6] = (b[6] & 15) | 64;
  b[8] = (b[8] & 63) | 128;
  let s = "";
  b.forEach((x, i) => { s += (i == 4 || i == 6 || i == 8 || i == 10 ? "-" : "") + (x | 256).toString(16).slice(1); });
  return s;
};

/** Whether `s` is a visitor id. */
const isVisitorId = (s) => VISITOR_ID.test(s);

/** The first valid visitor id among the herenow_vid entries of a document.cookie string;
 * malformed or foreign values are skipped. */
const findVisitorId = (cookies) => {
  for (const pair of cookies.split(";")) {
    const p = pair.trim();
    if (p.startsWith(COOKIE + "=")) {
      const v = p.slice(COOKIE.length + 1).trim();
      if (isVisitorId(v)) return v;
    }
  }
};

/** The `Retry-After` header's delay-seconds, else NaN (the HTTP-date form: the API sends
 * seconds). Whether to honour it (429 and 503 only) is the machine's rule. */
const retryAfterSeconds = (h) => (/^\d+$/.test((h = (h || "").trim())) ? +h : NaN);

/** Checks an endpoint: "" (same origin), a path from the root (or a protocol-relative
 * //host), or an http(s):// URL, with no spaces or control characters; returns it without
 * trailing slashes. */
const normalizeEndpoint = (e) => {
  if (!/^(\/|https?:\/\/|$)/.test(e) || /[\0- \x7f]/.test(e))
    throw fail('options.endpoint must be "" (same origin) or an http(s) URL');
  return e.replace(/\/+$/, "");
};

/** `options[key]` when present, checked by `ok`; absent gives `fallback`. */
const option = (o, key, ok, message, fallback) => {
  const v = o[key];
  if (absent(v)) return fallback;
  if (!ok(v)) throw fail(message);
  return v;
};

/** Reads and checks the options object; throws an Error naming the first bad field. */
const readOptions = (o) => {
  if (!o || typeof o != "object") throw fail("start(options) needs an object like { endpoint, site }");
  if (typeof o.endpoint != "string") throw fail('options.endpoint is required (a URL, or "" for the same origin)');
  // The rule of herenow_core::protocol::validate_site.
  if (typeof o.site != "string" || !/^[A-Za-z0-9_-]{1,64}$/.test(o.site)) throw fail("options.site is required: 1-64 characters of A-Z a-z 0-9 _ -");
  const bool = (v) => typeof v == "boolean";
  const fn = (v) => typeof v == "function";
  const token = option(o, "memberToken", (v) => fn(v) || typeof v == "string", "options.memberToken must be a string or a function");
  const maxAge = option(o, "cookieMaxAge", (v) => v >= 0 && v <= 4294967295 && typeof v == "number",
    "options.cookieMaxAge must be a number of seconds", COOKIE_MAX_AGE_S);
  return {
    endpoint: normalizeEndpoint(o.endpoint),
    site: o.site,
    // The server normalises the path; only its shape is checked here.
    page: option(o, "page", (v) => typeof v == "string" && v[0] == "/", "options.page must be a path starting with /"),
    token: token || undefined,
    cookie: option(o, "cookie", bool, "options.cookie must be true or false"),
    maxAge: Math.floor(maxAge),
    onCount: option(o, "onCount", fn, "options.onCount must be a function"),
    track: option(o, "track", bool, "options.track must be true or false", true),
  };
};

/** Whether the page is visible (visible when the browser does not say). */
const visible = () => { const v = document.visibilityState; return typeof v == "string" ? v == "visible" : true; };
/** The page path of `location`, or "/". */
const locationPath = () => { const p = location.pathname; return typeof p == "string" && p[0] == "/" ? p : "/"; };
/** Whether the visitor id lives in a cookie: `cookie: true/false`, else unless the browser
 * sends Global Privacy Control. */
const usesCookie = (mode) => (absent(mode) ? navigator.globalPrivacyControl !== true : mode);
/** Stores the visitor id for `maxAge` more seconds (also how a heartbeat renews it); a
 * sandboxed document throws here, and the id then lives in memory. */
const storeCookie = (id, maxAge) => {
  try {
    document.cookie = `${COOKIE}=${id}; Path=/; Max-Age=${maxAge}; SameSite=Lax` + (location.protocol == "https:" ? "; Secure" : "");
  } catch {}
};
const readCookies = () => { try { return String(document.cookie || ""); } catch { return ""; } };

let wrapped;
/** Without the Navigation API, pushState/replaceState fire no event: the first following
 * client wraps them to say `herenow:navigate` (followed with popstate). */
const wrapHistory = () => {
  if (wrapped) return;
  wrapped = 1;
  for (const m of ["pushState", "replaceState"]) {
    const f = history[m];
    history[m] = function () {
      const r = f.apply(this, arguments);
      dispatchEvent(new Event("herenow:navigate"));
      return r;
    };
  }
};

/** Fetches `url` and calls `done` once with `{ count }` (a 2xx with a JSON object) or
 * `{ status, retry, error }` (status 0: no answer read). */
const request = (url, init, done) =>
  fetch(url, init)
    .then(
      (r) => r.json().catch(noop).then((body) => {
        if (r.ok && body && typeof body == "object") return done({ count: body });
        const detail = body?.error?.message; // the API's errors are {"error":{"code","message"}}
        done({ status: r.status, retry: retryAfterSeconds(r.headers.get("retry-after")),
          error: `the server answered: HTTP ${r.status}` + (typeof detail == "string" ? " " + detail : "") });
      }),
      (e) => {
        const m = typeof e?.message == "string" ? e.message : typeof e == "string" ? e : "";
        done({ status: 0, error: "request failed" + (m ? ": " + m : "") });
      })
    .catch(noop);

/** Writes `count` into `[data-herenow]` elements, dispatches `herenow:count` on document
 * and calls onCount (a throwing one is ignored). Fields the count lacks leave their
 * elements alone; `record` and `record-at` show the best count and its day. */
const publish = (count, onCount) => {
  const show = (field, text) => {
    for (const el of document.querySelectorAll(`[data-herenow="${field}"]`)) el.textContent = text;
  };
  for (const f of FIELDS) {
    const n = count[f];
    if (Number.isInteger(n) && n >= 0 && n < 9e15) show(f, String(n));
  }
  const record = count.record;
  if (record && Number.isFinite(record.online)) show("record", record.online.toLocaleString());
  if (record && Number.isFinite(record.at)) show("record-at", new Date(record.at).toLocaleDateString());
  document.dispatchEvent(new CustomEvent("herenow:count", { detail: count }));
  try { onCount?.(count); } catch {}
};

/** Starts counting this page: `start({ endpoint, site, page?, memberToken?, cookie?,
 * cookieMaxAge?, onCount?, track? })` resolves to a handle `{ count(), setPage(path),
 * stop() }`; it rejects with an Error naming the missing or invalid option, a missing
 * browser feature, or a wasm that could not be compiled. Never throws. */
export const start = (options) =>
  new Promise((resolve) => resolve(readOptions(options))).then((o) => machine().then((w) => run(o, w)));

/** One running client over machine exports `w`. */
const run = (o, w) => {
  if (typeof window != "object") throw fail("needs a browser window");
  if (typeof document != "object") throw fail("needs a document");
  const { endpoint, site, token: memberToken, onCount, track } = o;
  // Watch-only: no visitor id and no cookie.
  const cookie = track && usesCookie(o.cookie);
  let visitor = "";
  if (track) {
    visitor = (cookie && findVisitorId(readCookies())) || visitorIdFrom(random(16));
    if (cookie) storeCookie(visitor, o.maxAge);
  }
  let tab = "";
  for (const b of random(16)) tab += TAB_ALPHABET[b & 63];
  const id = w.hn_new();
  let follow = !o.page;
  let page = o.page || locationPath();
  let timer, abort, last, lastError, refused, warnedRefusal;
  // The member token last resolved, for beacons (which cannot wait for a promise).
  let lastToken;
  const listeners = [];

  const url = (path) => endpoint + path;
  const countUrl = () => url(`/v1/count?site=${encodeURIComponent(site)}&page=${encodeURIComponent(page)}`);
  const current = (seq) => w.hn_in_flight(id) === seq;

  /** Feeds one event to the machine and carries out its actions, in order. */
  const feed = (kind, a = NaN, b = NaN, c = NaN) => {
    const n = w.hn_event(id, kind, a, b, c, Date.now(), Math.random());
    // Read them all first: acting may feed the machine again.
    const actions = [];
    for (let i = 0; i < n; i++) actions.push(w.hn_action(i));
    for (const x of actions) act(x % 16, Math.floor(x / 16));
  };

  const act = (code, value) => {
    if (code == HEARTBEAT) track ? heartbeat(value, 0) : watch(value);
    else if (code == BEACON_IDLE) track && beacon("/v1/heartbeat");
    else if (code == BEACON_LEAVE) track && beacon("/v1/leave");
    else if (code == SCHEDULE) { clearTimeout(timer); timer = setTimeout(() => feed(TIMER), value); }
    else if (code == CANCEL_TIMER) clearTimeout(timer);
    else if (code == ABORT_FETCH) { abort?.abort(); abort = undefined; }
    else if (code == WARN) {
      console.warn("herenow: heartbeat failed, retrying with backoff" + (lastError ? ` (${lastError})` : ""));
      lastError = 0;
    } else if (code == DETACH) for (const [t, k, f] of listeners.splice(0)) t.removeEventListener(k, f);
  };

  /** The JSON body of a heartbeat, idle or leave for the current page. */
  const body = (state, token) =>
    JSON.stringify({ site, visitor, tab, page, state, ...(token ? { member_token: token } : {}) });

  /** Idle and leave go by sendBeacon (text/plain: no preflight), with the last token. */
  const beacon = (path) => {
    const token = typeof memberToken == "string" ? (memberToken !== refused ? memberToken : 0) : lastToken;
    try { navigator.sendBeacon(url(path), body("idle", token)); } catch {}
  };

  /** Watch-only's heartbeat `seq`: a count of the current page, fed back as its outcome. */
  const watch = (seq) => request(countUrl(), { cache: "no-store" }, (r) => finish(seq, r));

  /** Sends heartbeat `seq`: resolves the member token (a provider may return a promise; one
   * that throws or rejects gives none), POSTs, then finishes. `tries` counts the tokens
   * refused for this heartbeat: a refused token is never sent again, a provider is asked
   * again once, and after a second refusal the heartbeat goes as a guest's. */
  const heartbeat = (seq, tries) => {
    abort?.abort();
    const ctl = (abort = self.AbortController ? new AbortController() : undefined);
    new Promise((r) => r(tries < 2 && (typeof memberToken == "function" ? memberToken() : memberToken)))
      .catch(noop)
      .then((token) => {
        token = typeof token == "string" && token && token !== refused ? token : undefined;
        lastToken = token;
        if (!current(seq)) return;
        request(url("/v1/heartbeat"), { method: "POST", body: body("active", token), cache: "no-store", signal: ctl?.signal },
          (r) => finish(seq, r, token, tries));
      });
  };

  /** The outcome of heartbeat `seq`, sent with member `token` on try `tries`. */
  const finish = (seq, r, token, tries) => {
    if (!current(seq)) return;
    abort = undefined;
    if (r.count) {
      if (cookie) storeCookie(visitor, o.maxAge);
      last = r.count;
      feed(BEAT_OK, seq, num(last.next_heartbeat_ms), num(last.window_s));
      publish(last, onCount);
    } else if (r.status == 401 && token) {
      // A refused member token (expired, wrong key): counted as a guest, not dropped.
      if (!warnedRefusal) console.warn("herenow: member token refused (HTTP 401), counting this visitor as a guest");
      warnedRefusal = refused = token;
      heartbeat(seq, tries + 1);
    } else {
      lastError = r.error;
      feed(BEAT_FAILED, seq, r.status, r.retry);
    }
  };

  /** Counts this tab on `path`: a heartbeat at once when it changed. */
  const moveTo = (path) => { if (page !== path) { page = path; feed(NAVIGATE); } };

  const on = (target, kind, f) => { target.addEventListener(kind, f); listeners.push([target, kind, f]); };
  on(document, "visibilitychange", () => feed(VISIBILITY, +visible()));
  on(window, "pagehide", (e) => feed(PAGEHIDE, +!!e.persisted));
  on(window, "pageshow", (e) => feed(PAGESHOW, +!!e.persisted, +visible()));
  on(document, "freeze", () => feed(FREEZE));
  on(document, "resume", () => feed(RESUME, +visible()));
  if (follow) {
    const followLocation = () => follow && moveTo(locationPath());
    const nav = self.navigation;
    if (nav && typeof nav == "object") on(nav, "currententrychange", followLocation);
    else {
      wrapHistory();
      on(window, "popstate", followLocation);
      on(window, "herenow:navigate", followLocation);
    }
  }
  feed(START, +visible());

  return {
    /** The last count object received, or a fresh one from GET /v1/count. */
    count: () =>
      last ? Promise.resolve(last)
        : new Promise((ok, no) => request(countUrl(), { cache: "no-store" }, (r) => (r.count ? ok(r.count) : no(fail(r.error))))),
    /** Counts this tab on `path` from now on (a heartbeat at once), for routers that say
     * where they are; stops following location. A path not starting with / is ignored. */
    setPage: (path) => { if (typeof path == "string" && path[0] == "/") { follow = false; moveTo(path); } },
    /** Stops for good: a leave, the listeners removed, the timer and any fetch cancelled. */
    stop: () => feed(STOP),
  };
};
