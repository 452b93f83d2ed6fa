//! The small scenario of the simulation, with assertions on its targets (runs in
//! `cargo test -p herenow-sim`; the full run is `cargo run -p herenow-sim --release
//! --example simulate`).

use herenow_sim::{ORACLE_BUDGET, ORACLE_OWN_BUDGET, Scenario, run};

#[test]
fn small_scenario_meets_its_targets() {
    let report = run(&Scenario::small(), 1);
    println!("{report}");
    for t in report.targets() {
        assert!(t.pass, "target missed: {t}");
    }
    let h = report.herenow();
    assert!(report.herenow_writes_per_day() < 1_000.0);
    assert!(report.mean_online >= 9.5, "about 10 people online all day");
    assert_eq!(h.violations, 0);
    assert!(h.leave_own.n >= 100 && h.leave_own.p99 <= 2.0);
    // Far fewer writes than one per heartbeat, and cheaper counts. (The 20× target is
    // medium's and large's; on this 12-visit site at the 90 s default it is ~16×, 25× without
    // isolate evictions: each new isolate finds its evicted predecessor's record and stays in
    // peers mode for two windows. docs/design.md › "Why a 90 s heartbeat".)
    assert!(report.write_ratio() >= 15.0, "{}", report.write_ratio());
    assert!(h.ops_per_count() < report.naive().ops_per_count());
}

#[test]
fn the_simulation_is_deterministic_for_a_seed() {
    let mut sc = Scenario::small();
    sc.measure_ms = 2 * 3_600_000;
    let a = run(&sc, 7);
    let b = run(&sc, 7);
    assert_eq!(a.designs, b.designs);
    assert_eq!((a.requests, a.visitor_hours), (b.requests, b.visitor_hours));
    let c = run(&sc, 8);
    assert_ne!(a.requests, c.requests, "another seed, another run");
}

#[test]
fn several_isolates_per_location_keep_counts_and_leaves_right() {
    // Random routing over 3 isolates at each of 2 locations: peers mode, handoffs,
    // time-outs decided by whoever saw a tab last.
    let mut sc = Scenario::medium().with_isolates(3);
    // The 15 s heartbeat of design (a)'s own definition, so that the write ratio compares
    // both at one interval (the 60 s default would cut (a)'s writes fourfold).
    sc.engine = herenow_core::engine::EngineConfig::with_window(60_000);
    sc.visitors = 60;
    sc.locations = 2;
    sc.warmup_ms = 5 * 60_000;
    sc.measure_ms = 20 * 60_000;
    sc.leave_samples = 60;
    let r = run(&sc, 3);
    let h = r.herenow();
    assert_eq!(h.violations, 0);
    assert!(
        h.leave_own.n > 20 && h.leave_own.p99 <= 2.0,
        "{:?}",
        h.leave_own
    );
    assert!(h.leave_else.p99 <= 120.0, "{:?}", h.leave_else);
    assert!(h.err_abs.mean <= 2.0, "{:?} (bias {})", h.err_abs, h.bias);
    // Joins and departures reach the other isolates equally fast: no bias.
    assert!(h.bias.abs() <= 0.5, "bias {}", h.bias);
    assert!(r.write_ratio() > 3.0);
}

/// Medium's visitors cut to `visitors` over 2 locations, isolates never evicted, warmed up
/// and measured for the minutes given, with 20 leave samples.
fn two_locations_no_evictions(visitors: u64, warmup_min: u64, measure_min: u64) -> Scenario {
    let mut sc = Scenario::medium();
    sc.visitors = visitors;
    sc.locations = 2;
    sc.isolate_lifetime_ms = 1_000 * 3_600_000;
    sc.warmup_ms = warmup_min * 60_000;
    sc.measure_ms = measure_min * 60_000;
    sc.leave_samples = 20;
    sc
}

#[test]
fn the_engine_counts_what_the_truth_counts_and_its_error_is_staleness_alone() {
    // Two locations, no evictions: the own location is exact, every summary is exact when
    // written, and the parts of the error add up to the error.
    let sc = two_locations_no_evictions(100, 5, 15);
    let r = run(&sc, 5);
    let d = &r.diagnostics;
    println!("{r}\n{d}");
    assert_eq!(d.truth_mismatches, 0);
    let (own, written) = (&d.rows[1], &d.rows[2]);
    assert_eq!((own.1.max, own.3), (0.0, 0.0), "own location: {own:?}");
    assert_eq!(
        (written.1.max, written.3),
        (0.0, 0.0),
        "summaries: {written:?}"
    );
    let parts: f64 = d.rows[1..6].iter().map(|row| row.3).sum();
    assert!(
        (parts - d.rows[0].3).abs() < 1e-9,
        "{parts} vs {}",
        d.rows[0].3
    );
    assert!((d.rows[0].3 - r.herenow().bias).abs() < 1e-9);
    // The oracles are computed; writing more often never hurts them much.
    assert!(r.floor().n > 100);
    assert!(d.rows[9].4 <= d.rows[ORACLE_BUDGET].4 * 1.1, "{:?}", d.rows);
    // The oracle at herenow's own budget writes no more often than the 20× budget, and at
    // most as often as herenow did before measuring.
    assert!(d.own_period_ms >= d.budget_period_ms, "{d:?}");
    assert!(r.floor().n == d.rows[ORACLE_OWN_BUDGET].2.n);
    assert!(
        d.rows[ORACLE_OWN_BUDGET].4 >= d.rows[ORACLE_BUDGET].4 * 0.9,
        "{:?}",
        d.rows
    );
    // Causes of going online and offline add up to balance roughly in steady state.
    let causes: Vec<f64> = d.causes.iter().map(|c| c.1).collect();
    let on = causes[0] + causes[1] + causes[2];
    let off = causes[3] + causes[4] + causes[5] + causes[6];
    assert!((on - off).abs() <= 0.2 * on, "{causes:?}");
}

#[test]
fn the_oracle_is_given_herenows_record_writes_not_its_last_seen_values() {
    // Half the visitors members, so that last-seen values are a large share of herenow's
    // writes: the oracle at herenow's own budget writes about as often as herenow's records
    // did (measured here over the measured time; the oracle's period is taken before it),
    // and clearly less often than all of herenow's writes.
    let mut sc = two_locations_no_evictions(200, 10, 20);
    sc.workload.member_share = 0.5;
    let r = run(&sc, 2);
    let d = &r.diagnostics;
    let h = r.herenow();
    assert!(
        r.last_seen_writes * 5 >= h.writes,
        "last-seen values are a fifth of the writes or more: {} of {}",
        r.last_seen_writes,
        h.writes
    );
    let locations = sc.locations as f64;
    let period = |writes: u64| r.hours * 3_600_000.0 / (writes as f64 / locations);
    let (records, all) = (period(h.writes - r.last_seen_writes), period(h.writes));
    let own = d.own_period_ms as f64;
    assert!(own >= d.budget_period_ms as f64, "{d:?}");
    assert!(
        (own - records).abs() <= 0.25 * records,
        "own {own} ms vs records {records:.0} ms (all writes {all:.0} ms)"
    );
    assert!(own >= 1.15 * all, "own {own} ms vs all writes {all:.0} ms");
}
