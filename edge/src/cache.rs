//! The per-location channel over the Cache API (`caches.default`), and the probe that
//! decides whether it is used.
//!
//! The Cache API is per data center and free, so the isolates of one location can exchange
//! their records through it instead of KV (`herenow_core::engine::local`). But it does
//! nothing on `*.workers.dev`, in the dashboard editor and in previews: `put` succeeds and
//! `match` misses. So it is never assumed: each isolate probes it at its first request and
//! again every [`PROBE_EVERY_MS`] ([`Probe`], the one home of that rule), and the channel is
//! on only while a nonce put at a probe URL comes back the same.
//!
//! Channel entries live under the origin the isolate's first probe saw
//! (`{origin}/__herenow/channel/{key}`), kept for the isolate's life: the isolates of one
//! location find each other only if they share it, so a worker reached on several hostnames
//! should set `CHANNEL=kv`.
//!
//! [`Stores`] is the [`Store`] the glue hands the app: KV for everything, plus the channel
//! when the probe found it working. Channel failures are misses (`None`/`false`), never
//! errors: the engine treats a miss as "not known".

use std::cell::{Cell, RefCell};

use crate::config::ChannelMode;

/// How often an isolate probes the Cache API again after its first probe, in ms: a probe is
/// 2 cache calls, so 2 per 5 minutes per isolate.
pub const PROBE_EVERY_MS: u64 = 300_000;

/// How long the probe's nonce stays in the cache, in seconds.
pub const PROBE_TTL_S: u64 = 60;

/// A probe that has not finished after this long, in ms, was abandoned (its event ended
/// first): another may start.
pub const PROBE_ABANDONED_MS: u64 = 10_000;

/// The path under the origin where channel entries live.
const CHANNEL_PATH: &str = "/__herenow/channel/";

/// The path under the origin where probes put their nonce.
const PROBE_PATH: &str = "/__herenow/probe/";

/// The origin (`scheme://host[:port]`) of an absolute URL, `None` if `url` is not one.
#[must_use]
pub fn origin_of(url: &str) -> Option<&str> {
    let (scheme, rest) = url.split_once("://")?;
    if !matches!(scheme, "http" | "https") {
        return None;
    }
    let host_len = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    (host_len > 0).then(|| &url[..scheme.len() + 3 + host_len])
}

/// The URL of `key` under `base` (`origin` + a path ending in `/`), the key percent-encoded
/// so that any key is one path segment.
fn url_at(origin: &str, path: &str, key: &str) -> String {
    let encoded: String = form_urlencoded::byte_serialize(key.as_bytes()).collect();
    format!("{origin}{path}{encoded}")
}

/// The Cache API URL of the channel entry `key` at `origin`.
#[must_use]
pub fn channel_url(origin: &str, key: &str) -> String {
    url_at(origin, CHANNEL_PATH, key)
}

/// Whether the channel is on in this isolate, and when to probe again: the probe's rule.
///
/// The glue calls [`Probe::start`] before a request uses the store (and after its
/// response), runs the probe it gets — put the nonce at the URL, match it back — and
/// reports with [`Probe::finish`]. The first probe is awaited before the isolate's first
/// request touches the store ([`Probe::unsettled`]), so that the engine starts in the mode
/// it will keep; later ones run after a response.
#[derive(Debug, Default)]
pub struct Probe {
    mode: ChannelMode,
    /// The origin the channel lives under, pinned by the first probe.
    origin: RefCell<Option<String>>,
    /// Whether the last probe got its nonce back.
    on: Cell<bool>,
    /// When the last probe finished.
    finished_ms: Cell<Option<u64>>,
    /// When the probe under way started.
    started_ms: Cell<Option<u64>>,
}

/// A probe to run: put [`ProbeRun::nonce`] at [`ProbeRun::url`], match it back, and
/// [`Probe::finish`] with what came back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeRun {
    /// The probe URL, `{origin}/__herenow/probe/{isolate}`.
    pub url: String,
    /// The origin whose cache is probed.
    pub origin: String,
    /// The bytes to put and expect back.
    pub nonce: Vec<u8>,
}

impl Probe {
    /// A probe for `mode` (`ChannelMode::Kv` never probes and keeps the channel off).
    #[must_use]
    pub fn new(mode: ChannelMode) -> Self {
        Self {
            mode,
            ..Self::default()
        }
    }

    /// Whether the channel is on: the last probe got its nonce back.
    #[must_use]
    pub fn on(&self) -> bool {
        self.on.get()
    }

    /// The origin the channel's entries live under, while the channel is on.
    #[must_use]
    pub fn channel_origin(&self) -> Option<String> {
        if self.on.get() {
            self.origin.borrow().clone()
        } else {
            None
        }
    }

    /// Whether this isolate has yet to learn if the channel works (no probe has finished,
    /// and it would probe): a request should wait for the first probe before it uses the
    /// store.
    #[must_use]
    pub fn unsettled(&self) -> bool {
        self.mode == ChannelMode::Auto && self.finished_ms.get().is_none()
    }

    /// Whether a probe is due at `now`: the first, or [`PROBE_EVERY_MS`] after the last, and
    /// none under way (a probe not finished after [`PROBE_ABANDONED_MS`] was abandoned).
    #[must_use]
    pub fn due(&self, now: u64) -> bool {
        let running = self
            .started_ms
            .get()
            .is_some_and(|s| now < s + PROBE_ABANDONED_MS);
        self.mode == ChannelMode::Auto
            && !running
            && self
                .finished_ms
                .get()
                .is_none_or(|f| now >= f + PROBE_EVERY_MS)
    }

    /// The probe to run now, if one is [due](Probe::due); `request_origin` is the origin of
    /// the request at hand (the first probe pins it), `nonce` fresh random bytes.
    pub fn start(
        &self,
        now: u64,
        request_origin: &str,
        isolate: &str,
        nonce: Vec<u8>,
    ) -> Option<ProbeRun> {
        if !self.due(now) {
            return None;
        }
        let origin = self
            .origin
            .borrow_mut()
            .get_or_insert_with(|| request_origin.to_owned())
            .clone();
        self.started_ms.set(Some(now));
        Some(ProbeRun {
            url: url_at(&origin, PROBE_PATH, isolate),
            origin,
            nonce,
        })
    }

    /// Records the probe `run`'s outcome: the channel is on only if exactly its nonce came
    /// back (`got`: what the match returned, `None` on a miss or a failure).
    pub fn finish(&self, now: u64, run: &ProbeRun, got: Option<&[u8]>) {
        self.on.set(got == Some(run.nonce.as_slice()));
        self.finished_ms.set(Some(now));
        self.started_ms.set(None);
    }
}

#[cfg(target_arch = "wasm32")]
pub use wasm::{Channel, Stores, run_probe};

#[cfg(target_arch = "wasm32")]
mod wasm {
    use std::rc::Rc;

    use herenow_core::store::{ListPage, Store, StoreError};
    use worker::wasm_bindgen::{JsCast, JsValue};
    use worker::wasm_bindgen_futures::JsFuture;
    use worker::{js_sys, web_sys};

    use super::{PROBE_TTL_S, ProbeRun, channel_url};
    use crate::kv::Kv;

    /// `caches.default` with the origin the channel lives under. Clones share the cache.
    #[derive(Clone)]
    pub struct Channel {
        cache: web_sys::Cache,
        origin: Rc<str>,
    }

    impl Channel {
        /// The channel under `origin`; `None` if the runtime has no `caches.default`.
        /// (`worker::Cache::default()` would panic there.)
        #[must_use]
        pub fn open(origin: &str) -> Option<Self> {
            let global = js_sys::global();
            let caches = js_sys::Reflect::get(&global, &JsValue::from_str("caches")).ok()?;
            if !caches.is_object() {
                return None;
            }
            let cache = js_sys::Reflect::get(&caches, &JsValue::from_str("default")).ok()?;
            if !cache.is_object() {
                return None;
            }
            Some(Self {
                cache: cache.unchecked_into(),
                origin: origin.into(),
            })
        }

        /// The bytes cached at `url`; `None` on a miss or any failure.
        async fn get_url(&self, url: &str) -> Option<Vec<u8>> {
            let found = JsFuture::from(self.cache.match_with_str(url)).await.ok()?;
            if found.is_undefined() || found.is_null() {
                return None;
            }
            let resp: web_sys::Response = found.dyn_into().ok()?;
            let buffer = JsFuture::from(resp.array_buffer().ok()?).await.ok()?;
            Some(js_sys::Uint8Array::new(&buffer).to_vec())
        }

        /// Caches `value` at `url` for `ttl_s` seconds; `false` if it failed. The response
        /// carries `Cache-Control: max-age` and nothing else (a `Set-Cookie` would keep it
        /// out of the cache).
        async fn put_url(&self, url: &str, mut value: Vec<u8>, ttl_s: u64) -> bool {
            let Ok(headers) = web_sys::Headers::new() else {
                return false;
            };
            if headers
                .set("cache-control", &format!("max-age={ttl_s}"))
                .is_err()
            {
                return false;
            }
            let init = web_sys::ResponseInit::new();
            init.set_status(200);
            init.set_headers(&headers);
            let Ok(resp) =
                web_sys::Response::new_with_opt_u8_array_and_init(Some(&mut value), &init)
            else {
                return false;
            };
            JsFuture::from(self.cache.put_with_str(url, &resp))
                .await
                .is_ok()
        }

        /// The channel entry `key`.
        pub async fn get(&self, key: &str) -> Option<Vec<u8>> {
            self.get_url(&channel_url(&self.origin, key)).await
        }

        /// Puts the channel entry `key` for `ttl_s` seconds.
        pub async fn put(&self, key: &str, value: Vec<u8>, ttl_s: u64) -> bool {
            self.put_url(&channel_url(&self.origin, key), value, ttl_s)
                .await
        }
    }

    /// Runs `run` (2 cache calls: put the nonce, match it back) and returns what came back.
    pub async fn run_probe(run: &ProbeRun) -> Option<Vec<u8>> {
        let channel = Channel::open(&run.origin)?;
        if !channel
            .put_url(&run.url, run.nonce.clone(), PROBE_TTL_S)
            .await
        {
            return None;
        }
        channel.get_url(&run.url).await
    }

    /// The store the app runs on: KV, and the per-location channel when the probe found
    /// the Cache API working (`channel: None`: the engine exchanges records through KV).
    #[derive(Clone)]
    pub struct Stores {
        /// Records, listings, members' last seen and history.
        pub kv: Kv,
        /// The per-location channel, if on.
        pub channel: Option<Channel>,
    }

    impl Store for Stores {
        async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
            self.kv.get(key).await
        }

        async fn put(
            &self,
            key: &str,
            value: Vec<u8>,
            metadata: Option<String>,
            ttl_s: u64,
        ) -> Result<(), StoreError> {
            self.kv.put(key, value, metadata, ttl_s).await
        }

        async fn list(&self, prefix: &str, cursor: Option<&str>) -> Result<ListPage, StoreError> {
            self.kv.list(prefix, cursor).await
        }

        fn has_local(&self) -> bool {
            self.channel.is_some()
        }

        async fn local_get(&self, key: &str) -> Option<Vec<u8>> {
            self.channel.as_ref()?.get(key).await
        }

        async fn local_put(&self, key: &str, value: Vec<u8>, ttl_s: u64) -> bool {
            match &self.channel {
                Some(c) => c.put(key, value, ttl_s).await,
                None => false,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_and_urls() {
        assert_eq!(
            origin_of("https://api.example.com/v1/heartbeat?x=1"),
            Some("https://api.example.com")
        );
        assert_eq!(
            origin_of("http://127.0.0.1:8787"),
            Some("http://127.0.0.1:8787")
        );
        assert_eq!(origin_of("http://h?q"), Some("http://h"));
        assert_eq!(origin_of("ftp://h/x"), None);
        assert_eq!(origin_of("https:///x"), None);
        assert_eq!(origin_of("/v1/count"), None);
        // Every key is one path segment: ':' and '/' are escaped.
        assert_eq!(
            channel_url("https://h", "r:demo:FRA/abc-1"),
            "https://h/__herenow/channel/r%3Ademo%3AFRA%2Fabc-1"
        );
    }

    fn run(p: &Probe, now: u64, origin: &str) -> Option<ProbeRun> {
        p.start(now, origin, "iso", now.to_le_bytes().to_vec())
    }

    #[test]
    fn the_channel_is_on_only_while_the_nonce_comes_back() {
        let p = Probe::new(ChannelMode::Auto);
        assert!(p.unsettled() && !p.on());
        let first = run(&p, 1_000, "https://a.example").expect("the first request probes");
        assert_eq!(first.url, "https://a.example/__herenow/probe/iso");
        // One probe at a time: a request meanwhile waits for it.
        assert_eq!(run(&p, 1_001, "https://a.example"), None);
        assert!(p.unsettled());
        p.finish(1_002, &first, Some(&first.nonce));
        assert!(!p.unsettled() && p.on());
        assert_eq!(p.channel_origin().as_deref(), Some("https://a.example"));
        // Not again for five minutes; then on the first origin, whatever the request's.
        assert_eq!(
            run(&p, 1_002 + PROBE_EVERY_MS - 1, "https://b.example"),
            None
        );
        let again = run(&p, 1_002 + PROBE_EVERY_MS, "https://b.example").expect("due");
        assert_eq!(again.origin, "https://a.example");
        // Other bytes, or a miss (workers.dev: put is a no-op), switch it off.
        p.finish(1_003 + PROBE_EVERY_MS, &again, Some(b"other"));
        assert!(!p.on() && p.channel_origin().is_none());
        let third = run(&p, 1_003 + 2 * PROBE_EVERY_MS, "https://a.example").expect("due");
        p.finish(1_004 + 2 * PROBE_EVERY_MS, &third, None);
        assert!(!p.on() && !p.unsettled());
    }

    #[test]
    fn an_abandoned_probe_is_retried_and_kv_never_probes() {
        let p = Probe::new(ChannelMode::Auto);
        let _lost = run(&p, 0, "https://a.example").expect("probe");
        assert_eq!(run(&p, PROBE_ABANDONED_MS - 1, "https://a.example"), None);
        assert!(run(&p, PROBE_ABANDONED_MS, "https://a.example").is_some());
        let kv = Probe::new(ChannelMode::Kv);
        assert!(!kv.unsettled());
        assert_eq!(run(&kv, 0, "https://a.example"), None);
        assert!(!kv.on());
    }
}
