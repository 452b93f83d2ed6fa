//! Talking to the API: heartbeats and counts with `fetch`, idle and leave with
//! `navigator.sendBeacon`. Bodies are plain strings, so the browser sends them as
//! `text/plain;charset=UTF-8` and a cross-origin request needs no preflight.
//!
//! Requests are promise chains over `Promise.allSettled`, whose callbacks always run
//! exactly once (so no callback leaks); no Rust async runtime is shipped.

use herenow_core::protocol::TabState;
use js_sys::{Array, JSON, Object, Reflect};
use wasm_bindgen::closure::Closure;
use wasm_bindgen::prelude::wasm_bindgen;
use wasm_bindgen::{JsCast, JsValue};
use web_sys::{AbortSignal, Response};

use crate::error::Error;
use crate::machine::backoff::{honours_retry_after, parse_retry_after};
use crate::web::{global, prop};

#[wasm_bindgen]
extern "C" {
    /// A JavaScript promise, as far as this crate uses one.
    #[wasm_bindgen(js_name = Promise)]
    #[derive(Debug, Clone)]
    pub(crate) type JsPromise;

    #[wasm_bindgen(static_method_of = JsPromise, js_class = Promise, js_name = allSettled)]
    fn all_settled(items: &Array) -> JsPromise;

    /// `Promise.reject(reason)`.
    #[wasm_bindgen(static_method_of = JsPromise, js_class = Promise, js_name = reject)]
    pub(crate) fn rejected(reason: &JsValue) -> JsPromise;

    /// `Promise.resolve(value)`.
    #[wasm_bindgen(static_method_of = JsPromise, js_class = Promise, js_name = resolve)]
    pub(crate) fn resolved(value: &JsValue) -> JsPromise;

    #[wasm_bindgen(method)]
    fn then(this: &JsPromise, on_fulfilled: &JsValue) -> JsPromise;

    /// The global `fetch` (looked up at each call, so tests can stub it).
    #[wasm_bindgen(catch, js_name = fetch)]
    fn fetch_with(url: &str, init: &Object) -> Result<JsValue, JsValue>;
}

/// What a settled promise gave: its value, or the reason it was rejected.
pub(crate) type Settled = Result<JsValue, JsValue>;

/// A callback for [`settle`]; its return value becomes the value of the returned promise
/// (a promise returned here is followed).
pub(crate) type OnSettled = Box<dyn FnOnce(Settled) -> JsValue>;

/// Calls `f` once `value` (a promise or a plain value) settles, whichever way it goes.
/// Returns the promise of `f`'s result.
pub(crate) fn settle(value: &JsValue, f: OnSettled) -> JsPromise {
    let callback = Closure::once_into_js(move |results: JsValue| -> JsValue {
        let first = Reflect::get_u32(&results, 0).unwrap_or(JsValue::UNDEFINED);
        let settled = if prop(&first, "status").as_string().as_deref() == Some("fulfilled") {
            Ok(prop(&first, "value"))
        } else {
            Err(prop(&first, "reason"))
        };
        f(settled)
    });
    JsPromise::all_settled(&Array::of1(value)).then(&callback)
}

/// A promise rejected with `error` as a JS `Error`.
#[must_use]
pub(crate) fn reject(error: Error) -> JsPromise {
    JsPromise::rejected(&error.into())
}

/// The JSON body of a heartbeat, idle or leave beacon (the server parses it as
/// `herenow_core::protocol::Beat`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct BeatBody<'a> {
    /// The site name.
    pub site: &'a str,
    /// The visitor id.
    pub visitor: &'a str,
    /// The tab id.
    pub tab: &'a str,
    /// The page path.
    pub page: &'a str,
    /// The tab's state.
    pub state: TabState,
    /// The member token, if any.
    pub member_token: Option<&'a str>,
}

fn set(obj: &Object, key: &str, value: &JsValue) {
    // Setting a data property on a plain object cannot fail.
    let _ = Reflect::set(obj, &JsValue::from_str(key), value);
}

impl BeatBody<'_> {
    /// The JSON body.
    #[must_use]
    pub(crate) fn to_json(self) -> String {
        let obj = Object::new();
        set(&obj, "site", &JsValue::from_str(self.site));
        set(&obj, "visitor", &JsValue::from_str(self.visitor));
        set(&obj, "tab", &JsValue::from_str(self.tab));
        set(&obj, "page", &JsValue::from_str(self.page));
        set(&obj, "state", &JsValue::from_str(self.state.as_str()));
        if let Some(token) = self.member_token {
            set(&obj, "member_token", &JsValue::from_str(token));
        }
        JSON::stringify(&obj)
            .ok()
            .and_then(|s| s.as_string())
            .unwrap_or_default()
    }
}

/// Joins the endpoint and an API path.
#[must_use]
pub(crate) fn url(endpoint: &str, path: &str) -> String {
    let mut u = String::with_capacity(endpoint.len() + path.len());
    u.push_str(endpoint);
    u.push_str(path);
    u
}

/// Why a request failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Failure {
    /// The HTTP status, or 0 when no answer was read (network error, abort).
    pub status: u16,
    /// A `Retry-After` to honour (from a 429 or 503), in milliseconds.
    pub retry_after_ms: Option<u32>,
    /// What went wrong, for the one warning per failure streak.
    pub error: Error,
}

/// Sends `body` with `navigator.sendBeacon` (text/plain). Returns whether it was queued;
/// never throws.
pub(crate) fn beacon(url: &str, body: &str) -> bool {
    let nav = global("navigator");
    let Some(send) = prop(&nav, "sendBeacon").dyn_into::<js_sys::Function>().ok() else {
        return false;
    };
    send.call2(&nav, &JsValue::from_str(url), &JsValue::from_str(body))
        .is_ok_and(|queued| queued.is_truthy())
}

/// Turns a response and its parsed body (if it was JSON) into the count object or a
/// [`Failure`] with the status, the API's error message and any `Retry-After`.
fn outcome(response: &Response, body: Option<JsValue>) -> Result<JsValue, Failure> {
    let body = body.unwrap_or(JsValue::UNDEFINED);
    if response.ok() && body.is_object() {
        return Ok(body);
    }
    let status = response.status();
    let retry_after_ms = if honours_retry_after(status) {
        response
            .headers()
            .get("retry-after")
            .ok()
            .flatten()
            .and_then(|v| parse_retry_after(&v))
    } else {
        None
    };
    let mut message = String::from("HTTP ");
    crate::cookie::push_decimal(&mut message, u64::from(status));
    // The API's errors are `{"error":{"code","message"}}`.
    if let Some(detail) = prop(&prop(&body, "error"), "message").as_string() {
        message.push(' ');
        message.push_str(&detail);
    }
    Err(Failure {
        status,
        retry_after_ms,
        error: Error::with_detail("the server answered", Some(&message)),
    })
}

/// Fetches `url` with `init` and calls `done` once with the count object or the failure
/// (network error, abort, non-2xx with its `Retry-After`, or a body that is not a JSON
/// object). Returns the promise of `done`'s result.
pub(crate) fn request(
    url: &str,
    init: &Object,
    done: Box<dyn FnOnce(Result<JsValue, Failure>) -> JsValue>,
) -> JsPromise {
    let fetched = fetch_with(url, init).unwrap_or_else(|e| JsPromise::rejected(&e).into());
    settle(
        &fetched,
        Box::new(move |settled| match settled {
            Err(e) => done(Err(Failure {
                status: 0,
                retry_after_ms: None,
                error: Error::with_js("request failed", &e),
            })),
            Ok(response) => {
                let response: Response = response.unchecked_into();
                let json: JsValue = response.json().map_or(JsValue::UNDEFINED, Into::into);
                settle(
                    &json,
                    Box::new(move |body| done(outcome(&response, body.ok()))),
                )
                .into()
            }
        }),
    )
}

/// The init of a heartbeat `POST`, abortable through `signal`.
#[must_use]
pub(crate) fn post_init(body: &str, signal: Option<&AbortSignal>) -> Object {
    let init = Object::new();
    set(&init, "method", &JsValue::from_str("POST"));
    set(&init, "body", &JsValue::from_str(body));
    set(&init, "cache", &JsValue::from_str("no-store"));
    if let Some(signal) = signal {
        set(&init, "signal", signal);
    }
    init
}

/// `GET {endpoint}/v1/count?site=…[&page=…]`: a promise of the count object, rejected with
/// a JS `Error` on failure.
#[must_use]
pub(crate) fn get_count(endpoint: &str, site: &str, page: Option<&str>) -> JsPromise {
    count(
        endpoint,
        site,
        page,
        Box::new(|result| match result {
            Ok(count) => count,
            Err(failure) => reject(failure.error).into(),
        }),
    )
}

/// `GET {endpoint}/v1/count?site=…[&page=…]`, calling `done` as [`request`] does.
pub(crate) fn count(
    endpoint: &str,
    site: &str,
    page: Option<&str>,
    done: Box<dyn FnOnce(Result<JsValue, Failure>) -> JsValue>,
) -> JsPromise {
    let mut u = url(endpoint, "/v1/count?site=");
    u.push_str(&String::from(js_sys::encode_uri_component(site)));
    if let Some(page) = page {
        u.push_str("&page=");
        u.push_str(&String::from(js_sys::encode_uri_component(page)));
    }
    let init = Object::new();
    set(&init, "cache", &JsValue::from_str("no-store"));
    request(&u, &init, done)
}
