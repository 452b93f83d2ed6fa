//! The visitor-id cookie in a real browser: created, reused, replaced when bad, and kept in
//! memory only with `cookie: false` or Global Privacy Control.
#![cfg(target_arch = "wasm32")]

mod common;

use common::*;
use herenow_core::protocol::is_visitor_id;
use wasm_bindgen_test::{wasm_bindgen_test, wasm_bindgen_test_configure};

wasm_bindgen_test_configure!(run_in_browser);

const OPTIONS: &str = "{ endpoint: '', site: 'demo' }";

/// The visitor id of the first heartbeat.
async fn sent_visitor() -> String {
    assert!(
        wait_for("__hn.calls.length > 0", 2000).await,
        "no heartbeat"
    );
    string("return __hn.calls[0].body.visitor")
}

#[wasm_bindgen_test]
async fn cookie_is_created_when_missing() {
    install();
    clear_cookie();
    let h = start(OPTIONS);
    let sent = sent_visitor().await;
    assert!(is_visitor_id(&sent), "{sent}");
    assert_eq!(cookie_values(), [sent]);
    h.stop();
    assert_nothing_thrown();
}

#[wasm_bindgen_test]
async fn cookie_is_reused() {
    install();
    clear_cookie();
    let id = "0f2c7e5a-1b3d-4e6f-8a9b-0c1d2e3f4a5b";
    js(&format!("document.cookie = 'herenow_vid={id}; Path=/'"));
    let h = start(OPTIONS);
    assert_eq!(sent_visitor().await, id);
    assert_eq!(cookie_values(), [id]);
    h.stop();
    // A second page instance shares the visitor but not the tab.
    install();
    let h2 = start(OPTIONS);
    assert_eq!(sent_visitor().await, id);
    h2.stop();
    assert_nothing_thrown();
}

#[wasm_bindgen_test]
async fn malformed_and_foreign_values_are_replaced_never_sent() {
    for bad in [
        "garbage",
        "0F2C7E5A-1B3D-4E6F-8A9B-0C1D2E3F4A5B",
        "0f2c7e5a-1b3d-1e6f-8a9b-0c1d2e3f4a5b",
        "0f2c7e5a1b3d4e6f8a9b0c1d2e3f4a5b",
        "",
    ] {
        install();
        clear_cookie();
        js(&format!("document.cookie = 'herenow_vid={bad}; Path=/'"));
        let h = start(OPTIONS);
        let sent = sent_visitor().await;
        assert_ne!(sent, bad);
        assert!(is_visitor_id(&sent), "{sent}");
        assert_eq!(cookie_values(), [sent]);
        h.stop();
    }
    assert_nothing_thrown();
}

#[wasm_bindgen_test]
async fn cookie_false_keeps_the_id_in_memory() {
    install();
    clear_cookie();
    let h = start("{ endpoint: '', site: 'demo', cookie: false }");
    let first = sent_visitor().await;
    assert!(is_visitor_id(&first));
    assert!(
        cookie_values().is_empty(),
        "cookie set: {:?}",
        cookie_values()
    );
    h.stop();
    install();
    let h = start("{ endpoint: '', site: 'demo', cookie: false }");
    let second = sent_visitor().await;
    assert_ne!(first, second, "a memory-only id is per page instance");
    assert!(cookie_values().is_empty());
    h.stop();
    assert_nothing_thrown();
}

#[wasm_bindgen_test]
async fn global_privacy_control_keeps_the_id_in_memory_by_default() {
    install();
    clear_cookie();
    js("Object.defineProperty(navigator, 'globalPrivacyControl', \
        { configurable: true, get: () => true })");
    let h = start(OPTIONS);
    assert!(is_visitor_id(&sent_visitor().await));
    assert!(cookie_values().is_empty(), "cookie set under GPC");
    h.stop();
    // An explicit `cookie: true` is the site's choice.
    install();
    let h = start("{ endpoint: '', site: 'demo', cookie: true }");
    let sent = sent_visitor().await;
    assert_eq!(cookie_values(), [sent]);
    h.stop();
    js("delete navigator.globalPrivacyControl");
    clear_cookie();
    assert_nothing_thrown();
}
