//! Outputs and the JS API: `[data-herenow]` elements, the `herenow:count` event, `onCount`,
//! `count()`, member tokens, the endpoint, and option errors.
#![cfg(target_arch = "wasm32")]

mod common;

use common::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_test::{wasm_bindgen_test, wasm_bindgen_test_configure};

wasm_bindgen_test_configure!(run_in_browser);

#[wasm_bindgen_test]
async fn numbers_go_into_data_herenow_elements() {
    install();
    js("document.body.insertAdjacentHTML('beforeend', `<div id=out>
          <span data-herenow=online>?</span><b data-herenow=online>?</b>
          <span data-herenow=tabs></span><span data-herenow=members></span>
          <span data-herenow=guests></span><span data-herenow=idle></span>
          <span data-herenow=page>keep</span><span data-herenow=bogus>keep</span>
          <span data-herenow=online><i>child</i></span></div>`)");
    js("delete __hn.fallback.body.page");
    let h = start("{ endpoint: '', site: 'demo' }");
    assert!(wait_for("document.querySelector('#out b').textContent === '3'", 1000).await);
    assert_eq!(
        string(
            "return [...document.querySelectorAll('#out [data-herenow]')]
               .map(e => e.textContent).join(',')"
        ),
        "3,3,4,1,2,1,keep,keep,3"
    );
    assert!(
        js("return !document.querySelector('#out i')").is_truthy(),
        "text only"
    );
    h.stop();
    js("document.getElementById('out').remove()");
    assert_nothing_thrown();
}

#[wasm_bindgen_test]
async fn counts_reach_the_event_and_the_callback() {
    install();
    js("__hn.events = []; __hn.counts = [];
        document.addEventListener('herenow:count', e => __hn.events.push(e.detail))");
    let h = start(
        "{ endpoint: '', site: 'demo', onCount: c => { __hn.counts.push(c); throw new Error('host bug'); } }",
    );
    assert!(wait_for("__hn.counts.length === 1", 1000).await);
    assert!(js("return __hn.events.length === 1 && __hn.events[0] === __hn.counts[0]").is_truthy());
    assert_eq!(num("return __hn.counts[0].online"), 3.0);
    assert_eq!(num("return __hn.counts[0].pages[0].online"), 2.0);
    h.stop();
    assert_nothing_thrown();
}

#[wasm_bindgen_test]
async fn count_returns_the_last_count_or_fetches_one() {
    install();
    js("__hn.queue.push({ hang: true, match: '/v1/heartbeat' })");
    let h = start("{ endpoint: 'https://api.example', site: 'demo', page: '/a b' }");
    let count = resolve(h.count()).await.expect("count()");
    let get = "__hn.calls.find(c => c.method === 'GET')";
    assert_eq!(
        string(&format!("return {get}.url")),
        "https://api.example/v1/count?site=demo&page=%2Fa%20b"
    );
    assert_eq!(
        js_sys::Reflect::get(&count, &"online".into())
            .unwrap()
            .as_f64(),
        Some(3.0)
    );
    // After a heartbeat's answer, count() returns it without fetching.
    h.stop();
    install();
    js("__hn.fallback.body.online = 9");
    let h = start("{ endpoint: '', site: 'demo' }");
    assert!(wait_for("__hn.calls.length === 1", 1000).await);
    sleep(20).await;
    let count = resolve(h.count()).await.expect("count()");
    assert_eq!(
        js_sys::Reflect::get(&count, &"online".into())
            .unwrap()
            .as_f64(),
        Some(9.0)
    );
    assert_eq!(num("return __hn.calls.length"), 1.0);
    h.stop();
    // A failing count() rejects with an Error (for the caller; nothing reaches the page).
    install();
    js("__hn.queue.push({ hang: true, match: '/v1/heartbeat' },
                       { status: 503, body: {}, match: '/v1/count' })");
    let h = start("{ endpoint: '', site: 'demo' }");
    let err = resolve(h.count()).await.expect_err("should reject");
    assert!(err.is_instance_of::<js_sys::Error>());
    h.stop();
    assert_nothing_thrown();
}

#[wasm_bindgen_test]
async fn member_tokens_are_passed_through() {
    install();
    let h = start("{ endpoint: '', site: 'demo', memberToken: 'jwt.a.b' }");
    assert!(wait_for("__hn.calls.length === 1", 1000).await);
    assert_eq!(string("return __hn.calls[0].body.member_token"), "jwt.a.b");
    h.stop();
    assert_eq!(
        string("return __hn.beacons[0].body.member_token"),
        "jwt.a.b"
    );

    install();
    let h = start(
        "{ endpoint: '', site: 'demo', memberToken: async () => { await null; return 'async.tok'; } }",
    );
    assert!(wait_for("__hn.calls.length === 1", 1000).await);
    assert_eq!(
        string("return __hn.calls[0].body.member_token"),
        "async.tok"
    );
    set_visibility("hidden");
    assert_eq!(
        string("return __hn.beacons[0].body.member_token"),
        "async.tok",
        "beacons use the last resolved token"
    );
    set_visibility("visible");
    h.stop();

    for provider in [
        "() => { throw new Error('no session') }",
        "() => Promise.reject(new Error('no session'))",
        "() => 42",
        "() => ''",
    ] {
        install();
        let h = start(&format!(
            "{{ endpoint: '', site: 'demo', memberToken: {provider} }}"
        ));
        assert!(
            wait_for("__hn.calls.length === 1", 1000).await,
            "{provider}"
        );
        assert!(
            js("return !('member_token' in __hn.calls[0].body)").is_truthy(),
            "{provider}"
        );
        h.stop();
    }
    assert_nothing_thrown();
}

#[wasm_bindgen_test]
async fn the_endpoint_is_joined_without_double_slashes() {
    install();
    let h = start("{ endpoint: 'http://127.0.0.1:9/base/', site: 'demo' }");
    assert!(wait_for("__hn.calls.length === 1", 1000).await);
    assert_eq!(
        string("return __hn.calls[0].url"),
        "http://127.0.0.1:9/base/v1/heartbeat"
    );
    h.stop();
    assert_eq!(
        string("return __hn.beacons[0].url"),
        "http://127.0.0.1:9/base/v1/leave"
    );
    assert_nothing_thrown();
}

#[wasm_bindgen_test]
async fn bad_options_reject_with_a_clear_error() {
    install();
    for (options, needle) in [
        ("undefined", "options"),
        ("'demo'", "options"),
        ("{ endpoint: '' }", "site"),
        ("{ endpoint: '', site: '' }", "site"),
        ("{ endpoint: '', site: 'a b' }", "site"),
        ("{ endpoint: '', site: 'x'.repeat(65) }", "site"),
        ("{ site: 'demo' }", "endpoint"),
        ("{ endpoint: 42, site: 'demo' }", "endpoint"),
        ("{ endpoint: 'ftp://x', site: 'demo' }", "endpoint"),
        ("{ endpoint: 'http://a b', site: 'demo' }", "endpoint"),
        ("{ endpoint: '', site: 'demo', page: 'nope' }", "page"),
        (
            "{ endpoint: '', site: 'demo', memberToken: {} }",
            "memberToken",
        ),
        ("{ endpoint: '', site: 'demo', cookie: 'no' }", "cookie"),
        (
            "{ endpoint: '', site: 'demo', cookieMaxAge: -1 }",
            "cookieMaxAge",
        ),
        ("{ endpoint: '', site: 'demo', onCount: 5 }", "onCount"),
    ] {
        let message = start_error(options).await;
        assert!(
            message.starts_with("herenow: ") && message.contains(needle),
            "{options}: {message}"
        );
    }
    assert_eq!(num("return __hn.calls.length"), 0.0);
    assert_eq!(beacons(), 0);
    assert_nothing_thrown();
}
