//! What real embeds need: watch-only, same-document navigations and `setPage`, and member
//! tokens the server refuses.
#![cfg(target_arch = "wasm32")]

mod common;

use common::*;
use wasm_bindgen_test::{wasm_bindgen_test, wasm_bindgen_test_configure};

wasm_bindgen_test_configure!(run_in_browser);

/// A refused token answer.
const REFUSED: &str = "__hn.queue.push({ status: 401, body: { error: { code: 'invalid_token', message: 'token expired' } } })";

fn fast() {
    js("__hn.fallback.body.next_heartbeat_ms = 100");
}

fn warnings() -> usize {
    num("return __hn.warnings.length") as usize
}

#[wasm_bindgen_test]
async fn a_refused_fixed_token_counts_a_guest_with_one_warning() {
    install();
    fast();
    js(REFUSED);
    let h = start("{ endpoint: '', site: 'demo', memberToken: 'jwt.a.b' }");
    assert!(wait_for("__hn.calls.length >= 2", 1000).await);
    assert_eq!(string("return __hn.calls[0].body.member_token"), "jwt.a.b");
    assert!(
        js("return !('member_token' in __hn.calls[1].body)").is_truthy(),
        "resent at once without the token"
    );
    assert!(
        wait_for("__hn.calls.length >= 4", 2000).await,
        "beats go on"
    );
    assert!(js("return __hn.calls.slice(1).every(c => !('member_token' in c.body))").is_truthy());
    assert_eq!(warnings(), 1);
    assert!(string("return __hn.warnings[0]").contains("member token refused"));
    h.stop();
    assert!(
        js("return !('member_token' in __hn.beacons[0].body)").is_truthy(),
        "the leave goes without it too"
    );
    assert_nothing_thrown();
}

#[wasm_bindgen_test]
async fn a_token_provider_is_asked_again_on_a_401() {
    install();
    fast();
    js(REFUSED);
    js("__hn.asked = 0");
    let h = start("{ endpoint: '', site: 'demo', memberToken: () => 'tok' + (++__hn.asked) }");
    assert!(wait_for("__hn.calls.length >= 2", 1000).await);
    assert_eq!(string("return __hn.calls[0].body.member_token"), "tok1");
    assert_eq!(string("return __hn.calls[1].body.member_token"), "tok2");
    assert_eq!(warnings(), 1);

    h.stop();

    // A provider that keeps giving the refused token: that heartbeat goes as a guest's.
    install();
    fast();
    js(REFUSED);
    let h2 = start("{ endpoint: '', site: 'demo', memberToken: () => 'same.bad.tok' }");
    assert!(wait_for("__hn.calls.length >= 3", 2000).await);
    assert!(js("return __hn.calls.slice(1).every(c => !('member_token' in c.body))").is_truthy());
    h2.stop();
    assert_nothing_thrown();
}

#[wasm_bindgen_test]
async fn watch_only_fetches_counts_and_sends_nothing() {
    install();
    fast();
    clear_cookie();
    js("__hn.seen = 0");
    let h = start("{ endpoint: '', site: 'demo', track: false, onCount: () => __hn.seen++ }");
    assert!(wait_for("__hn.calls.length >= 2 && __hn.seen >= 2", 2000).await);
    assert!(
        js("return __hn.calls.every(c => c.method === 'GET' && c.url.startsWith('/v1/count?site=demo&page='))")
            .is_truthy(),
        "{}",
        string("return JSON.stringify(__hn.calls)")
    );
    assert!(cookie_values().is_empty(), "no cookie");
    set_visibility("hidden");
    let hidden_at = num("return __hn.calls.length");
    sleep(400).await; // four intervals
    assert!(num("return __hn.calls.length") <= hidden_at + 1.0);
    set_visibility("visible");
    h.stop();
    assert_eq!(beacons(), 0, "no idle or leave beacon");
    assert_nothing_thrown();
}

#[wasm_bindgen_test]
async fn navigations_move_the_tab_and_set_page_pins_it() {
    install();
    let home = string("return location.pathname + location.search");
    let h = start("{ endpoint: '', site: 'demo' }");
    assert!(wait_for("__hn.calls.length === 1", 1000).await);
    let tab = string("return __hn.calls[0].body.tab");
    js("history.pushState({}, '', '/spa-pushed')");
    assert!(
        wait_for("__hn.calls.length === 2", 1000).await,
        "pushState beats at once"
    );
    assert_eq!(string("return __hn.calls[1].body.page"), "/spa-pushed");
    assert_eq!(string("return __hn.calls[1].body.tab"), tab);
    js("history.replaceState({}, '', '/spa-replaced')");
    assert!(
        wait_for("__hn.calls.length === 3", 1000).await,
        "replaceState beats at once"
    );
    assert_eq!(string("return __hn.calls[2].body.page"), "/spa-replaced");

    h.set_page("/chosen".into());
    assert!(
        wait_for("__hn.calls.length === 4", 1000).await,
        "setPage beats at once"
    );
    assert_eq!(string("return __hn.calls[3].body.page"), "/chosen");
    h.set_page("nope".into()); // not a path: ignored
    js("history.pushState({}, '', '/spa-ignored')");
    h.set_page("/chosen".into()); // unchanged: no heartbeat
    sleep(50).await;
    assert_eq!(heartbeats(), 4, "setPage turned following off");
    h.stop();
    js(&format!("history.replaceState({{}}, '', {home:?})"));

    install();
    let h = start("{ endpoint: '', site: 'demo', page: '/pinned' }");
    assert!(wait_for("__hn.calls.length === 1", 1000).await);
    js("history.pushState({}, '', '/spa-pinned')");
    sleep(50).await;
    assert_eq!(heartbeats(), 1, "a given page is pinned");
    h.stop();
    js(&format!("history.replaceState({{}}, '', {home:?})"));
    assert_nothing_thrown();
}
