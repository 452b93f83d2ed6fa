//! Timer and jitter bounds, exponential backoff with full jitter, `Retry-After`, and one
//! warning per failure streak, against the fake API in a real browser.
#![cfg(target_arch = "wasm32")]

mod common;

use common::*;
use wasm_bindgen_test::{wasm_bindgen_test, wasm_bindgen_test_configure};

wasm_bindgen_test_configure!(run_in_browser);

/// How late a timer may fire on a busy 2-core test machine.
const SLACK_MS: f64 = 150.0;

/// Gaps between consecutive fetches, in ms.
fn gaps() -> Vec<f64> {
    let times = js("return __hn.calls.map(c => c.t)");
    let times: Vec<f64> = js_sys::Array::from(&times)
        .iter()
        .map(|t| t.as_f64().unwrap())
        .collect();
    times.windows(2).map(|w| w[1] - w[0]).collect()
}

#[wasm_bindgen_test]
async fn heartbeats_follow_the_server_interval_within_ten_percent() {
    install();
    js("__hn.fallback.body.next_heartbeat_ms = 300");
    let h = start("{ endpoint: '', site: 'demo' }");
    assert!(wait_for("__hn.calls.length >= 7", 4000).await);
    h.stop();
    let gaps = gaps();
    for g in &gaps {
        assert!(
            *g >= 270.0 - 2.0 && *g <= 330.0 + SLACK_MS,
            "gap {g} outside 300 ms ±10%: {gaps:?}"
        );
    }
    let spread = gaps.iter().copied().fold(f64::MIN, f64::max)
        - gaps.iter().copied().fold(f64::MAX, f64::min);
    assert!(spread > 2.0, "no jitter: {gaps:?}");
    assert_nothing_thrown();
}

#[wasm_bindgen_test]
async fn a_silly_interval_is_clamped_and_a_missing_one_defaulted() {
    install();
    js("__hn.fallback.body.next_heartbeat_ms = 0");
    let h = start("{ endpoint: '', site: 'demo' }");
    assert!(wait_for("__hn.calls.length >= 4", 2000).await);
    h.stop();
    assert!(gaps().iter().all(|g| *g >= 88.0), "{:?}", gaps());

    install();
    js("delete __hn.fallback.body.next_heartbeat_ms");
    let h = start("{ endpoint: '', site: 'demo' }");
    sleep(600).await;
    assert_eq!(heartbeats(), 1, "the 15 s default applies");
    h.stop();
    assert_nothing_thrown();
}

#[wasm_bindgen_test]
async fn failures_back_off_exponentially_with_one_warning_per_streak() {
    install();
    js("__hn.queue.push(
          { networkError: true },
          { networkError: true },
          { status: 500, body: { error: { code: 'internal', message: 'boom' } } },
          { status: 200, body: Object.assign({}, __hn.fallback.body, { next_heartbeat_ms: 100 }) },
          { networkError: true })");
    let h = start("{ endpoint: '', site: 'demo' }");
    assert!(wait_for("__hn.calls.length >= 6", 9000).await, "retries");
    h.stop();
    let g = gaps();
    // Full jitter: attempt n waits up to 1 s · 2^n.
    assert!(g[0] <= 1000.0 + SLACK_MS, "{g:?}");
    assert!(g[1] <= 2000.0 + SLACK_MS, "{g:?}");
    assert!(g[2] <= 4000.0 + SLACK_MS, "{g:?}");
    assert!(
        g[3] >= 88.0 && g[3] <= 110.0 + SLACK_MS,
        "success resets: {g:?}"
    );
    assert!(
        g[4] <= 1000.0 + SLACK_MS,
        "a new streak starts at 1 s: {g:?}"
    );
    assert_eq!(
        num("return __hn.warnings.length"),
        2.0,
        "one warning per streak"
    );
    let first = string("return __hn.warnings[0]");
    assert!(first.starts_with("herenow:"), "{first}");
    assert!(first.contains("Failed to fetch"), "{first}");
    assert_nothing_thrown();
}

#[wasm_bindgen_test]
async fn backoff_is_capped_inside_the_servers_window() {
    // Regression: the cap was five minutes whatever the window. One good answer announces
    // a 1.5 s window and a 250 ms interval, so retries come within 1.25 s; uncapped, the
    // 4th and later would wait up to 8, 16, 32 s.
    install();
    js(
        "__hn.queue.push({ status: 200, body: Object.assign({}, __hn.fallback.body,
          { window_s: 1.5, next_heartbeat_ms: 250 }) });
        __hn.fallback = { networkError: true };",
    );
    let h = start("{ endpoint: '', site: 'demo' }");
    assert!(wait_for("__hn.calls.length >= 9", 12_000).await, "retries");
    h.stop();
    let g = gaps();
    assert!(g[0] >= 225.0 - 2.0 && g[0] <= 275.0 + SLACK_MS, "{g:?}");
    assert!(g[1..].iter().all(|d| *d <= 1250.0 + SLACK_MS), "{g:?}");
    assert_eq!(num("return __hn.warnings.length"), 1.0);
    assert_nothing_thrown();
}

#[wasm_bindgen_test]
async fn retry_after_is_honoured_on_429_and_503_only() {
    for (status, retry_after, min, max) in [
        (429, "1", 998.0, 1000.0 + SLACK_MS),
        (503, "1", 998.0, 1000.0 + SLACK_MS),
        // Not honoured on a 500: full jitter under 1 s for a first failure.
        (500, "30", 0.0, 1000.0 + SLACK_MS),
    ] {
        install();
        js(&format!(
            "__hn.queue.push({{ status: {status}, headers: {{ 'Retry-After': '{retry_after}' }},
               body: {{ error: {{ code: 'rate_limited', message: 'slow down' }} }} }})"
        ));
        let h = start("{ endpoint: '', site: 'demo' }");
        assert!(wait_for("__hn.calls.length >= 2", 3000).await, "{status}");
        h.stop();
        let g = gaps()[0];
        assert!(g >= min && g <= max, "{status}: retried after {g} ms");
        let warning = string("return __hn.warnings.join('|')");
        assert!(
            warning.contains(&status.to_string()) && warning.contains("slow down"),
            "{warning}"
        );
    }
    assert_nothing_thrown();
}

#[wasm_bindgen_test]
async fn a_bad_body_is_a_failure_too() {
    install();
    js("__hn.queue.push({ status: 200, body: 'not a count' })");
    let h = start("{ endpoint: '', site: 'demo' }");
    assert!(wait_for("__hn.calls.length >= 2", 2000).await);
    h.stop();
    assert_eq!(num("return __hn.warnings.length"), 1.0);
    assert_nothing_thrown();
}
