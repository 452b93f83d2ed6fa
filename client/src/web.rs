//! The browser globals the client reads, looked up on `globalThis` with `Reflect` (fewer
//! imports than `web_sys::window()` and friends, and no exception when one is missing).

use js_sys::Reflect;
use wasm_bindgen::prelude::wasm_bindgen;
use wasm_bindgen::{JsCast, JsValue};
use web_sys::Document;

#[wasm_bindgen]
extern "C" {
    #[wasm_bindgen(thread_local_v2, js_name = globalThis)]
    static GLOBAL: JsValue;
}

/// `target[key]`, or `undefined` when that throws.
#[must_use]
pub(crate) fn prop(target: &JsValue, key: &str) -> JsValue {
    Reflect::get(target, &JsValue::from_str(key)).unwrap_or(JsValue::UNDEFINED)
}

/// `globalThis[key]`, or `undefined`.
#[must_use]
pub(crate) fn global(key: &str) -> JsValue {
    GLOBAL.with(|g| prop(g, key))
}

/// The page's document, if there is one.
#[must_use]
pub(crate) fn document() -> Option<Document> {
    let d = global("document");
    d.is_object().then(|| d.unchecked_into())
}
