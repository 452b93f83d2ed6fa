//! # herenow-edge
//!
//! The Workers glue of herenow: routing and handlers over plain values ([`app`]), the
//! configuration ([`config`]), the per-location channel's probe ([`cache`]), and — on wasm32
//! only — the `#[event(fetch)]` entry, the Workers KV implementation of
//! `herenow_core::store::Store` (`glue`, `kv`) and the channel over the Cache API
//! (`cache::Stores`).
//!
//! Handlers stay thin: parse → core → respond. Everything but the glue runs natively in
//! tests on the in-memory store.

#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod app;
pub mod cache;
pub mod config;
#[cfg(target_arch = "wasm32")]
mod glue;
#[cfg(target_arch = "wasm32")]
pub mod kv;
pub mod widget;
