//! The page lifecycle driven by real dispatched events: visibility (stubbed
//! `document.visibilityState`), `pagehide`/`pageshow` with `persisted`, `freeze`/`resume`,
//! and `stop()`. Never `unload` or `beforeunload`.
#![cfg(target_arch = "wasm32")]

mod common;

use common::*;
use wasm_bindgen_test::{wasm_bindgen_test, wasm_bindgen_test_configure};

wasm_bindgen_test_configure!(run_in_browser);

/// Heartbeats every ~100 ms, so a stopped timer shows within a few hundred.
fn fast_server() {
    js("__hn.fallback.body.next_heartbeat_ms = 100");
}

/// Whether the heartbeat count reaches exactly `n` within 50 ms (well inside the 90 ms a
/// timer could take): the heartbeat went out "at once", after only the microtasks that
/// resolve the member token.
async fn at_once(n: usize) -> bool {
    wait_for(&format!("__hn.calls.length >= {n}"), 50).await && heartbeats() == n
}

#[wasm_bindgen_test]
async fn starts_with_one_heartbeat_at_once() {
    install();
    let h = start("{ endpoint: '', site: 'demo' }");
    assert!(at_once(1).await);
    let body = js("return __hn.calls[0].body");
    let field = |k: &str| {
        js_sys::Reflect::get(&body, &k.into())
            .unwrap()
            .as_string()
            .unwrap_or_default()
    };
    assert_eq!(string("return __hn.calls[0].url"), "/v1/heartbeat");
    assert_eq!(string("return __hn.calls[0].method"), "POST");
    assert_eq!(field("site"), "demo");
    assert_eq!(field("state"), "active");
    assert_eq!(field("page"), string("return location.pathname"));
    let tab = field("tab");
    assert!(
        (1..=64).contains(&tab.len())
            && tab
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
        "{tab}"
    );
    assert!(js("return !('member_token' in __hn.calls[0].body)").is_truthy());
    sleep(100).await;
    assert_eq!(heartbeats(), 1, "the next one waits for next_heartbeat_ms");
    h.stop();
    assert_nothing_thrown();
}

#[wasm_bindgen_test]
async fn never_registers_unload_or_beforeunload() {
    install();
    let h = start("{ endpoint: '', site: 'demo' }");
    let types = string("return __hn.listenerTypes.join(',')");
    for t in [
        "visibilitychange",
        "pagehide",
        "pageshow",
        "freeze",
        "resume",
    ] {
        assert!(
            types.split(',').any(|x| x == t),
            "{t} not listened: {types}"
        );
    }
    assert!(
        !types
            .split(',')
            .any(|x| x == "unload" || x == "beforeunload"),
        "{types}"
    );
    h.stop();
}

#[wasm_bindgen_test]
async fn hidden_sends_idle_once_and_stops_the_timer_visible_restarts() {
    install();
    fast_server();
    let h = start("{ endpoint: '', site: 'demo' }");
    assert!(wait_for("__hn.calls.length >= 2", 1000).await, "timer");
    set_visibility("hidden");
    set_visibility("hidden");
    assert_eq!(beacons(), 1, "one idle beacon");
    assert_eq!(string("return __hn.beacons[0].url"), "/v1/heartbeat");
    assert_eq!(string("return __hn.beacons[0].body.state"), "idle");
    assert_eq!(string("return __hn.beacons[0].type"), "string");
    let before = heartbeats();
    sleep(400).await;
    assert_eq!(heartbeats(), before, "the timer stopped while hidden");

    set_visibility("visible");
    assert!(at_once(before + 1).await, "a heartbeat at once");
    assert!(
        wait_for(&format!("__hn.calls.length >= {}", before + 3), 1000).await,
        "the timer restarted"
    );
    assert_eq!(string("return __hn.calls.at(-1).body.state"), "active");
    assert_eq!(beacons(), 1);
    h.stop();
    assert_nothing_thrown();
}

#[wasm_bindgen_test]
async fn pagehide_leaves_aborts_the_fetch_and_pageshow_rejoins() {
    install();
    fast_server();
    js("__hn.queue.push({ hang: true })");
    let h = start("{ endpoint: '', site: 'demo' }");
    assert!(wait_for("__hn.calls.length === 1", 1000).await);
    page_transition("pagehide", true);
    assert_eq!(beacons(), 1);
    assert_eq!(string("return __hn.beacons[0].url"), "/v1/leave");
    assert!(wait_for("__hn.aborted === 1", 1000).await, "fetch aborted");
    // Chromium's order on the way into and back from the back/forward cache.
    set_visibility("hidden");
    document_event("freeze");
    document_event("resume");
    set_visibility("visible");
    sleep(300).await;
    assert_eq!(beacons(), 1, "no idle beacon after leaving");
    assert_eq!(heartbeats(), 1, "no heartbeat after leaving");
    page_transition("pageshow", false);
    sleep(50).await;
    assert_eq!(heartbeats(), 1, "a first load's pageshow is not a restore");
    page_transition("pageshow", true);
    assert!(at_once(2).await, "rejoined at once");
    assert!(
        wait_for("__hn.calls.length >= 4", 1000).await,
        "timer again"
    );
    h.stop();
    assert_nothing_thrown();
}

#[wasm_bindgen_test]
async fn freeze_stops_and_resume_restarts() {
    install();
    fast_server();
    let h = start("{ endpoint: '', site: 'demo' }");
    assert!(wait_for("__hn.calls.length >= 2", 1000).await);
    document_event("freeze");
    assert_eq!(beacons(), 1);
    assert_eq!(string("return __hn.beacons[0].body.state"), "idle");
    let before = heartbeats();
    sleep(300).await;
    assert_eq!(heartbeats(), before, "no timer while frozen");
    document_event("resume");
    assert!(at_once(before + 1).await, "a heartbeat at once");
    h.stop();
    assert_nothing_thrown();
}

#[wasm_bindgen_test]
async fn stop_leaves_and_removes_everything() {
    install();
    fast_server();
    let h = start("{ endpoint: '', site: 'demo' }");
    assert!(wait_for("__hn.calls.length >= 2", 1000).await);
    h.stop();
    assert_eq!(beacons(), 1);
    assert_eq!(string("return __hn.beacons[0].url"), "/v1/leave");
    let before = heartbeats();
    set_visibility("hidden");
    set_visibility("visible");
    page_transition("pagehide", true);
    page_transition("pageshow", true);
    sleep(300).await;
    assert_eq!(heartbeats(), before, "no heartbeat after stop");
    assert_eq!(beacons(), 1, "no beacon after stop");
    h.stop();
    assert_eq!(beacons(), 1, "stop is idempotent");
    assert_nothing_thrown();
}

#[wasm_bindgen_test]
async fn starting_hidden_sends_idle_and_waits() {
    install();
    fast_server();
    js("__hn.vis = 'hidden'");
    let h = start("{ endpoint: '', site: 'demo' }");
    sleep(250).await;
    assert_eq!(heartbeats(), 0);
    assert_eq!(beacons(), 1);
    assert_eq!(string("return __hn.beacons[0].body.state"), "idle");
    set_visibility("visible");
    assert!(at_once(1).await);
    h.stop();
    assert_nothing_thrown();
}
