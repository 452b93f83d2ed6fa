//! The free plan: how many people a small site can keep online around the clock within
//! every daily limit.
//!
//! Requests grow linearly with people, but KV writes and lists do not (an isolate batches
//! its changes into at most one write a second, and lists on a timer), so scaling a run's
//! per-visitor rates would be wrong. Instead the small site's visitor count is searched:
//! each probe simulates the site with that many visits in progress and checks a day's
//! worth of its measured usage against every limit; the answer is the people online on
//! average in the largest probe that fits.

use std::collections::BTreeMap;

use super::cost::{self, Usage};
use super::report::Report;
use super::run::run;
use super::scenario::Scenario;

/// How long each probe is measured (after the small scenario's warm-up).
pub const PROBE_MEASURE_MS: u64 = 2 * 3_600_000;

/// The first probe's visits in progress; the search doubles from here. Not 1: a site of
/// one or two visits is a different regime (an isolate often empty, evicted, starting
/// over), where usage does not grow with people and a probe can go over a limit that
/// larger ones stay within (seen: lists at 1 visit, seed 3), which would stop the
/// doubling at 0.
const FIRST_PROBE: u64 = 8;

/// The most visits in progress searched.
const MAX_VISITS: u64 = 4_096;

/// A day's usage of design `d` (0 naive, 1 metadata, 2 herenow) in `r`.
#[must_use]
pub fn daily_usage(r: &Report, d: usize) -> Usage {
    let k = 24.0 / r.hours.max(1e-9);
    let des = &r.designs[d];
    Usage {
        requests: r.client_requests as f64,
        cpu_ms: 0.0,
        reads: des.reads as f64,
        writes: des.writes as f64,
        lists: des.lists as f64,
        deletes: des.deletes as f64,
    }
    .times(k)
}

/// The free plan's figure for one design.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct FreePlan {
    /// The most people online around the clock within every daily limit.
    pub people: f64,
    /// The limits the next probe (one more visit in progress) goes over: what stops the
    /// site from growing (empty if the search reached its largest probe).
    pub limits: Vec<&'static str>,
}

/// Per design (0 naive, 1 metadata, 2 herenow): the most people online around the clock
/// within the free plan's daily limits, for a one-location site with `template`'s
/// workload, engine settings, isolates and routing (probes measured `measure_ms` each).
#[must_use]
pub fn free_plan_max_visitors(template: &Scenario, seed: u64, measure_ms: u64) -> [f64; 3] {
    free_plan_search(template, seed, measure_ms).map(|f| f.people)
}

/// [`free_plan_max_visitors`], with the limits that bind.
#[must_use]
pub fn free_plan_search(template: &Scenario, seed: u64, measure_ms: u64) -> [FreePlan; 3] {
    let mut probes: BTreeMap<u64, Report> = BTreeMap::new();
    let mut probe = |n: u64| -> Report {
        probes
            .entry(n)
            .or_insert_with(|| {
                let mut sc = Scenario::small();
                sc.visitors = n;
                sc.isolates_per_location = template.isolates_per_location;
                sc.routing = template.routing;
                sc.move_prob = template.move_prob;
                sc.engine = template.engine.clone();
                sc.workload = template.workload.clone();
                sc.max_lag_ms = template.max_lag_ms;
                sc.measure_ms = measure_ms;
                sc.leave_samples = 20;
                run(&sc, seed)
            })
            .clone()
    };
    let mut out: [FreePlan; 3] = Default::default();
    for (d, o) in out.iter_mut().enumerate() {
        let fits = |r: &Report| cost::free_plan_fits(&daily_usage(r, d));
        // Double until a probe fails, then bisect: `lo` fits (0 trivially), `hi` does not.
        let (mut lo, mut hi) = (0, FIRST_PROBE);
        while hi <= MAX_VISITS && fits(&probe(hi)) {
            lo = hi;
            hi *= 2;
        }
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2;
            if fits(&probe(mid)) {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        o.people = if lo == 0 { 0.0 } else { probe(lo).mean_online };
        if hi <= MAX_VISITS {
            o.limits = cost::free_plan_limits_over(&daily_usage(&probe(hi), d));
        }
    }
    out
}
