//! # herenow-core
//!
//! The pure heart of herenow: the v1 wire protocol and its validation ([`protocol`]), the
//! presence engine ([`engine`]) with its async driver over an injected [`store::Store`]
//! ([`service`], the one driver the edge, the simulation and the tests share), and the
//! site's history, records and spike alerts ([`history`], with its own driver). The design
//! is written once, in `docs/design.md`; the simulation that proves the engine is the
//! `herenow-sim` crate, which nothing that ships depends on.
//!
//! Nothing here depends on wasm-bindgen, web-sys or the `worker` crate; the clock is
//! injected as `now_ms` arguments and the store as a trait, so everything runs natively
//! and deterministically in tests.

pub mod engine;
pub mod error;
pub mod history;
pub mod limits;
pub mod protocol;
pub mod service;
pub mod store;
pub mod token;

pub use error::{Code, Error};
