//! Shared helpers for the browser tests: a fake API installed over `window.fetch` and
//! `navigator.sendBeacon`, a stubbed `document.visibilityState`, counters for warnings and
//! for anything thrown into the page, and small async utilities.

#![allow(dead_code)]

use gloo_timers::future::TimeoutFuture;
use herenow_client::Handle;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;

/// The fake API. `__hn.queue` holds scripted responses, taken in order (the first whose
/// optional `match` is part of the URL), then `__hn.fallback`: `{status, body, headers}`,
/// `{networkError: true}` or `{hang: true}` (a fetch that only ends when aborted). Every
/// fetch and beacon is recorded with its time.
const STUB: &str = r#"
const hn = globalThis.__hn = globalThis.__hn || {};
Object.assign(hn, {
  calls: [], beacons: [], warnings: [], thrown: [], aborted: 0, queue: [], vis: "visible",
  listenerTypes: [],
  fallback: { status: 200, body: {
    online: 3, tabs: 4, members: 1, guests: 2, idle: 1, page: 2,
    pages: [{ page: "/", online: 2 }], window_s: 60, as_of: 1, next_heartbeat_ms: 60000 } },
});
if (!hn.installed) {
  hn.installed = true;
  globalThis.fetch = (url, init) => {
    init = init || {};
    const call = { url: String(url), method: init.method || "GET", t: performance.now(),
      body: typeof init.body === "string" ? JSON.parse(init.body) : null };
    hn.calls.push(call);
    const i = hn.queue.findIndex((r) => !r.match || call.url.includes(r.match));
    const r = i >= 0 ? hn.queue.splice(i, 1)[0] : hn.fallback;
    if (r.networkError) return Promise.reject(new TypeError("Failed to fetch"));
    if (r.hang) return new Promise((_, reject) => {
      if (init.signal) init.signal.addEventListener("abort", () => {
        hn.aborted++;
        reject(new DOMException("aborted", "AbortError"));
      });
    });
    return Promise.resolve(new Response(JSON.stringify(r.body), {
      status: r.status, headers: Object.assign({ "content-type": "application/json" }, r.headers) }));
  };
  Object.defineProperty(navigator, "sendBeacon", { configurable: true, writable: true,
    value: (url, body) => {
      hn.beacons.push({ url: String(url), body: JSON.parse(body), t: performance.now(),
        type: typeof body });
      return true;
    } });
  Object.defineProperty(document, "visibilityState", { configurable: true,
    get: () => hn.vis });
  console.warn = (...args) => { hn.warnings.push(args.join(" ")); };
  addEventListener("error", (e) => hn.thrown.push(String(e.message)));
  addEventListener("unhandledrejection", (e) => hn.thrown.push(String(e.reason)));
  for (const target of [window, document]) {
    const add = target.addEventListener;
    target.addEventListener = function (type, ...rest) {
      hn.listenerTypes.push(type);
      return add.call(this, type, ...rest);
    };
  }
}
"#;

/// Runs a JavaScript function body and returns its result.
pub fn js(body: &str) -> JsValue {
    js_sys::Function::new_no_args(body)
        .call0(&JsValue::UNDEFINED)
        .expect("test JavaScript threw")
}

/// A number from JavaScript.
pub fn num(body: &str) -> f64 {
    js(body).as_f64().expect("not a number")
}

/// A string from JavaScript.
pub fn string(body: &str) -> String {
    js(body).as_string().expect("not a string")
}

/// Installs the fake API (once per page) and resets its records and scripts.
pub fn install() {
    js(STUB);
}

/// Waits `ms` milliseconds.
pub async fn sleep(ms: u32) {
    TimeoutFuture::new(ms).await;
}

/// Waits until the JavaScript expression is truthy, polling every 5 ms; false on timeout.
pub async fn wait_for(expr: &str, timeout_ms: u32) -> bool {
    let body = format!("return !!({expr})");
    let mut waited = 0;
    loop {
        if js(&body).is_truthy() {
            return true;
        }
        if waited >= timeout_ms {
            return false;
        }
        sleep(5).await;
        waited += 5;
    }
}

/// Starts a client with the options object the JavaScript expression makes.
pub fn start(options: &str) -> Handle {
    let options = js(&format!("return ({options})"));
    herenow_client::start_client(&options).expect("start failed")
}

/// Calls the exported `start` (which returns a promise) and returns its rejection message.
pub async fn start_error(options: &str) -> String {
    let options = js(&format!("return ({options})"));
    let promise: js_sys::Promise = herenow_client::start(&options);
    let err = JsFuture::from(promise)
        .await
        .expect_err("start should have rejected");
    assert!(err.is_instance_of::<js_sys::Error>(), "not an Error");
    String::from(err.unchecked_into::<js_sys::Error>().message())
}

/// Awaits a promise returned by the client.
pub async fn resolve(promise: js_sys::Promise) -> Result<JsValue, JsValue> {
    JsFuture::from(promise).await
}

/// Sets the stubbed `document.visibilityState` and dispatches `visibilitychange`.
pub fn set_visibility(state: &str) {
    js(&format!(
        "__hn.vis = {state:?}; document.dispatchEvent(new Event('visibilitychange'))"
    ));
}

/// Dispatches `pagehide` or `pageshow` (a `PageTransitionEvent`) on `window`.
pub fn page_transition(kind: &str, persisted: bool) {
    js(&format!(
        "window.dispatchEvent(new PageTransitionEvent({kind:?}, {{ persisted: {persisted} }}))"
    ));
}

/// Dispatches a plain event (`freeze`, `resume`) on `document`.
pub fn document_event(kind: &str) {
    js(&format!("document.dispatchEvent(new Event({kind:?}))"));
}

/// Heartbeats fetched so far.
pub fn heartbeats() -> usize {
    num("return __hn.calls.filter(c => c.url.endsWith('/v1/heartbeat')).length") as usize
}

/// Beacons sent so far.
pub fn beacons() -> usize {
    num("return __hn.beacons.length") as usize
}

/// Asserts that nothing was thrown into the page.
pub fn assert_nothing_thrown() {
    assert_eq!(
        num("return __hn.thrown.length"),
        0.0,
        "thrown into the page: {}",
        string("return JSON.stringify(__hn.thrown)")
    );
}

/// Clears the `herenow_vid` cookie.
pub fn clear_cookie() {
    js("document.cookie = 'herenow_vid=; Path=/; Max-Age=0'");
}

/// The `herenow_vid` cookie's values (all of them, in `document.cookie` order).
pub fn cookie_values() -> Vec<String> {
    string("return document.cookie")
        .split(';')
        .filter_map(|p| p.trim().strip_prefix("herenow_vid="))
        .map(str::to_owned)
        .collect()
}
