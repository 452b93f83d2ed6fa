//! One result line per scenario × design × isolates × routing: what `--json` prints, and
//! what the human-readable tables and their targets are made of.

use serde::Serialize;

use super::cost::{self, Dollars, GLUE_CPU_MS, MONTH_H, Usage};
use super::free::FreePlan;
use super::report::Report;

/// Operations per visitor-hour (a visitor-hour is one person online for an hour).
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
pub struct PerVisitorHour {
    /// KV puts.
    pub writes: f64,
    /// KV list calls.
    pub lists: f64,
    /// KV gets.
    pub reads: f64,
    /// KV deletes.
    pub deletes: f64,
    /// Worker requests clients make (heartbeats, idle beacons, leaves).
    pub requests: f64,
}

/// One design's figures in one run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Row {
    /// small, medium or large.
    pub scenario: String,
    /// herenow, naive (design a) or metadata (design b).
    pub design: &'static str,
    /// Isolates per location.
    pub isolates: usize,
    /// random or sticky.
    pub routing: &'static str,
    /// How a location's isolates exchange records: `kv` (a `workers.dev` deployment) or
    /// `cache` (the Cache API on a custom domain).
    pub channel: &'static str,
    /// Calls to the per-location channel per Worker request (free; each counts against the
    /// request's subrequest limit, 50 on the free plan).
    pub channel_calls_per_request: f64,
    /// Sticky routing's chance per request of moving to another isolate.
    pub move_prob: f64,
    /// The heartbeat interval, in seconds.
    pub heartbeat_s: f64,
    /// The presence window, in seconds.
    pub window_s: f64,
    /// The seed.
    pub seed: u64,
    /// Minutes measured.
    pub measure_min: f64,
    /// People online on average (the truth).
    pub online_mean: f64,
    /// Operations per visitor-hour.
    pub per_visitor_hour: PerVisitorHour,
    /// Estimated Workers CPU time per request, in ms (see [`cost::workers_cpu_ms`]; the
    /// naive designs, not run as code here, get the glue's alone).
    pub cpu_ms_per_request: f64,
    /// The scenario's marginal monthly bill with `online_mean` people online around the
    /// clock (730 h), quotas subtracted, the $5 account base left out.
    pub dollars_per_month: Dollars,
    /// The same at exactly 1,000 people online around the clock: the per-visitor-hour
    /// rates scaled, quotas subtracted.
    pub dollars_per_1000_visitors_month: f64,
    /// The KV and Workers parts of `dollars_per_1000_visitors_month`.
    pub dollars_per_1000_visitors_month_split: Dollars,
    /// KV dollars per visitor-hour at list price (no quota), times 1,000.
    pub kv_usd_per_1000_visitor_hours: f64,
    /// The $5 monthly account base of Workers Paid, left out of every figure above.
    pub account_base_usd_excluded: f64,
    /// How many times fewer writes per visitor-hour than the naive design (a).
    pub writes_vs_naive: f64,
    /// The most people online around the clock within every daily limit of the free plan,
    /// for this workload, these settings, isolates and routing at one location (a small
    /// site); `None` where not computed.
    pub free_plan_max_visitors: Option<f64>,
    /// The free plan's daily limits that stop more people (see
    /// [`crate::free::FreePlan::limits`]); `None` where not computed.
    pub free_plan_limits: Option<Vec<&'static str>>,
    /// |count − truth| / truth at the 99th percentile, in %.
    pub error_p99_pct: f64,
    /// The same for the oracle at the same write budget as herenow's (its record writes,
    /// not its members' last-seen values; at most the 20× budget, evenly spaced): the floor
    /// the error target is judged against.
    pub oracle_p99_pct: f64,
    /// The same for the oracle at the 20× write budget (the floor of any design that meets
    /// the write target).
    pub oracle_20x_p99_pct: f64,
    /// mean((count − truth) / truth), in %.
    pub bias_pct: f64,
    /// Seconds until a leave stops counting at its own location, p99.
    pub leave_own_p99_s: f64,
    /// Seconds until a leave shows at another location, p99 (`None` with one location).
    pub leave_elsewhere_p99_s: Option<f64>,
    /// Seconds until another visitor's arrival or leave shows on an open page at its
    /// location, p99 over (change, page) pairs (herenow only).
    pub others_change_shown_p99_s: Option<f64>,
    /// (change, page) pairs behind `others_change_shown_p99_s`.
    pub others_change_shown_n: usize,
    /// Writes to a key less than 1 s after the previous one.
    pub violations: u64,
    /// Wall-clock seconds the run took.
    pub runtime_s: f64,
}

/// The JSON names of the designs, in the order of [`Report::designs`].
pub const DESIGNS: [&str; 3] = ["naive", "metadata", "herenow"];

impl Report {
    /// The result line of design `d` (0 naive, 1 metadata, 2 herenow), with the free plan's
    /// figure for it if computed.
    #[must_use]
    pub fn row(&self, d: usize, seed: u64, free_plan: Option<&FreePlan>) -> Row {
        let sc = &self.scenario;
        let des = &self.designs[d];
        let vh = self.visitor_hours.max(1e-9);
        let pv = PerVisitorHour {
            writes: des.writes as f64 / vh,
            lists: des.lists as f64 / vh,
            reads: des.reads as f64 / vh,
            deletes: des.deletes as f64 / vh,
            requests: self.client_requests as f64 / vh,
        };
        let cpu_ms = if d == 2 {
            cost::workers_cpu_ms(self.host_cpu_ms_per_request)
        } else {
            GLUE_CPU_MS
        };
        let per_vh = Usage {
            requests: pv.requests,
            cpu_ms: pv.requests * cpu_ms,
            reads: pv.reads,
            writes: pv.writes,
            lists: pv.lists,
            deletes: pv.deletes,
        };
        let month = |people: f64| cost::dollars(&per_vh.times(people * MONTH_H));
        let per_1000 = month(1_000.0);
        let multi = sc.locations > 1;
        Row {
            scenario: sc.name.clone(),
            design: DESIGNS[d],
            isolates: sc.isolates_per_location,
            routing: sc.routing.name(),
            channel: sc.channel.name(),
            channel_calls_per_request: if d == 2 {
                (self.channel_calls.0 + self.channel_calls.1) as f64
                    / self.client_requests.max(1) as f64
            } else {
                0.0
            },
            move_prob: sc.move_prob,
            heartbeat_s: sc.engine.heartbeat_ms as f64 / 1000.0,
            window_s: sc.engine.window_ms as f64 / 1000.0,
            seed,
            measure_min: sc.measure_ms as f64 / 60_000.0,
            online_mean: self.mean_online,
            per_visitor_hour: pv,
            cpu_ms_per_request: cpu_ms,
            dollars_per_month: month(vh / self.hours.max(1e-9)),
            dollars_per_1000_visitors_month: per_1000.total,
            dollars_per_1000_visitors_month_split: per_1000,
            kv_usd_per_1000_visitor_hours: cost::kv_list_price(&per_vh) * 1_000.0,
            account_base_usd_excluded: cost::ACCOUNT_BASE_USD,
            writes_vs_naive: self.naive().writes as f64 / (des.writes as f64).max(1.0),
            free_plan_max_visitors: free_plan.map(|f| f.people),
            free_plan_limits: free_plan.map(|f| f.limits.clone()),
            error_p99_pct: des.err_pct.p99,
            oracle_p99_pct: self.floor().p99,
            oracle_20x_p99_pct: self.floor_20x().p99,
            bias_pct: des.bias_pct,
            leave_own_p99_s: des.leave_own.p99,
            leave_elsewhere_p99_s: multi.then_some(des.leave_else.p99),
            others_change_shown_p99_s: (d == 2 && self.others_shown.n > 0)
                .then_some(self.others_shown.p99),
            others_change_shown_n: if d == 2 { self.others_shown.n } else { 0 },
            violations: des.violations,
            runtime_s: self.runtime_s,
        }
    }
}
