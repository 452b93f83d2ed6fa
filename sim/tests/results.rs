//! Routing models, the bill, the JSON lines and the example's flags.

use std::path::PathBuf;
use std::process::Command;

use herenow_core::engine::EngineConfig;
use herenow_sim::cli;
use herenow_sim::cost::{self, Usage};
use herenow_sim::{Routing, Scenario, run};

/// A small multi-isolate deployment that runs in a few seconds.
fn tiny(isolates: usize, routing: Routing, move_prob: f64) -> Scenario {
    let mut sc = Scenario::medium()
        .with_isolates(isolates)
        .with_routing(routing, move_prob);
    sc.visitors = 60;
    sc.locations = 2;
    sc.warmup_ms = 3 * 60_000;
    sc.measure_ms = 10 * 60_000;
    sc.leave_samples = 40;
    sc
}

#[test]
fn sticky_routing_keeps_a_tab_on_one_isolate_except_its_moves() {
    let r = run(&tiny(4, Routing::Sticky, 0.05), 2);
    assert!(r.routing_moves > 0);
    // Every change of isolate between a tab's requests is a move, and every move one.
    assert_eq!(r.slot_changes, r.routing_moves);
    // About one move in twenty requests (the whole run's requests, of which a tab's first
    // moves nothing: at a 90 s heartbeat about one request in four).
    let share = r.routing_moves as f64 / r.requests as f64;
    assert!((0.025..=0.07).contains(&share), "{share}");
    // Random routing changes isolate on 3 in 4 of the requests that follow another of the
    // same tab at 4 isolates (a tab's first request changes nothing: at a 90 s heartbeat
    // they are about one request in four).
    let r = run(&tiny(4, Routing::Random, 0.05), 2);
    assert_eq!(r.routing_moves, 0);
    let share = r.slot_changes as f64 / r.requests as f64;
    assert!((0.5..=0.8).contains(&share), "{share}");
    // Sticky with no moves never changes isolate.
    let r = run(&tiny(4, Routing::Sticky, 0.0), 2);
    assert_eq!((r.routing_moves, r.slot_changes), (0, 0));
    assert_eq!(r.herenow().violations, 0);
}

#[test]
fn the_bill_subtracts_each_quota_and_is_never_negative() {
    // All within the quotas: nothing to pay.
    let within = Usage {
        requests: 10e6,
        cpu_ms: 30e6,
        reads: 10e6,
        writes: 1e6,
        lists: 1e6,
        deletes: 1e6,
    };
    let d = cost::dollars(&within);
    assert_eq!((d.kv, d.workers, d.total), (0.0, 0.0, 0.0));
    assert_eq!(cost::dollars(&Usage::default()).total, 0.0);
    // 20 M requests: 10 M past the quota at $0.30/M = $3; 130 M CPU-ms: 100 M past at
    // $0.02/M = $2; 14 M reads: 4 M at $0.50/M = $2; 3 M writes: 2 M at $5/M = $10;
    // 1.5 M lists: $2.50; 1 M deletes: $0 (lists and deletes have quotas of their own).
    let u = Usage {
        requests: 20e6,
        cpu_ms: 130e6,
        reads: 14e6,
        writes: 3e6,
        lists: 1.5e6,
        deletes: 1e6,
    };
    let d = cost::dollars(&u);
    assert!((d.workers - 5.0).abs() < 1e-9, "{d:?}");
    assert!((d.kv - 14.5).abs() < 1e-9, "{d:?}");
    assert!((d.total - 19.5).abs() < 1e-9, "{d:?}");
    // At list price, no quota: 14 M reads $7 + 5.5 M writes, lists, deletes $27.50.
    assert!((cost::kv_list_price(&u) - 34.5).abs() < 1e-9);
    // The free plan's daily limits, each.
    let day = Usage {
        requests: 100_000.0,
        reads: 100_000.0,
        writes: 1_000.0,
        lists: 1_000.0,
        deletes: 1_000.0,
        cpu_ms: 1e9,
    };
    assert!(cost::free_plan_fits(&day));
    for over in [
        Usage {
            requests: 100_001.0,
            ..day
        },
        Usage {
            reads: 100_001.0,
            ..day
        },
        Usage {
            writes: 1_001.0,
            ..day
        },
        Usage {
            lists: 1_001.0,
            ..day
        },
        Usage {
            deletes: 1_001.0,
            ..day
        },
    ] {
        assert!(!cost::free_plan_fits(&over), "{over:?}");
    }
}

#[test]
fn others_changes_show_on_open_pages_within_their_heartbeat_plus_5_s() {
    // The bound follows the interval the server sets: at the default (90 s) and at 15 s
    // (window 60 s), an open page shows another visitor's change at its next heartbeat
    // (±10 % jitter), plus the few seconds the isolates of a location take to share it.
    let fast = {
        let mut sc = tiny(3, Routing::Random, 0.0);
        sc.engine = EngineConfig::with_window(60_000);
        sc
    };
    let slow = tiny(3, Routing::Random, 0.0);
    assert_eq!(
        slow.engine.heartbeat_ms,
        EngineConfig::default().heartbeat_ms
    );
    let mut p99 = Vec::new();
    for sc in [fast, slow] {
        let hb_s = sc.engine.heartbeat_ms as f64 / 1000.0;
        let s = run(&sc, 4).others_shown;
        assert!(s.n >= 100, "{s:?}");
        assert!(s.p50 > 0.0 && s.p99 <= hb_s * 1.1 + 5.0, "{hb_s} s: {s:?}");
        p99.push(s.p99);
    }
    // A longer interval shows changes later: the heartbeat, not the store, sets the delay.
    assert!(p99[1] > 2.0 * p99[0], "{p99:?}");
}

#[test]
fn requests_follow_the_heartbeat_and_the_workers_bill_with_them() {
    // The same visitors at 15 s and at 60 s: the requests (heartbeats, beacons, leaves)
    // fall about fourfold, and the Workers part of the bill by as much.
    let mut fast = tiny(1, Routing::Random, 0.0);
    fast.engine = EngineConfig::with_window(60_000);
    let slow = tiny(1, Routing::Random, 0.0)
        .with_window(150_000)
        .with_heartbeat(60_000);
    let rows: Vec<_> = [fast, slow]
        .iter()
        .map(|sc| run(sc, 6).row(2, 6, None))
        .collect();
    let (f, s) = (&rows[0].per_visitor_hour, &rows[1].per_visitor_hour);
    // A visible tab beats once an interval; hidden ones are silent, beacons and leaves add.
    for (r, hb) in [(f, 15.0), (s, 60.0)] {
        let beats = 3_600.0 / hb;
        assert!(
            (0.5 * beats..=1.5 * beats).contains(&r.requests),
            "{hb} s: {r:?}"
        );
    }
    println!("15 s: {f:?}\n60 s: {s:?}");
    // The heartbeats fall fourfold; the rest (a tab's first beat, idle beacons, leaves)
    // does not depend on the interval, so the whole falls about threefold.
    let ratio = f.requests / s.requests;
    assert!((2.5..=4.0).contains(&ratio), "{ratio}");
    let split = |i: usize| rows[i].dollars_per_1000_visitors_month_split.workers;
    assert!(split(0) > 3.0 * split(1), "{} vs {}", split(0), split(1));
}

/// The example binary cargo built beside this test (`cargo test` builds examples).
fn example() -> PathBuf {
    let exe = std::env::current_exe().expect("the test's own path");
    let dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile>");
    dir.join("examples").join("simulate")
}

#[test]
fn bad_flags_exit_2_with_a_clear_message() {
    for args in [
        &["--bogus"][..],
        &["--isolates", "zero"],
        &["--isolates", "0"],
        &["--routing", "roundrobin"],
        &["--only", "huge"],
        &["--measure-min"],
        &["--move-prob", "2"],
        &["--heartbeat-s", "225"],
        &["--locations", "0"],
        &["--visitors", "many"],
        &["--sample-s", "0"],
        &["--warmup-s", "-5"],
        &["--measure-s", "0"],
        &["--channel", "redis"],
        &["--channel-miss", "1.5"],
    ] {
        let out = Command::new(example())
            .args(args)
            .output()
            .expect("the example runs");
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.starts_with("simulate: ") && err.contains("usage:"),
            "{err}"
        );
        assert!(out.stdout.is_empty());
        let parsed = cli::parse(args.iter().map(|s| (*s).to_owned()));
        assert!(parsed.is_err(), "{args:?}");
    }
    let ok = cli::parse(
        [
            "--only",
            "small",
            "--isolates",
            "4",
            "--routing",
            "sticky",
            "--heartbeat-s",
            "60",
            "--window-s",
            "180",
            "--json",
        ]
        .map(String::from),
    )
    .expect("good flags");
    assert_eq!(ok.isolates, Some(4));
    assert_eq!(ok.routing, Some(Routing::Sticky));
    let sc = ok.apply(Scenario::small());
    assert_eq!(
        (sc.engine.heartbeat_ms, sc.engine.window_ms),
        (60_000, 180_000)
    );
    // The flags the edge-vs-simulation check (tests/kvops-agree.mjs) passes.
    let ok = cli::parse(
        [
            "--only",
            "small",
            "--locations",
            "1",
            "--visitors",
            "120",
            "--no-evictions",
            "--sample-s",
            "30",
            "--warmup-s",
            "270",
            "--measure-s",
            "120",
            "--solo-delay-s",
            "600",
            "--lease-s",
            "1800",
        ]
        .map(String::from),
    )
    .expect("good flags");
    assert_eq!(ok.measure_min, Some(2.0));
    let sc = ok.apply(Scenario::small());
    assert_eq!((sc.locations, sc.visitors), (1, 120));
    assert_eq!((sc.sample_every_ms, sc.warmup_ms), (30_000, 270_000));
    assert!(sc.isolate_lifetime_ms > 365 * 24 * 3_600_000);
    assert_eq!(
        (sc.engine.solo_delay_ms, sc.engine.lease_ms),
        (600_000, 1_800_000)
    );
}

#[test]
fn a_json_line_parses_and_has_every_field() {
    let out = Command::new(example())
        .args([
            "--only",
            "small",
            "--isolates",
            "2",
            "--routing",
            "sticky",
            "--measure-min",
            "30",
            "--seed",
            "3",
            "--json",
        ])
        .output()
        .expect("the example runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON object per line"))
        .collect();
    let designs: Vec<(&str, &str)> = lines
        .iter()
        .filter_map(|v| Some((v["design"].as_str()?, v["channel"].as_str()?)))
        .collect();
    // Without --channel, both: peers through KV (workers.dev) and through the Cache API.
    assert_eq!(
        designs,
        [
            ("naive", "kv"),
            ("metadata", "kv"),
            ("herenow", "kv"),
            ("naive", "cache"),
            ("metadata", "cache"),
            ("herenow", "cache")
        ]
    );
    let cached = &lines[5];
    assert!(
        cached["channel_calls_per_request"]
            .as_f64()
            .is_some_and(|c| c > 0.0),
        "{cached}"
    );
    assert_eq!(lines[2]["channel_calls_per_request"], 0.0);
    // The history's KV budget, beside its target, for both of its runs.
    let budget: Vec<&serde_json::Value> = lines
        .iter()
        .filter_map(|v| v.get("history_budget"))
        .collect();
    assert_eq!(budget.len(), 2, "{text}");
    for b in budget {
        assert_eq!(b["target_writes_per_day"], 100);
        assert_eq!(b["pass"], true, "{b}");
        assert!(
            b["max_writes_in_a_day"]
                .as_u64()
                .is_some_and(|n| (1..=100).contains(&n)),
            "{b}"
        );
        assert!(b["alert_calls"].as_u64() <= b["crossings"].as_u64(), "{b}");
    }
    let h = &lines[2];
    for field in [
        "scenario",
        "design",
        "isolates",
        "routing",
        "channel",
        "online_mean",
        "per_visitor_hour",
        "dollars_per_month",
        "dollars_per_1000_visitors_month",
        "free_plan_max_visitors",
        "error_p99_pct",
        "oracle_p99_pct",
        "oracle_20x_p99_pct",
        "bias_pct",
        "leave_own_p99_s",
        "leave_elsewhere_p99_s",
        "others_change_shown_p99_s",
    ] {
        assert!(h.get(field).is_some(), "{field} missing: {h}");
    }
    for k in ["writes", "lists", "reads", "deletes", "requests"] {
        assert!(h["per_visitor_hour"][k].is_number(), "{k}");
    }
    for k in ["kv", "workers", "total"] {
        assert!(
            h["dollars_per_month"][k].as_f64().is_some_and(|x| x >= 0.0),
            "{k}"
        );
    }
    assert_eq!(h["scenario"], "small");
    assert_eq!(h["isolates"], 2);
    assert_eq!(h["routing"], "sticky");
    assert_eq!(h["seed"], 3);
    // The default interval, and about a request per visible tab and interval, plus ~30
    // an hour for opening, navigating, hiding and leaving.
    let hb = h["heartbeat_s"].as_f64().unwrap_or(0.0);
    assert_eq!(hb * 1000.0, EngineConfig::default().heartbeat_ms as f64);
    assert!(
        h["per_visitor_hour"]["requests"]
            .as_f64()
            .is_some_and(|r| r > 0.5 * 3_600.0 / hb && r < 1.5 * 3_600.0 / hb + 30.0),
        "{h}"
    );
    assert!(h["others_change_shown_p99_s"].is_number());
    assert!(lines[0]["others_change_shown_p99_s"].is_null());
}

/// KV dollars per visitor-hour of `sc`'s herenow row.
fn kv_per_vh(sc: &Scenario) -> (f64, herenow_sim::Report) {
    let r = run(sc, 4);
    let row = r.row(2, 4, None);
    (row.kv_usd_per_1000_visitor_hours, r)
}

/// The accuracy target: herenow's count error p99 within 1.25× the oracle's.
fn within_oracle(r: &herenow_sim::Report, what: &str) {
    let row = r.row(2, 4, None);
    assert!(
        row.error_p99_pct <= 1.25 * row.oracle_p99_pct,
        "error p99 {} vs oracle {}{what}",
        row.error_p99_pct,
        row.oracle_p99_pct
    );
}

#[test]
fn with_the_cache_channel_kv_cost_stays_flat_in_isolates_and_counts_stay_right() {
    use herenow_sim::Channel;
    let cache = |i| tiny(i, Routing::Random, 0.0).with_channel(Channel::Cache, 0.0);
    let (one, _) = kv_per_vh(&cache(1));
    let (eight, r8) = kv_per_vh(&cache(8));
    assert!(
        eight <= 2.0 * one,
        "KV $/kvh {eight} at 8 isolates vs {one} at 1"
    );
    let h = r8.herenow();
    assert_eq!(h.violations, 0);
    assert!(h.leave_own.p99 <= 2.0, "{:?}", h.leave_own);
    // As accurate as the oracle at the 20x write budget allows (this small site's count
    // is mostly KV's lag between its two locations).
    within_oracle(&r8, "");
    // Through KV (workers.dev) the same isolates cost several times as much.
    let (eight_kv, _) = kv_per_vh(&tiny(8, Routing::Random, 0.0));
    assert!(
        eight_kv > 3.0 * eight,
        "KV channel {eight_kv} vs cache {eight}"
    );
    // Reads of the channel that miss a tenth of the time (evictions) lose no one: the last
    // copy of a peer's record vouches on.
    let r = run(&cache(8).with_channel(Channel::Cache, 0.1), 4);
    within_oracle(&r, " with misses");
    // Most leaves still show within a few polls; a few take longer (at seeds 1–8: the
    // slowest of 25–44 took 3–26 s before 2026-12-03, 3–17 s after: a peer that misses
    // the leaver's record keeps its old copy, not analysed further), always within the
    // freshness bound of heartbeat + 5 s.
    let own = &r.herenow().leave_own;
    let bound_s = (sc_heartbeat_ms() + 5_000) as f64 / 1000.0;
    assert!(own.p50 <= 3.0 && own.p99 <= bound_s, "{own:?}");
}

/// The heartbeat interval of the scenarios here (the engine's default).
fn sc_heartbeat_ms() -> u64 {
    tiny(1, Routing::Random, 0.0).engine.heartbeat_ms
}

/// At 8 isolates of 30 people each isolate has a request every ~11 s, so a leave reaches
/// its peers only through the delayed flush after it: every leave shows at every isolate
/// of its location within 2 s, on several seeds. (Before 2026-12-03 one leave in 40 took
/// 4–19 s on some seeds: the delayed flush was spent on a KV write due earlier, and the
/// leave's record waited for the isolate's next request.)
#[test]
fn with_sparse_requests_every_leave_shows_at_its_location_within_two_seconds() {
    use herenow_sim::Channel;
    for seed in 1..=4 {
        let sc = tiny(8, Routing::Random, 0.0).with_channel(Channel::Cache, 0.0);
        let own = run(&sc, seed).herenow().leave_own.clone();
        assert!(own.n >= 20 && own.max <= 2.0, "seed {seed}: {own:?}");
    }
}
