//! # herenow-sim
//!
//! The discrete-event simulation that proves herenow's engine. It develops the product and
//! never ships: neither the client nor the edge depends on this crate, and it is the only
//! user of the PRNG (`fastrand`). The design and its numbers: `docs/design.md`.
//!
//! `cargo run -p herenow-sim --release --example simulate` runs it; [`run`] runs one
//! [`Scenario`] with a seed and returns a [`Report`], which prints as a table.
//!
//! # Model
//! - **Visitors** arrive as a Poisson process (rate = concurrent visitors / mean visit) at a
//!   uniformly chosen location and stay an exponential time. A visitor has one focused tab
//!   that heartbeats at the engine's interval (default 90 s) ±10 % while visible; goes
//!   away (the tab is hidden: one idle beacon, then silence, as the client's lifecycle
//!   does) and comes back; navigates (a
//!   single-page app changes page on the same tab; a multi-page site sends a leave and opens
//!   a new tab id a moment later); may open a second tab in the background and switch
//!   between the two; and at the end sends a leave per tab, or vanishes without one.
//! - **Locations and isolates**: `L` locations × `I` isolates; a request goes to a
//!   uniformly random isolate of the visitor's location ([`Routing::Random`]) or stays on
//!   its tab's isolate, moving with a stated chance per request ([`Routing::Sticky`]);
//!   isolates are evicted at random
//!   (exponential lifetimes) and replaced by empty ones with new ids. Like the edge, an
//!   isolate refreshes its view before a heartbeat, flushes after it, and publishes due
//!   changes from `waitUntil` — all through the shipped driver,
//!   `herenow_core::service::Service`, so what is measured is what ships. The main scenarios use one
//!   isolate per location — Cloudflare coalesces a Worker's traffic in a data center onto
//!   one shard server ("Shard and Conquer", 2025) — and the example also runs the medium
//!   scenario with 2 and 4 isolates per location, where random routing applies.
//! - **KV**: a write is visible at once at the writer's location and, at every other
//!   location, after a lag drawn uniformly from 0–60 s independently per (write, location);
//!   a reader sees the newest write visible to it; lists see the same. (Writing more often
//!   thus shows fresher data elsewhere; KV's edge caches, which pick a new value up only
//!   when their copy expires, would not — an oracle row measures that reading of the lag.)
//!   TTLs expire keys; every operation is counted, and so is every second write to a key
//!   within 1 s.
//! - **Designs** fed the same requests: (a) naive — one key per visitor, written on every
//!   heartbeat and beacon, deleted on leave, counted by list + a get per key; (b) the same
//!   keys with the state in metadata, counted by list alone; (c) herenow — the
//!   `herenow_core::engine::Presence` of each isolate, driven by its `Service`.
//! - **Truth**: a tab is live from its first heartbeat until its leave or a window after its
//!   last heartbeat or beacon; people online = visitors with a live tab — the engine's own
//!   definition (an idle beacon counts for a window; a full page load is a leave and a new
//!   tab). Every visitor's going online and offline is recorded at the exact millisecond,
//!   with its cause, so the truth is known per location at any past instant.
//! - **Where the error comes from** ([`Diagnostics`]): at every sample, herenow's error is
//!   split into its own location, each summary against the truth when it was written, and
//!   the summary's staleness (KV lag, the reader's listing reused, the time since the newest
//!   write); and oracles — exact counts as of the newest write KV shows, written at herenow's
//!   times, at the 20× write budget, every second, as often as design (a), or under a
//!   cache-like lag — give the floor of any design under this KV model.
//! - **Randomness**: visitors, routing and evictions, and sampling draw from separate
//!   streams, so that for a seed every setting and design sees the same visitors and is
//!   sampled at the same instants and locations (paired comparisons).

mod channel;
pub mod cli;
pub mod cost;
pub mod free;
mod kv;
mod report;
mod row;
mod run;
mod scenario;
mod truth;

pub use report::{
    DIAG_ROWS, DesignReport, Diagnostics, ORACLE_BUDGET, ORACLE_OWN_BUDGET, Report, Stat, Target,
    targets_across,
};
pub use row::{DESIGNS, PerVisitorHour, Row};
pub use run::run;
pub use scenario::{Channel, DEFAULT_MOVE_PROB, Routing, Scenario, Workload};
