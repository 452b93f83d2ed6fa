//! # herenow-client
//!
//! The browser half of herenow: keeps a visitor id (cookie `herenow_vid`, or memory only),
//! sends heartbeats on a jittered timer, follows the page lifecycle without ever touching
//! `unload` (back/forward-cache safe), backs off on failures, and writes counts into
//! `[data-herenow]` elements, a `herenow:count` event and an `onCount` callback.
//!
//! JavaScript sees [`start`] and [`Handle`]; the decisions live in `machine`, a pure
//! events-in, actions-out state machine with its backoff arithmetic (tested natively with
//! `cargo test -p herenow-client`), and the other modules only wire it to the browser.

mod cookie;
mod dom;
mod error;
mod events;
mod ids;
mod lifecycle;
mod machine;
mod options;
mod schedule;
mod transport;
mod web;

use std::rc::Rc;

use js_sys::Promise;
use wasm_bindgen::prelude::wasm_bindgen;
use wasm_bindgen::{JsCast, JsValue};

pub use error::Error;
use lifecycle::Client;
use machine::Event;
use options::Options;
use transport::JsPromise;

#[wasm_bindgen(typescript_custom_section)]
const TS_TYPES: &str = r#"
/** A count object from the herenow API. */
export interface HerenowCount {
  online: number; tabs: number; members: number; guests: number; idle: number;
  page?: number; pages: { page: string; online: number }[];
  window_s: number; as_of: number; next_heartbeat_ms?: number;
}
/** Options of `start`. */
export interface HerenowOptions {
  /** API base URL, or "" for the page's own origin. */
  endpoint: string;
  /** The site name. */
  site: string;
  /** The page path counted; pins it (default: location.pathname, following same-document navigations). */
  page?: string;
  /** A member token, or a (possibly async) function returning one. */
  memberToken?: string | (() => string | null | undefined | Promise<string | null | undefined>);
  /** false: keep the visitor id in memory only (default: a cookie unless Global Privacy Control). */
  cookie?: boolean;
  /** The cookie's Max-Age in seconds, renewed by each heartbeat (default 1800: 30 minutes). */
  cookieMaxAge?: number;
  /** false: watch only: show the counts without being counted (no heartbeat, no cookie). */
  track?: boolean;
  /** Called with every count. */
  onCount?: (count: HerenowCount) => void;
}
"#;

/// A running client, as returned by [`start`].
#[wasm_bindgen]
#[derive(Debug)]
pub struct Handle {
    client: Rc<Client>,
}

#[wasm_bindgen]
impl Handle {
    /// The last count object received, or a fresh one from `GET /v1/count`.
    #[wasm_bindgen(unchecked_return_type = "Promise<HerenowCount>")]
    pub fn count(&self) -> Promise {
        if let Some(count) = self.client.last_count() {
            return JsPromise::resolved(&count).unchecked_into();
        }
        self.client.fetch_count().unchecked_into()
    }

    /// Counts this tab on `path` from now on (a heartbeat at once), for routers that say
    /// where they are; stops following `location`. A path not starting with `/` is ignored.
    #[wasm_bindgen(js_name = setPage)]
    pub fn set_page(&self, path: String) {
        self.client.set_page(path);
    }

    /// Stops for good: sends a leave, removes the listeners, cancels the timer and any fetch.
    pub fn stop(&self) {
        self.client.feed(Event::Stop);
    }
}

/// Starts counting this page: `start({ endpoint, site, page?, memberToken?, cookie?,
/// cookieMaxAge?, onCount?, track? })`. Resolves to a [`Handle`]; rejects with a JS `Error` naming
/// the missing or invalid option (or a missing browser feature). Never throws.
#[wasm_bindgen(unchecked_return_type = "Promise<Handle>")]
pub fn start(
    #[wasm_bindgen(unchecked_param_type = "HerenowOptions")] options: &JsValue,
) -> Promise {
    match start_client(options) {
        Ok(handle) => JsPromise::resolved(&JsValue::from(handle)),
        Err(e) => JsPromise::rejected(&JsValue::from(e)),
    }
    .unchecked_into()
}

/// [`start`] for Rust callers.
///
/// # Errors
/// A missing or invalid option, or a missing browser feature.
pub fn start_client(options: &JsValue) -> Result<Handle, Error> {
    let options = Options::from_js(options)?;
    Ok(Handle {
        client: Client::start(options)?,
    })
}

/// A small free-list allocator instead of std's dlmalloc: the client allocates little and
/// every byte ships to every browser.
#[cfg(target_arch = "wasm32")]
#[global_allocator]
static ALLOCATOR: lol_alloc::LockedAllocator<lol_alloc::FreeListAllocator> =
    lol_alloc::LockedAllocator::new(lol_alloc::FreeListAllocator::new());
