//! # herenow-client
//!
//! The browser half of herenow's decisions: the page-lifecycle machine (`machine`), a pure
//! events-in, actions-out state machine with its backoff arithmetic, tested natively with
//! `cargo test -p herenow-client`. Compiled to a wasm with no imports, it exports a handful
//! of functions over numbers only ([`exports`]), so no binding glue ships: the client's
//! JavaScript (`client/js/client.js`) does the browser wiring — listeners, the timer,
//! fetch and `sendBeacon`, the cookie, the DOM — and asks the machine what to do next.
//!
//! Why the split: every byte ships to every visitor. Moving the wiring out of Rust took the
//! script tag's load from 19.4 KB to a few KB gzip and one request fewer (bench/README.md ›
//! Client); what stays here is what is worth testing as a pure function of its inputs.

mod exports;
mod machine;

pub use exports::{hn_action, hn_event, hn_in_flight, hn_new};

/// A small free-list allocator instead of std's dlmalloc: the machine allocates only its
/// action lists, and every byte ships to every browser.
#[cfg(target_arch = "wasm32")]
#[global_allocator]
static ALLOCATOR: lol_alloc::LockedAllocator<lol_alloc::FreeListAllocator> =
    lol_alloc::LockedAllocator::new(lol_alloc::FreeListAllocator::new());
