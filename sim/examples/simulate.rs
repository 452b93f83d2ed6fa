//! Runs the presence simulation and prints, per scenario and routing, a table over isolates
//! per location with the targets beside it (or, with `--json`, one JSON object per line
//! per scenario × design × isolates × routing). `make simulate ARGS="…"` runs it.
//!
//! ```text
//! cargo run -p herenow-sim --release --example simulate                  # the full run, seed 1
//! cargo run -p herenow-sim --release --example simulate -- --only medium --isolates 8 --routing sticky
//! cargo run -p herenow-sim --release --example simulate -- --only small --heartbeat-s 60 --window-s 180 --json
//! ```
//! Flags: see `herenow_sim::cli::USAGE`; a bad flag or value exits with code 2.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::Instant;

use herenow_core::history::budget::{self, BudgetReport, BudgetRun, TARGET_WRITES_PER_DAY};
use herenow_sim::cli::{self, Options, SWEEP};
use herenow_sim::free::{FreePlan, PROBE_MEASURE_MS, free_plan_search};
use herenow_sim::{Channel, Report, Routing, Row, Scenario};

/// Measure times of the full run's sweeps, chosen to keep it near 10 minutes on 2 cores
/// with the engine of 2026-12 (medium at 32 isolates is the slowest run).
const MEDIUM_SWEEP_MEASURE_MS: u64 = 3 * 60_000;
/// The large scenario runs at one isolate per location only in the full run: at 8 and more
/// it takes tens of GB of memory and many minutes (`--only large --isolates N` runs it).
const LARGE_SWEEP: [usize; 1] = [1];
const LARGE_SWEEP_MEASURE_MS: u64 = 60_000;

struct Job {
    sc: Scenario,
    /// Routings this run stands for (with one isolate both are the same run).
    routings: Vec<Routing>,
}

fn main() {
    let opts = match cli::parse(std::env::args().skip(1)) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("simulate: {e}\n{}", cli::USAGE);
            std::process::exit(2);
        }
    };
    if opts.help {
        println!("{}", cli::USAGE);
        return;
    }
    let started = Instant::now();
    let planned = plan(&opts);
    let results = run_all(&planned, &opts, started);
    let (jobs, reports): (Vec<Job>, Vec<Report>) = planned
        .into_iter()
        .zip(results)
        .filter_map(|(j, r)| r.map(|r| (j, r)))
        .unzip();
    // The free plan's figure: always at one isolate (cached per settings), for every row
    // with --free-plan.
    let mut free: HashMap<(usize, Routing, Channel), [FreePlan; 3]> = HashMap::new();
    for (job, _) in jobs.iter().zip(&reports) {
        let i = job.sc.isolates_per_location;
        if i == 1 || opts.free_plan {
            for &routing in &job.routings {
                // One isolate: both routings are the same run.
                let routing = if i == 1 { Routing::Random } else { routing };
                free.entry((i, routing, job.sc.channel)).or_insert_with(|| {
                    eprintln!(
                        "[{:>6.1} s] free plan: searching visitors at {i} isolate(s), {} routing",
                        started.elapsed().as_secs_f64(),
                        routing.name()
                    );
                    let t = job.sc.clone().with_routing(routing, opts.move_prob);
                    free_plan_search(&t, opts.seed, PROBE_MEASURE_MS)
                });
            }
        }
    }
    let mut rows: Vec<(Report, Vec<Row>)> = Vec::new();
    for (job, r) in jobs.iter().zip(reports) {
        for &routing in &job.routings {
            let mut r = r.clone();
            r.scenario.routing = routing;
            let i = job.sc.isolates_per_location;
            let f = free.get(&(
                i,
                if i == 1 { Routing::Random } else { routing },
                job.sc.channel,
            ));
            let rs = (0..3)
                .map(|d| r.row(d, opts.seed, f.map(|f| &f[d])))
                .collect();
            rows.push((r, rs));
        }
    }
    let budget = history_budget(opts.seed);
    eprintln!(
        "[{:>6.1} s] the history's KV budget: {} runs",
        started.elapsed().as_secs_f64(),
        budget.len()
    );
    if opts.json {
        for (_, rs) in &rows {
            for row in rs {
                match serde_json::to_string(row) {
                    Ok(s) => println!("{s}"),
                    Err(e) => eprintln!("simulate: cannot write a row as JSON: {e}"),
                }
            }
        }
        for (name, run, r) in &budget {
            println!("{}", budget_json(name, run, r));
        }
    } else {
        print_tables(&rows, &opts);
        if opts.diagnose {
            for (r, rs) in &rows {
                println!(
                    "== where the error comes from: {} I={} {} {} ==\n{}",
                    r.scenario.name, rs[2].isolates, rs[2].routing, rs[2].channel, r.diagnostics
                );
            }
        }
        println!(
            "== history, records and alerts: KV writes per site per day (target ≤ {TARGET_WRITES_PER_DAY}), one simulated day, KV lag up to 60 s =="
        );
        for (name, _, r) in &budget {
            println!("   {name}: {}", r.line());
        }
    }
    eprintln!(
        "[{:>6.1} s] done (seed {})",
        started.elapsed().as_secs_f64(),
        opts.seed
    );
}

/// The history's KV budget (`herenow_core::history::budget`): one simulated day of one
/// site at a 2,000-person peak with two alerts, at 20 isolates in 5 locations evicted
/// every 2 h on average, and at 100 isolates in 20 locations evicted every 30 min. About a
/// second in a release build.
fn history_budget(seed: u64) -> Vec<(&'static str, BudgetRun, BudgetReport)> {
    [
        (
            "20 isolates in 5 locations, evicted every 2 h",
            20,
            5,
            7_200,
        ),
        (
            "100 isolates in 20 locations, evicted every 30 min",
            100,
            20,
            1_800,
        ),
    ]
    .into_iter()
    .map(|(name, isolates, locations, evict_mean_s)| {
        let run = BudgetRun {
            isolates,
            locations,
            evict_mean_s,
            seed,
            ..BudgetRun::default()
        };
        let report = budget::run(&run);
        (name, run, report)
    })
    .collect()
}

/// One `--json` line of [`history_budget`]: `{"history_budget": {…}}`.
fn budget_json(name: &str, run: &BudgetRun, r: &BudgetReport) -> serde_json::Value {
    serde_json::json!({ "history_budget": {
        "name": name,
        "isolates": run.isolates,
        "locations": run.locations,
        "evict_mean_s": run.evict_mean_s,
        "writes_per_day": r.writes_per_day,
        "max_writes_in_a_day": r.max_writes_in_a_day,
        "target_writes_per_day": TARGET_WRITES_PER_DAY,
        "pass": r.max_writes_in_a_day <= TARGET_WRITES_PER_DAY,
        "reads_per_day": r.reads_per_day,
        "alert_calls": r.alert_calls,
        "crossings": r.expected_calls,
    }})
}

/// The runs the options ask for.
fn plan(o: &Options) -> Vec<Job> {
    let routings = |_: usize| -> Vec<Routing> {
        o.routing
            .map_or_else(|| vec![Routing::Random, Routing::Sticky], |r| vec![r])
    };
    let mut jobs = Vec::new();
    let mut add = |sc: Scenario, isolates: &[usize], measure_ms: Option<u64>| {
        for &i in isolates {
            let rs = routings(i);
            let channels = o
                .channel
                .map_or_else(|| vec![Channel::Kv, Channel::Cache], |c| vec![c]);
            for ch in channels {
                let mut sc = o
                    .apply(sc.clone())
                    .with_isolates(i)
                    .with_channel(ch, o.channel_miss);
                if let Some(ms) = o.measure_min.map(|m| (m * 60_000.0) as u64).or(measure_ms) {
                    sc = sc.with_measure(ms);
                }
                if i == 1 {
                    // One isolate: random and sticky routing are the same run.
                    jobs.push(Job {
                        sc,
                        routings: rs.clone(),
                    });
                } else {
                    for &r in &rs {
                        jobs.push(Job {
                            sc: sc.clone().with_routing(r, o.move_prob),
                            routings: vec![r],
                        });
                    }
                }
            }
        }
    };
    if let Some(name) = &o.only {
        let sc = Scenario::named(name).unwrap_or_else(Scenario::small);
        add(sc, &[o.isolates.unwrap_or(1)], None);
    } else {
        let pick = |sweep: &[usize]| o.isolates.map_or(sweep.to_vec(), |i| vec![i]);
        add(Scenario::small(), &[o.isolates.unwrap_or(1)], None);
        add(
            Scenario::medium(),
            &pick(&SWEEP),
            Some(MEDIUM_SWEEP_MEASURE_MS),
        );
        add(
            Scenario::large(),
            &pick(&LARGE_SWEEP),
            Some(LARGE_SWEEP_MEASURE_MS),
        );
    }
    jobs
}

/// Runs every job on `o.jobs` threads, the costliest first, with progress on stderr.
fn run_all(jobs: &[Job], o: &Options, started: Instant) -> Vec<Option<Report>> {
    let cost = |j: &Job| {
        let sc = &j.sc;
        sc.visitors as f64
            * (sc.warmup_ms + sc.measure_ms) as f64
            * (sc.isolates_per_location as f64).powf(1.5)
    };
    let mut order: Vec<usize> = (0..jobs.len()).collect();
    order.sort_by(|&a, &b| cost(&jobs[b]).total_cmp(&cost(&jobs[a])));
    let next = AtomicUsize::new(0);
    let out: Mutex<Vec<Option<Report>>> = Mutex::new(vec![None; jobs.len()]);
    thread::scope(|s| {
        for _ in 0..o.jobs.min(jobs.len()) {
            s.spawn(|| {
                loop {
                    let k = next.fetch_add(1, Ordering::Relaxed);
                    let Some(&j) = order.get(k) else { break };
                    let sc = &jobs[j].sc;
                    eprintln!(
                        "[{:>6.1} s] running {} ({} visits, {} location(s) × {} isolate(s), {} routing, peers through {}, {:.0} min measured)",
                        started.elapsed().as_secs_f64(),
                        sc.name,
                        sc.visitors,
                        sc.locations,
                        sc.isolates_per_location,
                        sc.routing.name(),
                        sc.channel.name(),
                        sc.measure_ms as f64 / 60_000.0
                    );
                    let r = herenow_sim::run(sc, o.seed);
                    eprintln!(
                        "[{:>6.1} s] done {} I={} {} {} in {:.1} s",
                        started.elapsed().as_secs_f64(),
                        sc.name,
                        sc.isolates_per_location,
                        sc.routing.name(),
                        sc.channel.name(),
                        r.runtime_s
                    );
                    if let Ok(mut v) = out.lock() {
                        v[j] = Some(r);
                    }
                }
            });
        }
    });
    out.into_inner().unwrap_or_default()
}

fn pass(ok: bool) -> &'static str {
    if ok { "PASS" } else { "FAIL" }
}

fn opt(x: Option<f64>, prec: usize) -> String {
    x.map_or_else(|| "–".into(), |v| format!("{v:.prec$}"))
}

/// Per scenario and routing: a table over isolates of herenow's figures (with design (a)'s
/// beside where it matters), then the targets.
fn print_tables(rows: &[(Report, Vec<Row>)], o: &Options) {
    let mut groups: Vec<(String, &'static str, &'static str)> = Vec::new();
    for (_, rs) in rows {
        let key = (rs[2].scenario.clone(), rs[2].routing, rs[2].channel);
        if !groups.contains(&key) {
            groups.push(key);
        }
    }
    for (name, routing, channel) in groups {
        let g: Vec<&(Report, Vec<Row>)> = rows
            .iter()
            .filter(|(_, rs)| {
                rs[2].scenario == name && rs[2].routing == routing && rs[2].channel == channel
            })
            .collect();
        let first = &g[0].0;
        let sc = &first.scenario;
        let channel = match channel {
            "cache" => format!(
                "peers through the Cache API (custom domain; reads miss {:.0} %)",
                100.0 * sc.channel_miss
            ),
            _ => "peers through KV (workers.dev)".to_owned(),
        };
        println!(
            "== {name}, {routing} routing{}, {channel}: {} visits in progress, {} location(s), {:.0} min measured; heartbeat {} s, window {} s; seed {} ==",
            if routing == "sticky" {
                format!(" (move chance {} per request)", sc.move_prob)
            } else {
                String::new()
            },
            sc.visitors,
            sc.locations,
            sc.measure_ms as f64 / 60_000.0,
            sc.engine.heartbeat_ms as f64 / 1000.0,
            sc.engine.window_ms as f64 / 1000.0,
            o.seed
        );
        println!(
            "   {:>3} {:>8} {:>7} {:>7} {:>8} {:>7} {:>9} {:>9} {:>8} {:>8} {:>7} {:>7} {:>7} {:>7} {:>7} {:>7} {:>7} {:>6} {:>7}",
            "I",
            "online",
            "writes",
            "lists",
            "reads",
            "req",
            "KV$/kvh",
            "$/1k·mo",
            "KV part",
            "(a) $",
            "w ×(a)",
            "err99%",
            "orc99%",
            "bias%",
            "own99s",
            "else99",
            "shown99",
            "free",
            "cache/r"
        );
        for (_, rs) in &g {
            let (h, a) = (&rs[2], &rs[0]);
            let p = &h.per_visitor_hour;
            println!(
                "   {:>3} {:>8.1} {:>7.2} {:>7.2} {:>8.1} {:>7.1} {:>9.3} {:>9.2} {:>8.2} {:>8.2} {:>7.1} {:>7.2} {:>7.2} {:>+7.2} {:>7.2} {:>7} {:>7} {:>6} {:>7.2}",
                h.isolates,
                h.online_mean,
                p.writes,
                p.lists,
                p.reads,
                p.requests,
                h.kv_usd_per_1000_visitor_hours,
                h.dollars_per_1000_visitors_month,
                h.dollars_per_1000_visitors_month_split.kv,
                a.dollars_per_1000_visitors_month,
                h.writes_vs_naive,
                h.error_p99_pct,
                h.oracle_p99_pct,
                h.bias_pct,
                h.leave_own_p99_s,
                opt(h.leave_elsewhere_p99_s, 1),
                opt(h.others_change_shown_p99_s, 1),
                opt(h.free_plan_max_visitors, 1),
                h.channel_calls_per_request,
            );
        }
        println!(
            "   (per visitor-hour: writes, lists, reads, requests; KV$/kvh: KV dollars per 1,000 visitor-hours at list price; \
             $/1k·mo: marginal bill per 1,000 people online around the clock a month, quotas subtracted, the $5 base left out, \
             and its KV part; (a) $: the same for design (a); w ×(a): times fewer writes than (a); err99%/orc99%: count error \
             p99, herenow and the oracle at the same write budget (herenow's record writes, not its members' last-seen values, at most the 20× budget, evenly spaced); own99s/else99/shown99: a leave at its own location, \
             elsewhere, and another visitor's change on an open page, p99 s; free: people online within the free plan; \
             cache/r: Cache API calls per request, free but counted against the subrequest limit)"
        );
        for line in targets(&g) {
            println!("   {line}");
        }
        println!();
    }
}

/// The targets of one scenario and routing over its isolates.
fn targets(g: &[&(Report, Vec<Row>)]) -> Vec<String> {
    let h: Vec<&Row> = g.iter().map(|(_, rs)| &rs[2]).collect();
    let sc = &g[0].0.scenario;
    let mut t = Vec::new();
    let at = |i: usize| h.iter().find(|r| r.isolates == i);
    if sc.name != "small" {
        if let (Some(one), Some(many)) = (at(1), at(32)) {
            let ratio =
                many.kv_usd_per_1000_visitor_hours / one.kv_usd_per_1000_visitor_hours.max(1e-12);
            t.push(format!(
                "[{}] KV $/visitor-hour at 32 isolates ≤ 2× at 1: {:.3} vs {:.3} per 1,000 visitor-hours = {ratio:.1}×",
                pass(ratio <= 2.0),
                many.kv_usd_per_1000_visitor_hours,
                one.kv_usd_per_1000_visitor_hours
            ));
        }
        let worst = h
            .iter()
            .map(|r| (r.writes_vs_naive, r.isolates))
            .min_by(|a, b| a.0.total_cmp(&b.0));
        if let Some((w, i)) = worst {
            t.push(format!(
                "[{}] writes ≥ 20× fewer than design (a) at every isolate count: least {w:.1}× (at {i})",
                pass(w >= 20.0)
            ));
        }
        if let Some(r) = at(8) {
            t.push(format!(
                "[{}] marginal bill ≤ $25 per 1,000 visitors-month at 8 isolates: ${:.2} (KV ${:.2}, Workers ${:.2}; $5 base left out)",
                pass(r.dollars_per_1000_visitors_month <= 25.0),
                r.dollars_per_1000_visitors_month,
                r.dollars_per_1000_visitors_month_split.kv,
                r.dollars_per_1000_visitors_month_split.workers
            ));
        }
    } else if let Some(f) = h[0].free_plan_max_visitors {
        t.push(format!(
            "[{}] free plan ≥ 50 people online around the clock (small site, these settings): {f:.1} (more would go over the daily {})",
            pass(f >= 50.0),
            h[0].free_plan_limits.as_ref().map_or_else(|| "–".into(), |l| l.join(" and "))
        ));
    }
    for r in &h {
        let err_ok = r.error_p99_pct <= 1.25 * r.oracle_p99_pct;
        let bias_ok = r.bias_pct.abs() <= 0.5;
        t.push(format!(
            "[{}] I={}: error p99 ≤ 1.25× oracle p99 at herenow's write budget, |bias| ≤ 0.5 %: {:.2}% vs 1.25 × {:.2}% = {:.2}%, bias {:+.2}% (oracle at the 20× budget: {:.2}%)",
            pass(err_ok && bias_ok),
            r.isolates,
            r.error_p99_pct,
            r.oracle_p99_pct,
            1.25 * r.oracle_p99_pct,
            r.bias_pct,
            r.oracle_20x_p99_pct
        ));
        let bound = r.heartbeat_s + 5.0;
        let shown = r.others_change_shown_p99_s;
        t.push(format!(
            "[{}] I={}: another visitor's change shown on open pages ≤ heartbeat + 5 s = {bound:.0} s (p99): {} s (n={})",
            pass(shown.is_some_and(|s| s <= bound)),
            r.isolates,
            opt(shown, 1),
            r.others_change_shown_n
        ));
    }
    t
}
