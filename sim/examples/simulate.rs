//! Runs the presence simulation: small, medium and large scenarios, three designs each,
//! then variants of the medium scenario (no KV lag; several isolates per location).
//!
//! ```text
//! cargo run -p herenow-sim --release --example simulate                  # everything, seed 1
//! cargo run -p herenow-sim --release --example simulate -- --seed 7
//! cargo run -p herenow-sim --release --example simulate -- --only medium --isolates 2
//! # one scenario; also --lag-s N, --remote-delay-ms N, --join-delay-ms N, --measure-min N,
//! # --seed N, --diagnose (the
//! # count error by source, and oracles)
//! ```

use std::thread;

use herenow_sim::{Report, Scenario, run, targets_across};

fn arg<T: std::str::FromStr>(args: &[String], name: &str) -> Option<T> {
    let i = args.iter().position(|a| a == name)?;
    args.get(i + 1)?.parse().ok()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let seed: u64 = arg(&args, "--seed").unwrap_or(1);
    let started = std::time::Instant::now();
    if let Some(name) = arg::<String>(&args, "--only") {
        let mut sc = match name.as_str() {
            "small" => Scenario::small(),
            "medium" => Scenario::medium(),
            _ => Scenario::large(),
        };
        if let Some(i) = arg(&args, "--isolates") {
            sc = sc.with_isolates(i);
        }
        if let Some(lag) = arg::<u64>(&args, "--lag-s") {
            sc = sc.with_max_lag(lag * 1000);
        }
        if let Some(ms) = arg(&args, "--remote-delay-ms") {
            sc.engine.remote_delay_ms = ms;
        }
        if let Some(ms) = arg(&args, "--join-delay-ms") {
            sc.engine.join_delay_ms = ms;
        }
        if let Some(min) = arg::<u64>(&args, "--measure-min") {
            sc = sc.with_measure(min * 60_000);
        }
        println!("{}\n", describe(&sc));
        let r = run(&sc, seed);
        println!("{r}");
        if args.iter().any(|a| a == "--diagnose") {
            println!("{}", r.diagnostics);
        }
        return;
    }
    let (small, medium, large) = (Scenario::small(), Scenario::medium(), Scenario::large());
    let variants = [
        Scenario::medium().with_max_lag(0).with_measure(20 * 60_000),
        Scenario::medium()
            .with_isolates(2)
            .with_measure(12 * 60_000),
        Scenario::medium().with_isolates(4).with_measure(6 * 60_000),
    ];
    // Two cores: the large scenario on one, everything else on the other.
    let (big, rest, var) = thread::scope(|s| {
        let big = s.spawn(|| run(&large, seed));
        let rest: Vec<Report> = [&small, &medium].iter().map(|sc| run(sc, seed)).collect();
        let var: Vec<Report> = variants.iter().map(|sc| run(sc, seed)).collect();
        (big.join().expect("the large scenario"), rest, var)
    });
    let reports = [rest[0].clone(), rest[1].clone(), big];
    println!("{}\n", describe(&medium));
    for r in &reports {
        println!("{r}");
    }
    for r in &reports[1..] {
        println!(
            "== {}: where herenow's count error comes from, and the floor of any design under this KV model ==",
            r.scenario.name
        );
        println!("{}", r.diagnostics);
    }
    println!("== across scenarios ==");
    for t in targets_across(&reports) {
        println!("{t}");
    }
    println!(
        "\n== variants of medium (herenow only): what KV lag and isolates per location cost =="
    );
    println!("{}", reports[1].summary_line());
    for r in &var {
        println!("{}", r.summary_line());
    }
    println!(
        "\nseed {seed}; whole run {:.1} s (scenario runs: {})",
        started.elapsed().as_secs_f64(),
        reports
            .iter()
            .chain(&var)
            .map(|r| format!("{} {:.1} s", r.scenario.name, r.runtime_s))
            .collect::<Vec<_>>()
            .join(", ")
    );
}

fn describe(sc: &Scenario) -> String {
    let w = &sc.workload;
    let e = &sc.engine;
    format!(
        "herenow presence simulation (deterministic for a seed)\n\
         workload: heartbeat every {} s ±10% while a tab is visible; visits exponential, mean {} min; a new page every \
         {} min on average ({:.0}% full page loads = a leave and a new tab id, the rest same-tab page changes); visitors \
         look away (tab hidden: one idle beacon, then silence) after {} min visible on average, for {} min on average; \
         {:.0}% of visits open a second tab, switching every {} min; {:.0}% of visits end without a leave; {:.0}% are \
         members; every heartbeat is answered with a count, and the count is also sampled at random isolates.\n\
         locations and isolates: each request goes to a uniformly random isolate of the visitor's location; isolates \
         are evicted after {} h on average (exponential).\n\
         KV model: a write is visible at once at its own location and after a lag drawn uniformly from 0-{} s, \
         independently per write and location, elsewhere; a reader sees the newest write visible to it; lists see the \
         same; TTLs expire keys; writes to a key < 1 s apart are counted.\n\
         engine: window {} s, lease {} s; writes >= {} s apart; with peers at the location: joins and leaves <= {} s, \
         changes <= {} s, view refresh {} s; remote-only: <= {} s; alone: <= {} s.\n\
         costs: Workers paid plan, writes/lists/deletes $5/M beyond 1M a month each, reads $0.50/M beyond 10M, \
         for the scenario's traffic around the clock (730 h).",
        e.heartbeat_ms / 1000,
        w.mean_visit_ms / 60_000,
        w.mean_page_ms / 60_000,
        w.mpa_share * 100.0,
        w.mean_visible_ms / 60_000,
        w.mean_away_ms / 60_000,
        w.extra_tab_share * 100.0,
        w.mean_switch_ms / 60_000,
        w.vanish_share * 100.0,
        w.member_share * 100.0,
        sc.isolate_lifetime_ms / 3_600_000,
        sc.max_lag_ms / 1000,
        e.window_ms / 1000,
        e.lease_ms / 1000,
        e.flush_min_ms / 1000,
        e.join_delay_ms as f64 / 1000.0,
        e.change_delay_ms / 1000,
        e.refresh_ms as f64 / 1000.0,
        e.remote_delay_ms / 1000,
        e.solo_delay_ms / 1000,
    )
}
