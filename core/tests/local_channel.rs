//! The per-location channel (`engine::local`) driven through the shipped driver
//! ([`Service`]) on the in-memory store: with the channel, KV's operations do not grow with
//! the isolates of a location; without it (as on `workers.dev`) the same isolates still
//! count right through KV, and pay for it.

use herenow_core::engine::{DIR_STALE_MS, EngineConfig, Presence};
use herenow_core::protocol::{Beat, TabState};
use herenow_core::service::{FlushTimer, Service};
use herenow_core::store::{ManualClock, MemoryStore, OpCounts, block_on_ready};

const T0: u64 = 1_800_000_000_000;
const SITE: &str = "demo";

fn beat(v: u32) -> Beat {
    Beat {
        site: SITE.into(),
        visitor: format!("00000000-0000-4000-8000-{v:012x}"),
        tab: "t".into(),
        page: format!("/p{}", v % 3),
        state: TabState::Active,
        member_token: None,
    }
}

/// `n` isolates of `location` on one store.
fn isolates(n: usize, location: &str, prefix: &str) -> Vec<Service> {
    (0..n)
        .map(|i| {
            Service::new(
                Presence::new(format!("{prefix}{i:02}"), EngineConfig::default())
                    .with_location(location),
            )
        })
        .collect()
}

fn online(svc: &Service, kv: &MemoryStore, now: u64) -> u64 {
    block_on_ready(svc.count(kv, now, SITE, None))
        .map(|c| c.online)
        .unwrap_or(u64::MAX)
}

/// Moves the clock 100 ms on and flushes every isolate, as their delayed flushes would.
fn tick(isos: &[Service], kv: &MemoryStore, clock: &ManualClock, now: &mut u64) {
    *now += 100;
    clock.set(*now);
    for s in isos {
        let _ = block_on_ready(s.flush(kv, *now));
    }
}

/// A small deterministic generator (no dependency for a test).
struct Lcg(u64);
impl Lcg {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % n
    }
}

/// KV operations over 10 minutes of `visitors` heartbeating every 60 s to a random one of
/// `n` isolates of one location, with a visitor leaving and another arriving every 6 s,
/// after 5 minutes of warm-up; checks every isolate's count against the truth at the end.
fn run(n: usize, local: bool, visitors: u32) -> OpCounts {
    let clock = ManualClock::new(T0);
    let kv = MemoryStore::new(clock.clone());
    kv.set_local(local);
    let isos = isolates(n, "LHR", "iso");
    let mut rng = Lcg(7);
    let step = 250u64;
    let mut next_beat: Vec<u64> = (0..visitors)
        .map(|v| T0 + u64::from(v) * 60_000 / u64::from(visitors))
        .collect();
    let mut online_set: Vec<bool> = vec![true; visitors as usize];
    let mut before = OpCounts::default();
    let end = T0 + 15 * 60_000;
    let mut now = T0;
    let mut churn_at = T0 + 6_000;
    let mut timers: Vec<(FlushTimer, usize)> = Vec::new();
    while now < end {
        if now == T0 + 5 * 60_000 {
            before = kv.ops();
        }
        for v in 0..visitors {
            let i = v as usize;
            if online_set[i] && next_beat[i] <= now {
                let k = rng.below(n as u64) as usize;
                let iso = &isos[k];
                let _ = block_on_ready(iso.heartbeat(&kv, now, &beat(v), None));
                next_beat[i] = now + 60_000;
            }
        }
        if now >= churn_at {
            churn_at += 6_000;
            let v = rng.below(u64::from(visitors)) as usize;
            let k = rng.below(n as u64) as usize;
            let iso = &isos[k];
            if online_set[v] {
                block_on_ready(iso.leave(&kv, now, &beat(v as u32)));
                online_set[v] = false;
            } else {
                online_set[v] = true;
                next_beat[v] = now;
            }
        }
        // Delayed flushes, as the edge's waitUntil runs them.
        for (i, iso) in isos.iter().enumerate() {
            if let Some(t) = iso.flush_timer(now) {
                timers.push((t, i));
            }
        }
        now += step;
        clock.set(now);
        let mut next = Vec::new();
        timers.retain(|&(t, i)| {
            if t.at > now {
                return true;
            }
            next.extend(block_on_ready(isos[i].flush_timer_fired(&kv, t, now)).map(|t| (t, i)));
            false
        });
        timers.extend(next);
    }
    let truth = online_set.iter().filter(|o| **o).count() as u64;
    for (i, iso) in isos.iter().enumerate() {
        let c = online(iso, &kv, now + 2_000);
        assert_eq!(c, truth, "isolate {i} of {n} (channel {local}) counts {c}");
    }
    let after = kv.ops();
    OpCounts {
        reads: after.reads - before.reads,
        writes: after.writes - before.writes,
        lists: after.lists - before.lists,
    }
}

/// KV's bill in its own units: a write or a list costs ten reads.
fn cost(o: OpCounts) -> u64 {
    10 * (o.writes + o.lists) + o.reads
}

#[test]
fn with_the_channel_kv_cost_does_not_grow_with_isolates() {
    let one = run(1, true, 60);
    let eight = run(8, true, 60);
    assert!(
        cost(eight) <= 2 * cost(one),
        "8 isolates {eight:?} against 1 {one:?}"
    );
    // Without the channel (workers.dev) the same load costs several times as much: the
    // isolates exchange their changes through KV.
    let eight_kv = run(8, false, 60);
    assert!(
        cost(eight_kv) > 4 * cost(eight),
        "through KV {eight_kv:?} against the channel {eight:?}"
    );
}

#[test]
fn a_leave_at_one_isolate_shows_at_every_peer_within_a_second() {
    let clock = ManualClock::new(T0);
    let kv = MemoryStore::new(clock.clone());
    kv.set_local(true);
    let isos = isolates(4, "LHR", "iso");
    let mut now = T0;
    for v in 0..8 {
        let _ = block_on_ready(isos[v as usize % 4].heartbeat(&kv, now, &beat(v), None));
    }
    // Every isolate finds the others and their tabs within a few polls.
    let deadline = now + 5_000;
    while isos.iter().any(|s| online(s, &kv, now) != 8) {
        assert!(now < deadline, "peers did not see each other's tabs");
        tick(&isos, &kv, &clock, &mut now);
    }
    // Visitor 0 heartbeated to isolate 0; it leaves through isolate 3.
    block_on_ready(isos[3].leave(&kv, now, &beat(0)));
    let left = now;
    while isos.iter().any(|s| online(s, &kv, now) != 7) {
        assert!(now < left + 1_000, "the leave took over a second to show");
        tick(&isos, &kv, &clock, &mut now);
    }
    // None of it went through KV but the publisher's first record.
    let ops = kv.ops();
    assert!(ops.writes <= 2, "{ops:?}");
    assert!(kv.local_ops().writes > 0);
}

#[test]
fn an_evicted_channel_forgets_nothing_counted() {
    let clock = ManualClock::new(T0);
    let kv = MemoryStore::new(clock.clone());
    kv.set_local(true);
    let isos = isolates(3, "LHR", "iso");
    let mut now = T0;
    for v in 0..6 {
        let _ = block_on_ready(isos[v as usize % 3].heartbeat(&kv, now, &beat(v), None));
    }
    for _ in 0..30 {
        tick(&isos, &kv, &clock, &mut now);
    }
    let counts: Vec<u64> = isos.iter().map(|s| online(s, &kv, now)).collect();
    assert_eq!(counts, [6, 6, 6]);
    kv.evict_local();
    for _ in 0..30 {
        now += 100;
        clock.set(now);
        for (i, s) in isos.iter().enumerate() {
            assert_eq!(online(s, &kv, now), 6, "isolate {i} after the eviction");
        }
    }
}

#[test]
fn when_the_publisher_stops_another_isolate_takes_over_and_other_locations_see_it() {
    let clock = ManualClock::new(T0);
    let kv = MemoryStore::new(clock.clone());
    kv.set_local(true);
    // Isolate names set who publishes: "a…" sorts first.
    let lhr = isolates(3, "LHR", "a");
    let fra = isolates(1, "FRA", "z");
    let mut now = T0;
    let beat_all = |isos: &[Service], now: u64, from: usize| {
        for v in 0..9u32 {
            let i = from + v as usize % (isos.len() - from);
            let _ = block_on_ready(isos[i].heartbeat(&kv, now, &beat(v), None));
        }
    };
    let tick = |isos: &[Service], now: u64| {
        for s in isos {
            let _ = block_on_ready(s.count(&kv, now, SITE, None));
            let _ = block_on_ready(s.flush(&kv, now));
        }
    };
    beat_all(&lhr, now, 0);
    let writer = |kv: &MemoryStore| -> Vec<String> {
        let mut w: Vec<String> = kv
            .keys()
            .into_iter()
            .filter(|k| k.starts_with("r:demo:LHR/"))
            .collect();
        w.sort();
        w
    };
    // One minute: heartbeats to every LHR isolate; FRA counts them from KV.
    while now < T0 + 60_000 {
        now += 500;
        clock.set(now);
        if (now - T0).is_multiple_of(30_000) {
            beat_all(&lhr, now, 0);
        }
        tick(&lhr, now);
        tick(&fra, now);
    }
    assert_eq!(
        writer(&kv),
        ["r:demo:LHR/a00"],
        "only the publisher writes KV"
    );
    assert_eq!(online(&fra[0], &kv, now), 9);
    // a00 gets no more requests (evicted); a01 and a02 take its visitors. Nothing changes
    // at LHR after that, so a01 writes only to renew the location's lease in KV: FRA still
    // counts LHR once a00's record would have lapsed.
    let stopped = now;
    let lease = EngineConfig::default().lease_ms;
    while now < stopped + DIR_STALE_MS + 3 * lease {
        now += 500;
        clock.set(now);
        if (now - T0).is_multiple_of(30_000) {
            beat_all(&lhr, now, 1);
        }
        tick(&lhr[1..], now);
        tick(&fra, now);
    }
    // a00's record has expired from KV by now; a01's stands for LHR.
    assert_eq!(
        writer(&kv),
        ["r:demo:LHR/a01"],
        "the next isolate took over"
    );
    assert_eq!(
        online(&fra[0], &kv, now),
        9,
        "FRA lost LHR: its lease lapsed"
    );
    assert_eq!(online(&lhr[2], &kv, now), 9);
}

/// A visitor who leaves through one isolate and comes back through another that still
/// holds its old copy shows everywhere again within a couple of seconds, channel or not.
#[test]
fn a_return_after_a_leave_elsewhere_shows_at_every_peer() {
    for local in [true, false] {
        let clock = ManualClock::new(T0);
        let kv = MemoryStore::new(clock.clone());
        kv.set_local(local);
        let isos = isolates(2, "LHR", "iso");
        let mut now = T0;
        let settle = |now: &mut u64, ms: u64| {
            let end = *now + ms;
            while *now < end {
                *now += 100;
                clock.set(*now);
                for s in &isos {
                    // Another visitor's heartbeats keep both isolates busy.
                    let _ = block_on_ready(s.heartbeat(&kv, *now, &beat(99), None));
                }
            }
        };
        let _ = block_on_ready(isos[0].heartbeat(&kv, now, &beat(1), None));
        // Alone, an isolate lists KV after 10 s, then 20 s more; with the channel it
        // finds its peers within a poll.
        settle(&mut now, if local { 2_000 } else { 45_000 });
        assert_eq!(online(&isos[1], &kv, now), 2, "channel {local}");
        block_on_ready(isos[1].leave(&kv, now, &beat(1)));
        settle(&mut now, 20_000);
        assert_eq!(online(&isos[0], &kv, now), 1, "channel {local}");
        // The return reaches isolate 0, which then gets no other request: only its
        // delayed flush runs, as the edge's waitUntil would run it.
        let _ = block_on_ready(isos[0].heartbeat(&kv, now, &beat(1), None));
        let timer = isos[0]
            .flush_timer(now)
            .expect("the return is published by a timer");
        let at = timer.at;
        let back = now;
        while online(&isos[1], &kv, now) != 2 {
            assert!(
                now < back + 2_000,
                "channel {local}: the return took over 2 s"
            );
            now += 100;
            clock.set(now);
            if now >= at && now < at + 100 {
                let _ = block_on_ready(isos[0].flush_timer_fired(&kv, timer, now));
            }
            let _ = block_on_ready(isos[1].heartbeat(&kv, now, &beat(99), None));
        }
    }
}

/// A record of this location in KV that the channel does not know (its isolate ran without
/// the channel: an older version during a deploy, or a restart that lost the channel, as
/// the edge's `presence survives a restart` test does) still counts at the isolates that
/// use the channel.
#[test]
fn a_record_of_this_location_the_channel_does_not_know_still_counts() {
    let clock = ManualClock::new(T0);
    let kv = MemoryStore::new(clock.clone());
    let old = isolates(1, "LHR", "old");
    let mut now = T0;
    let _ = block_on_ready(old[0].heartbeat(&kv, now, &beat(1), None));
    for _ in 0..20 {
        now += 100;
        clock.set(now);
        let _ = block_on_ready(old[0].flush(&kv, now));
    }
    assert_eq!(
        kv.keys(),
        ["r:demo:LHR/old00"],
        "written without the channel"
    );
    kv.set_local(true);
    let new = isolates(2, "LHR", "new");
    for _ in 0..20 {
        now += 100;
        clock.set(now);
        for (i, s) in new.iter().enumerate() {
            assert_eq!(online(s, &kv, now), 1, "new isolate {i}");
            let _ = block_on_ready(s.flush(&kv, now));
        }
    }
}

/// A leave that is the first request of a new isolate: the isolate reads its location's
/// directory first (adding itself), or its peers, which poll the isolates the directory
/// names, would not read its record and its tombstone until its next refreshing request.
#[test]
fn a_leave_as_an_isolates_first_request_shows_at_its_peers() {
    let clock = ManualClock::new(T0);
    let kv = MemoryStore::new(clock.clone());
    kv.set_local(true);
    let isos = isolates(3, "LHR", "iso");
    let mut now = T0;
    // Visitor 0 at isolate 0, visitor 1 at isolate 1; isolate 2 has had no request.
    let _ = block_on_ready(isos[0].heartbeat(&kv, now, &beat(0), None));
    let _ = block_on_ready(isos[1].heartbeat(&kv, now, &beat(1), None));
    let deadline = now + 5_000;
    while isos[..2].iter().any(|s| online(s, &kv, now) != 2) {
        assert!(now < deadline, "isolates 0 and 1 did not see each other");
        tick(&isos, &kv, &clock, &mut now);
    }
    block_on_ready(isos[2].leave(&kv, now, &beat(0)));
    let left = now;
    while isos[..2].iter().any(|s| online(s, &kv, now) != 1) {
        assert!(
            now < left + 2_000,
            "the leave at a new isolate took over 2 s to show at its peers"
        );
        tick(&isos, &kv, &clock, &mut now);
    }
}

/// A tab that vanishes (no leave, no further heartbeat) is timed out by the isolate that
/// holds its last heartbeat at its expiry, through that isolate's delayed flushes, not at
/// its next request: at many isolates per location that request may be tens of seconds
/// away, and every peer counts the tab until then. Through the channel, where that write is
/// free (through KV it waits for the next request's write).
#[test]
fn a_vanished_tab_is_timed_out_by_a_delayed_flush_not_the_next_request() {
    let window = EngineConfig::default().window_ms;
    let local = true;
    {
        let clock = ManualClock::new(T0);
        let kv = MemoryStore::new(clock.clone());
        kv.set_local(local);
        let isos = isolates(2, "LHR", "iso");
        let (a, b) = (&isos[0], &isos[1]);
        let mut timers: Vec<FlushTimer> = Vec::new();
        let mut now = T0;
        // Runs the clock to `until`: visitor 99 heartbeats to `b` every second; `a`'s
        // delayed flushes run as the edge's waitUntil runs them, and nothing else reaches it.
        let run = |now: &mut u64, timers: &mut Vec<FlushTimer>, until: u64| {
            while *now < until {
                *now += 100;
                clock.set(*now);
                if (*now - T0).is_multiple_of(1_000) {
                    let _ = block_on_ready(b.heartbeat(&kv, *now, &beat(99), None));
                }
                let due: Vec<FlushTimer> =
                    timers.iter().copied().filter(|t| t.at <= *now).collect();
                timers.retain(|t| t.at > *now);
                for t in due {
                    timers.extend(block_on_ready(a.flush_timer_fired(&kv, t, *now)));
                }
            }
        };
        let _ = block_on_ready(b.heartbeat(&kv, now, &beat(99), None));
        let _ = block_on_ready(a.heartbeat(&kv, now, &beat(1), None));
        timers.extend(a.flush_timer(now));
        run(&mut now, &mut timers, T0 + 60_000);
        assert_eq!(online(b, &kv, now), 2, "channel {local}: b sees a's tab");
        // Visitor 1 heartbeats once more to `a`, then vanishes.
        let _ = block_on_ready(a.heartbeat(&kv, now, &beat(1), None));
        let expiry = now + window;
        timers.extend(a.flush_timer(now));
        // `a`'s last request comes 20 s before the expiry: a new visitor.
        run(&mut now, &mut timers, expiry - 20_000);
        let _ = block_on_ready(a.heartbeat(&kv, now, &beat(2), None));
        timers.extend(a.flush_timer(now));
        run(&mut now, &mut timers, expiry - 1_000);
        assert_eq!(
            online(b, &kv, now),
            3,
            "channel {local}: still live before its expiry"
        );
        while online(b, &kv, now) != 2 {
            assert!(
                now < expiry + 3_000,
                "channel {local}: the vanished tab still counts at b {} s after its expiry",
                (now - expiry) / 1_000
            );
            let until = now + 100;
            run(&mut now, &mut timers, until);
        }
    }
}
