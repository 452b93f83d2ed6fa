//! Output: numbers into `[data-herenow="…"]` elements, a `herenow:count` event on
//! `document`, and the `onCount` callback.

use js_sys::{Function, Object, Reflect};
use wasm_bindgen::{JsCast, JsValue};
use web_sys::{CustomEvent, CustomEventInit, Document};

use crate::cookie::push_decimal;
use crate::web::document;

/// The count fields an element can show, as in `data-herenow="online"`.
pub(crate) const FIELDS: [&str; 6] = ["online", "tabs", "members", "guests", "idle", "page"];

/// The name of the event dispatched on `document` with each count.
pub(crate) const EVENT_NAME: &str = "herenow:count";

/// A count field as text: a non-negative whole number, else `None`.
#[must_use]
pub(crate) fn number_text(value: &JsValue) -> Option<String> {
    let n = value.as_f64()?;
    if !(n.is_finite() && n >= 0.0 && n.fract() == 0.0 && n < 9.0e15) {
        return None;
    }
    let mut s = String::new();
    // Checked above: a whole number in u64's range.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    push_decimal(&mut s, n as u64);
    Some(s)
}

/// Writes each field of `count` into the `textContent` of every element asking for it;
/// fields the count lacks (like `page` when no page was asked) leave their elements alone.
pub(crate) fn render(document: &Document, count: &JsValue) {
    for field in FIELDS {
        let Some(text) = Reflect::get(count, &JsValue::from_str(field))
            .ok()
            .and_then(|v| number_text(&v))
        else {
            continue;
        };
        let mut selector = String::from("[data-herenow=\"");
        selector.push_str(field);
        selector.push_str("\"]");
        let Ok(nodes) = document.query_selector_all(&selector) else {
            continue;
        };
        for i in 0..nodes.length() {
            if let Some(node) = nodes.item(i) {
                node.set_text_content(Some(&text));
            }
        }
    }
}

/// Dispatches `herenow:count` on `document` with `count` as its `detail`.
pub(crate) fn dispatch(document: &Document, count: &JsValue) {
    let init = Object::new();
    let _ = Reflect::set(&init, &JsValue::from_str("detail"), count);
    if let Ok(event) =
        CustomEvent::new_with_event_init_dict(EVENT_NAME, init.unchecked_ref::<CustomEventInit>())
    {
        let _ = document.dispatch_event(&event);
    }
}

/// All outputs for one count; a throwing `onCount` is caught and ignored.
pub(crate) fn publish(count: &JsValue, on_count: Option<&Function>) {
    if let Some(document) = document() {
        render(&document, count);
        dispatch(&document, count);
    }
    if let Some(f) = on_count {
        let _ = f.call1(&JsValue::UNDEFINED, count);
    }
}
