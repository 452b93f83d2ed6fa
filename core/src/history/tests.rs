//! The history's rules through its driver, on the memory store with a manual clock.

use super::*;
use crate::store::{ManualClock, MemoryStore, block_on_ready};

const T0: u64 = 1_800_000_000_000; // 2027-01-15 08:00 UTC
const W: u64 = 60_000; // a one-minute write interval keeps the tests short

fn recorder(id: &str, rules: &[(u64, u64)]) -> Recorder {
    let rules: Vec<AlertRule> = rules
        .iter()
        .map(|&(above, cooldown_ms)| AlertRule { above, cooldown_ms })
        .collect();
    let mut map = HashMap::new();
    if !rules.is_empty() {
        map.insert("demo".to_owned(), rules);
    }
    Recorder::new(History::new(id, HistoryConfig::with_write_ms(W), map))
}

/// A request's sample and its after-response sync, as the edge runs them.
fn sample(r: &Recorder, kv: &MemoryStore, now: u64, online: u64) -> (Option<Mark>, Vec<AlertDue>) {
    let record = r.observe(now, "demo", online);
    let mut fired = Vec::new();
    for site in r.sites_due(now) {
        fired.extend(block_on_ready(r.sync(kv, now, &site)).expect("sync"));
    }
    (record, fired)
}

fn answer(r: &Recorder, kv: &MemoryStore, now: u64, range: Range) -> HistoryAnswer {
    block_on_ready(r.history(kv, now, "demo", range)).expect("history")
}

fn setup() -> (ManualClock, MemoryStore) {
    let clock = ManualClock::new(T0);
    (clock.clone(), MemoryStore::new(clock))
}

#[test]
fn history_is_written_by_one_isolate_and_read_by_a_new_one() {
    let (clock, kv) = setup();
    let a = recorder("a", &[]);
    let b = recorder("b", &[]);
    for i in 0..10u64 {
        let now = clock.now_ms();
        sample(&a, &kv, now, 3 + i % 2);
        sample(&b, &kv, now + 1, 3);
        clock.advance(20_000);
    }
    let key = history_key("demo");
    let stored = Stored::decode(&block_on_ready(kv.get(&key)).expect("get").expect("written"))
        .expect("decodes");
    // One of them claimed it and the other read that it did.
    assert_eq!(stored.writer, "a");
    // A restarted isolate (a new id) with no samples of its own sees the history.
    let c = recorder("c", &[]);
    let h = answer(&c, &kv, clock.now_ms(), Range::Hour);
    assert_eq!(h.points.len(), 60);
    assert_eq!(h.step_s, 60);
    let seen: Vec<u64> = h.points.iter().map(|p| p[1]).filter(|&n| n > 0).collect();
    assert!(seen.contains(&4), "{seen:?}");
    assert_eq!(h.record.map(|m| m.online), Some(4));
    assert_eq!(h.peak.map(|m| m.online), Some(4));
    let day = answer(&c, &kv, clock.now_ms(), Range::Day);
    assert_eq!((day.points.len(), day.step_s), (288, 300));
    assert!(day.points.iter().any(|p| p[1] == 4));
    let week = answer(&c, &kv, clock.now_ms(), Range::Week);
    assert_eq!((week.points.len(), week.step_s), (168, 3600));
    assert_eq!(week.points.last().map(|p| p[1]), Some(4));
}

#[test]
fn the_answer_adds_the_part_not_yet_written() {
    let (clock, kv) = setup();
    let a = recorder("a", &[]);
    sample(&a, &kv, clock.now_ms(), 1);
    let writes = kv.ops().writes;
    clock.advance(10_000);
    sample(&a, &kv, clock.now_ms(), 7);
    assert_eq!(kv.ops().writes, writes, "within the write interval");
    let h = answer(&a, &kv, clock.now_ms(), Range::Hour);
    assert_eq!(h.points.last().map(|p| p[1]), Some(7));
}

#[test]
fn the_record_only_rises_and_keeps_its_time() {
    let (clock, kv) = setup();
    let a = recorder("a", &[]);
    // Unknown until the key was read once.
    assert_eq!(a.observe(T0, "demo", 2), None);
    block_on_ready(a.sync(&kv, T0, "demo")).expect("sync");
    let mut last = None;
    for (i, n) in [2u64, 5, 3, 5, 1, 6, 0, 4].into_iter().enumerate() {
        let now = T0 + (i as u64 + 1) * 30_000;
        clock.set(now);
        let (record, _) = sample(&a, &kv, now, n);
        let record = record.expect("known");
        if let Some(prev) = last {
            assert!(
                Mark::best(Some(prev), Some(record)) == Some(record),
                "{prev:?} → {record:?}"
            );
        }
        last = Some(record);
    }
    // 5 first reached at the second sample; 6 at the sixth.
    assert_eq!(
        last,
        Some(Mark {
            online: 6,
            at: T0 + 6 * 30_000
        })
    );
    // A new isolate reads it back, with its time.
    let b = recorder("b", &[]);
    clock.advance(3 * W);
    sample(&a, &kv, clock.now_ms(), 1); // the writer writes what it has
    // Its first sample reads the key (after the answer): the record is known from the next.
    assert_eq!(sample(&b, &kv, clock.now_ms(), 1).0, None);
    let (record, _) = sample(&b, &kv, clock.now_ms() + 1, 1);
    assert_eq!(
        record,
        Some(Mark {
            online: 6,
            at: T0 + 6 * 30_000
        })
    );
}

#[test]
fn one_alert_per_crossing_across_isolates_then_silence() {
    let (clock, kv) = setup();
    let cooldown = 5 * 60_000;
    let isolates: Vec<Recorder> = ["a", "b", "c"]
        .iter()
        .map(|id| recorder(id, &[(10, cooldown)]))
        .collect();
    let mut fired = Vec::new();
    let mut run = |clock: &ManualClock, online: u64, seconds: u64| {
        for _ in 0..seconds / 5 {
            for r in &isolates {
                fired.extend(sample(r, &kv, clock.now_ms(), online).1);
            }
            clock.advance(5_000);
        }
        fired.len()
    };
    assert_eq!(run(&clock, 3, 60), 0, "below the threshold");
    assert_eq!(run(&clock, 11, 60), 1, "the crossing: one call");
    assert_eq!(run(&clock, 30, 600), 1, "still above: silent");
    assert_eq!(
        run(&clock, 2, 60),
        1,
        "below: armed again (the cooldown has passed)"
    );
    assert_eq!(run(&clock, 12, 60), 2, "the next crossing");
    assert_eq!(run(&clock, 2, 60), 2, "below, but within the cooldown");
    assert_eq!(run(&clock, 12, 60), 2, "above again, still silent");
    let d = &fired[0];
    assert_eq!((d.site.as_str(), d.index, d.threshold), ("demo", 0, 10));
    assert!(d.online > 10);
}

#[test]
fn a_call_left_by_a_claimant_evicted_while_confirming_is_made_by_its_successor() {
    let (clock, kv) = setup();
    let a = recorder("a", &[(10, 5 * 60_000)]);
    // a claims the absent key, then sees the crossing: it writes the firing as due and
    // waits for its claim's confirmation (a write interval here)...
    assert!(sample(&a, &kv, clock.now_ms(), 11).1.is_empty());
    clock.advance(5_000);
    let fired_at = clock.now_ms();
    assert!(
        sample(&a, &kv, fired_at, 11).1.is_empty(),
        "not yet confirmed"
    );
    let st = Stored::decode(
        &block_on_ready(kv.get(&history_key("demo")))
            .expect("get")
            .expect("written"),
    )
    .expect("decodes");
    assert_eq!(
        st.alerts[0].due,
        Some(11),
        "the firing is written, its call due"
    );
    // ...and is evicted. b, seeing the same crowd, takes over once the key is stale and
    // makes a's call: once, with a's firing time.
    drop(a);
    let b = recorder("b", &[(10, 5 * 60_000)]);
    let mut calls = Vec::new();
    for _ in 0..60 {
        clock.advance(5_000);
        calls.extend(sample(&b, &kv, clock.now_ms(), 12).1);
    }
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert_eq!((calls[0].at, calls[0].online), (fired_at, 11));
    let st = Stored::decode(
        &block_on_ready(kv.get(&history_key("demo")))
            .expect("get")
            .expect("written"),
    )
    .expect("decodes");
    assert_eq!((st.writer.as_str(), st.alerts[0].due), ("b", None));
}

#[test]
fn a_nobody_site_costs_nothing_and_an_empty_one_writes_nothing() {
    let (clock, kv) = setup();
    let a = recorder("a", &[]);
    assert!(a.sites_due(T0).is_empty(), "never sampled: no I/O");
    for _ in 0..100 {
        sample(&a, &kv, clock.now_ms(), 0);
        clock.advance(60_000);
    }
    assert_eq!(kv.ops().writes, 0, "only zeros: nothing to write");
    assert!(kv.ops().reads <= 100 * 60_000 / HistoryConfig::with_write_ms(W).read_ms + 1);
}

#[test]
fn a_stale_writer_is_taken_over_and_the_history_carries_on() {
    let (clock, kv) = setup();
    let a = recorder("a", &[]);
    let b = recorder("b", &[]);
    sample(&a, &kv, clock.now_ms(), 5);
    sample(&b, &kv, clock.now_ms(), 5);
    // a is evicted; b keeps sampling and takes over once the key is stale.
    for _ in 0..40 {
        clock.advance(10_000);
        sample(&b, &kv, clock.now_ms(), 2);
    }
    let stored = Stored::decode(
        &block_on_ready(kv.get(&history_key("demo")))
            .expect("get")
            .expect("some"),
    )
    .expect("decodes");
    assert_eq!(stored.writer, "b");
    assert_eq!(
        stored.record.map(|m| m.online),
        Some(5),
        "a's samples carried on"
    );
}

#[test]
fn a_range_must_be_one_of_the_three() {
    assert_eq!(Range::parse("24h"), Ok(Range::Day));
    assert_eq!(
        Range::parse("2h").map_err(|e| e.code()),
        Err(Code::InvalidRange)
    );
}

#[test]
fn the_kv_write_budget_holds_over_a_simulated_day() {
    // 20 isolates in 5 locations, evicted every 2 h on average, KV lag up to 60 s, two
    // alerts: printed beside the target (`cargo test -p herenow-core budget -- --nocapture`).
    let report = budget::run(&budget::BudgetRun::default());
    println!("{}", report.line());
    assert!(
        report.max_writes_in_a_day <= budget::TARGET_WRITES_PER_DAY,
        "{report:?}"
    );
    assert!(report.writes_per_day > 10.0, "it does write: {report:?}");
    assert!(report.expected_calls >= 2, "{report:?}");
    // Lag can duplicate a call only when two isolates take over within it; late is allowed.
    assert!(
        report.alert_calls <= report.expected_calls + 1,
        "{report:?}"
    );
    assert!(
        report.alert_calls + 1 >= report.expected_calls,
        "{report:?}"
    );
    let nobody = budget::run(&budget::BudgetRun {
        peak_people: 0,
        ..budget::BudgetRun::default()
    });
    assert_eq!(
        (nobody.writes_per_day, nobody.reads_per_day),
        (0.0, 0.0),
        "a site nobody visits costs nothing"
    );
}

/// Runs `run` and checks the budget and one call per crossing (late is allowed: a crossing
/// may be called by a successor, or lost with a writer evicted in the instant between its
/// write and its call; never two calls).
fn holds(run: &budget::BudgetRun) -> budget::BudgetReport {
    let r = budget::run(run);
    println!("{}", r.line());
    assert!(
        r.max_writes_in_a_day <= budget::TARGET_WRITES_PER_DAY,
        "{r:?}"
    );
    assert!(r.expected_calls >= 4 * run.days, "{r:?}");
    assert!(r.alert_calls <= r.expected_calls, "a duplicate call: {r:?}");
    assert!(r.alert_calls + 1 >= r.expected_calls, "calls lost: {r:?}");
    r
}

#[test]
fn the_budget_and_one_call_per_crossing_hold_with_100_isolates() {
    // 100 isolates in 20 locations, KV lag up to 60 s, evicted every 2 h on average.
    holds(&budget::BudgetRun {
        isolates: 100,
        locations: 20,
        ..budget::BudgetRun::default()
    });
}

#[test]
fn the_budget_and_one_call_per_crossing_hold_with_evictions_every_30_minutes() {
    for (isolates, locations) in [(20, 5), (100, 20)] {
        holds(&budget::BudgetRun {
            isolates,
            locations,
            evict_mean_s: 1800,
            ..budget::BudgetRun::default()
        });
    }
}

#[test]
#[ignore = "diagnostics: cargo test -p herenow-core budget_matrix -- --ignored --nocapture"]
fn budget_matrix() {
    for (evict_h, lag, isolates, locations) in [
        (1000, 0, 20, 5),
        (1000, 60_000, 20, 5),
        (2, 0, 20, 5),
        (2, 60_000, 20, 5),
        (2, 60_000, 100, 20),
        (0, 60_000, 20, 5),
    ] {
        let r = budget::run(&budget::BudgetRun {
            evict_mean_s: if evict_h == 0 { 1800 } else { evict_h * 3600 },
            lag_max_ms: lag,
            isolates,
            locations,
            ..budget::BudgetRun::default()
        });
        println!(
            "evict {evict_h} h lag {lag} isolates {isolates}/{locations}: {}",
            r.line()
        );
    }
}
