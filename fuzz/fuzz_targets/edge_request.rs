//! Whole requests through the edge app on the memory store: every input ends in a
//! response with a known status, and every error body is the documented JSON.
#![no_main]
use herenow_core::store::{ManualClock, MemoryStore, block_on_ready};
use herenow_edge::app::{App, HttpRequest};
use herenow_edge::config::Config;
use libfuzzer_sys::fuzz_target;

const METHODS: [&str; 5] = ["GET", "POST", "OPTIONS", "PUT", "HEAD"];
const PATHS: [&str; 9] = [
    "/v1/heartbeat", "/v1/leave", "/v1/count", "/v1/online", "/v1/last-seen",
    "/v1/badge.svg", "/healthz", "/v1/nope", "/",
];

fuzz_target!(|data: &[u8]| {
    if data.len() < 3 {
        return;
    }
    let sites = r#"{"demo":{"origins":["http://127.0.0.1:8787"]}}"#;
    let Ok(config) = Config::from_lookup(|k| match k {
        "SITES" => Some(sites.to_owned()),
        "MEMBER_SECRET_DEMO" => Some("fuzz-secret-fuzz-secret-fuzz-secret!".to_owned()),
        _ => None,
    }) else {
        return;
    };
    let app = App::new(config, "fuzz", 1);
    let store = MemoryStore::new(ManualClock::new(1_800_000_000_000));
    let rest = &data[3..];
    let split = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
    let query = String::from_utf8_lossy(&rest[..split]).into_owned();
    let body = rest.get(split + 1..).unwrap_or(&[]).to_vec();
    let req = HttpRequest {
        method: METHODS[data[0] as usize % METHODS.len()].to_owned(),
        path: PATHS[data[1] as usize % PATHS.len()].to_owned(),
        query,
        origin: (data[2] & 1 == 1).then(|| "http://127.0.0.1:8787".to_owned()),
        content_type: Some(if data[2] & 2 == 2 { "application/json" } else { "text/plain" }.to_owned()),
        content_length: Some(body.len() as u64),
        body,
        client_ip: Some("192.0.2.1".to_owned()),
        authorization: (data[2] & 4 == 4).then(|| "Bearer not-the-read-key".to_owned()),
    };
    let resp = block_on_ready(app.handle(&store, 1_800_000_000_000, &req));
    assert!(
        [200, 204, 400, 401, 403, 404, 405, 413, 415, 429, 503].contains(&resp.status),
        "unexpected status {}",
        resp.status
    );
    if resp.status >= 400 {
        let v: serde_json::Value = serde_json::from_slice(&resp.body).expect("error body is JSON");
        assert!(v["error"]["code"].is_string() && v["error"]["message"].is_string());
    }
});
