//! The bill: Cloudflare's published prices and included quotas, and the free plan's daily
//! limits, in one place.
//!
//! Sources (Cloudflare docs, 2026): Workers pricing
//! (<https://developers.cloudflare.com/workers/platform/pricing/>) for requests, CPU time
//! and Workers KV; Workers KV limits
//! (<https://developers.cloudflare.com/kv/platform/limits/>) for the free plan's daily
//! operations; Workers limits (<https://developers.cloudflare.com/workers/platform/limits/>)
//! for the free plan's daily requests. The Workers Paid plan's $5 a month account base
//! ([`ACCOUNT_BASE_USD`]) is left out of every figure here: it is paid whatever the site
//! does, so the marginal bill is what the design decides.

use serde::Serialize;

/// Hours in a month, for monthly figures (365 × 24 / 12).
pub const MONTH_H: f64 = 730.0;

/// Workers Paid: the account's monthly base, left out of the bill and stated beside it.
pub const ACCOUNT_BASE_USD: f64 = 5.0;
/// Workers Paid: requests included a month.
pub const WORKERS_REQUESTS_INCLUDED: f64 = 10e6;
/// Workers Paid: dollars per million requests past the included ones.
pub const WORKERS_USD_PER_M_REQUESTS: f64 = 0.30;
/// Workers Paid: CPU milliseconds included a month.
pub const WORKERS_CPU_MS_INCLUDED: f64 = 30e6;
/// Workers Paid: dollars per million CPU milliseconds past the included ones.
pub const WORKERS_USD_PER_M_CPU_MS: f64 = 0.02;
/// Workers KV: reads included a month.
pub const KV_READS_INCLUDED: f64 = 10e6;
/// Workers KV: dollars per million reads past the included ones.
pub const KV_USD_PER_M_READS: f64 = 0.50;
/// Workers KV: writes included a month (and as many lists, and as many deletes).
pub const KV_WRITES_INCLUDED: f64 = 1e6;
/// Workers KV: dollars per million writes, lists or deletes past the included ones (each
/// kind has its own quota).
pub const KV_USD_PER_M_WRITES: f64 = 5.0;

/// Free plan, per day: requests.
pub const FREE_REQUESTS_PER_DAY: f64 = 100_000.0;
/// Free plan, per day: KV writes (and as many lists, and as many deletes).
pub const FREE_WRITES_PER_DAY: f64 = 1_000.0;
/// Free plan, per day: KV reads.
pub const FREE_READS_PER_DAY: f64 = 100_000.0;

/// How much of each billed thing, over some period (a month for [`dollars`], a day for
/// [`free_plan_fits`]).
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
pub struct Usage {
    /// Worker invocations: every request a client makes.
    pub requests: f64,
    /// CPU milliseconds the worker spends.
    pub cpu_ms: f64,
    /// KV gets.
    pub reads: f64,
    /// KV puts.
    pub writes: f64,
    /// KV list calls.
    pub lists: f64,
    /// KV deletes.
    pub deletes: f64,
}

impl Usage {
    /// The same usage `k` times over.
    #[must_use]
    pub fn times(self, k: f64) -> Self {
        Self {
            requests: self.requests * k,
            cpu_ms: self.cpu_ms * k,
            reads: self.reads * k,
            writes: self.writes * k,
            lists: self.lists * k,
            deletes: self.deletes * k,
        }
    }
}

/// A monthly bill in dollars, split as Cloudflare bills it.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
pub struct Dollars {
    /// Workers KV: reads, writes, lists and deletes.
    pub kv: f64,
    /// Workers: requests and CPU time.
    pub workers: f64,
    /// Both.
    pub total: f64,
}

/// Dollars for `x` per million past `included`; never negative.
fn over(x: f64, included: f64, usd_per_m: f64) -> f64 {
    (x - included).max(0.0) / 1e6 * usd_per_m
}

/// The marginal bill of a month's `usage` on Workers Paid: each quota subtracted, the
/// account base left out.
#[must_use]
pub fn dollars(usage: &Usage) -> Dollars {
    let kv = over(usage.reads, KV_READS_INCLUDED, KV_USD_PER_M_READS)
        + over(usage.writes, KV_WRITES_INCLUDED, KV_USD_PER_M_WRITES)
        + over(usage.lists, KV_WRITES_INCLUDED, KV_USD_PER_M_WRITES)
        + over(usage.deletes, KV_WRITES_INCLUDED, KV_USD_PER_M_WRITES);
    let workers = over(
        usage.requests,
        WORKERS_REQUESTS_INCLUDED,
        WORKERS_USD_PER_M_REQUESTS,
    ) + over(
        usage.cpu_ms,
        WORKERS_CPU_MS_INCLUDED,
        WORKERS_USD_PER_M_CPU_MS,
    );
    Dollars {
        kv,
        workers,
        total: kv + workers,
    }
}

/// KV dollars for `usage` at list price with no quota: what one more unit of usage costs
/// once past them, so that rates of differently sized runs compare.
#[must_use]
pub fn kv_list_price(usage: &Usage) -> f64 {
    (usage.reads * KV_USD_PER_M_READS
        + (usage.writes + usage.lists + usage.deletes) * KV_USD_PER_M_WRITES)
        / 1e6
}

/// Whether a day's `usage` stays within every daily limit of the free plan (CPU time is
/// limited per invocation there, not per day, and is not checked).
#[must_use]
pub fn free_plan_fits(day: &Usage) -> bool {
    free_plan_limits_over(day).is_empty()
}

/// The free plan's daily limits a day's `usage` goes over, by name ("requests", "reads",
/// "writes", "lists", "deletes"), in that order.
#[must_use]
pub fn free_plan_limits_over(day: &Usage) -> Vec<&'static str> {
    [
        ("requests", day.requests, FREE_REQUESTS_PER_DAY),
        ("reads", day.reads, FREE_READS_PER_DAY),
        ("writes", day.writes, FREE_WRITES_PER_DAY),
        ("lists", day.lists, FREE_WRITES_PER_DAY),
        ("deletes", day.deletes, FREE_WRITES_PER_DAY),
    ]
    .into_iter()
    .filter(|&(_, used, limit)| used > limit)
    .map(|(name, _, _)| name)
    .collect()
}

/// The CPU time of a request on Workers, in ms, from the host CPU time the driver's calls
/// took per request: those times [`WASM_CPU_FACTOR`], plus [`GLUE_CPU_MS`].
#[must_use]
pub fn workers_cpu_ms(host_engine_ms_per_request: f64) -> f64 {
    host_engine_ms_per_request * WASM_CPU_FACTOR + GLUE_CPU_MS
}

/// How much slower the engine runs as wasm in workerd than natively: an assumption, not
/// measured here (wasm compiled by V8's optimising tier commonly runs 1.5–2× native; the
/// upper end is taken).
pub const WASM_CPU_FACTOR: f64 = 2.0;

/// CPU per request outside the engine (the runtime's request and response, the worker
/// crate's and wasm-bindgen's glue), in ms: herenow's `GET /healthz` (the glue, no engine,
/// no KV) used 1,198 µs of server CPU per request in BENCHMARKS.md §1, measured over the
/// whole `wrangler dev` process group (its node proxy included), so this is an upper bound.
pub const GLUE_CPU_MS: f64 = 1.2;
