use super::*;

fn beat(visitor: &str, tab: &str, page: &str) -> Beat {
    Beat {
        site: "demo".into(),
        visitor: visitor.into(),
        tab: tab.into(),
        page: page.into(),
        state: TabState::Active,
        member_token: None,
    }
}

/// The record written straight from the state encodes exactly as [`Record`] does, and
/// holds every live tab and tombstone; capped, it holds the most recent tabs and only
/// those are marked as published.
#[test]
fn records_encode_as_record_does_without_copies() {
    let cfg = EngineConfig {
        max_tabs_per_record: 3,
        ..EngineConfig::default()
    };
    let mut p = Presence::new("iso-a", cfg).with_location("LHR");
    let t0 = 1_000_000;
    for i in 0..5u64 {
        let member = (i == 1).then(|| Member {
            id: "m1".into(),
            name: "Ann \"A\"".into(),
        });
        p.heartbeat(t0 + i, &beat(&format!("v{i}"), "t", "/p"), member);
    }
    p.leave(t0 + 5, &beat("v0", "t", "/p"));
    let writes = p.take_writes(t0 + 10_000);
    let w = writes
        .iter()
        .find(|w| w.key == p.own_key("demo"))
        .expect("the record is written");
    let r = Record::decode(&w.value).expect("decodes");
    assert_eq!(r.encode(), w.value, "byte for byte as Record encodes");
    assert_eq!(
        (r.isolate.as_str(), r.location.as_deref()),
        ("iso-a", Some("LHR"))
    );
    let mut visitors: Vec<&str> = r.tabs.iter().map(|t| t.visitor.as_str()).collect();
    visitors.sort_unstable();
    assert_eq!(
        visitors,
        ["v2", "v3", "v4"],
        "capped: the most recently seen"
    );
    assert_eq!(r.gone.len(), 1);
    let s = &p.sites["demo"];
    let mut ours: Vec<&str> = s
        .tabs
        .values()
        .filter(|h| h.ours.is_some())
        .map(|h| h.rec.visitor.as_str())
        .collect();
    ours.sort_unstable();
    assert_eq!(ours, ["v2", "v3", "v4"]);

    // Uncapped, with a member: every live tab, and the same bytes as Record.
    let mut p = Presence::new("iso-b", EngineConfig::default());
    p.heartbeat(
        t0,
        &beat("v9", "t", "/p"),
        Some(Member {
            id: "m9".into(),
            name: "Zoë\n".into(),
        }),
    );
    p.heartbeat(t0, &beat("v8", "u", "/q"), None);
    let writes = p.take_writes(t0 + 10_000);
    let r = Record::decode(&writes[0].value).expect("decodes");
    assert_eq!(r.encode(), writes[0].value);
    assert_eq!(r.tabs.len(), 2);
    assert!(r.location.is_none());
}

/// Regression: a member's last-seen write that fails is made again (it was dropped:
/// `write_failed` understood record keys only).
#[test]
fn a_failed_last_seen_write_is_made_again() {
    let mut p = Presence::new("iso", EngineConfig::default());
    let t0 = 1_000_000;
    let ann = Member {
        id: "m1".into(),
        name: "Ann".into(),
    };
    p.heartbeat(t0, &beat("v1", "t", "/"), Some(ann));
    assert_eq!(p.take_writes(t0 + 1_000).len(), 1, "the first record");
    p.leave(t0 + 2_000, &beat("v1", "t", "/"));
    let key = last_seen_key("demo", "m1");
    let at = t0 + 2_000 + EngineConfig::default().solo_delay_ms;
    let writes = p.take_writes(at);
    assert!(writes.iter().any(|w| w.key == key), "{writes:?}");
    p.write_failed(at, &key, false);
    let later = at + EngineConfig::default().solo_delay_ms;
    let again = p.take_writes(later);
    let w = again.iter().find(|w| w.key == key).expect("written again");
    let v: LastSeen = serde_json::from_slice(&w.value).expect("a last-seen value");
    assert_eq!((v.last_seen, v.name.as_str()), (t0 + 2_000, "Ann"));
    // Once made, it is not made a third time.
    p.leave(later + 10, &beat("v2", "t", "/"));
    let third = p.take_writes(later + 10 + EngineConfig::default().solo_delay_ms);
    assert!(third.iter().all(|w| w.key != key), "{third:?}");
}

/// Regression: with a long window, a peer's active tabs count as long as two windows
/// after its record was written (they stopped after a fixed 120 s).
#[test]
fn a_peers_active_tabs_count_for_two_windows_of_any_length() {
    let cfg = EngineConfig::with_window(600_000);
    let mut a = Presence::new("a", cfg.clone()).with_location("L");
    let mut b = Presence::new("b", cfg.clone()).with_location("L");
    let t0 = 1_000_000;
    b.heartbeat(t0, &beat("v1", "t", "/"), None);
    let writes = b.take_writes(t0 + cfg.join_delay_ms);
    assert_eq!(writes.len(), 1);
    let listed: Vec<ListedKey> = writes
        .iter()
        .map(|w| ListedKey {
            name: w.key.clone(),
            metadata: w.metadata.clone(),
        })
        .collect();
    let refresh = |a: &mut Presence, at: u64| {
        for w in &writes {
            let r = Record::decode(&w.value).expect("a record");
            let rec = Arc::new(IndexedRecord::new(r));
            a.apply_record(at, "demo", w.key.clone(), w.metadata.clone(), rec);
        }
        a.apply_remote(at, "demo", &listed);
    };
    for at in [t0 + 5_000, t0 + 130_000, t0 + 1_000_000] {
        refresh(&mut a, at);
        assert_eq!(a.count(at, "demo", None).online, 1, "at +{} ms", at - t0);
        assert!(a.tab_counted(at, "demo", "v1", "t"));
    }
    // Written at t0 + 1 s: two windows later it no longer vouches.
    let end = t0 + cfg.join_delay_ms + 2 * cfg.window_ms;
    refresh(&mut a, end);
    assert_eq!(a.count(end, "demo", None).online, 0);
}

#[test]
fn an_oversized_record_keeps_the_most_recent_tabs() {
    let tabs: Vec<TabRecord> = (0..100u64)
        .map(|i| TabRecord {
            visitor: format!("v{i:03}"),
            tab: "t".into(),
            page: "/".into(),
            state: TabState::Active,
            member: None,
            first_ms: i,
            last_ms: i,
        })
        .collect();
    let out = RecordOut {
        version: 1,
        isolate: "i",
        location: None,
        written_ms: 0,
        lease_until_ms: 0,
        tabs: tabs.iter().collect(),
        gone: Vec::new(),
    };
    let full = out.encode().len();
    let cut = RecordOut {
        tabs: tabs.iter().collect(),
        ..out
    }
    .encode_within(full / 2);
    assert!(cut.len() <= full / 2);
    let r = Record::decode(&cut).expect("decodes");
    assert!(!r.tabs.is_empty());
    assert!(
        r.tabs
            .iter()
            .all(|t| t.last_ms >= 100 - r.tabs.len() as u64)
    );
}

/// A record's index finds each tab by visitor and tab id, the later of two entries of one
/// tab, and nothing for a tab it does not hold.
#[test]
fn an_indexed_record_finds_its_tabs_by_position() {
    let tab = |v: &str, t: &str, last_ms: u64| TabRecord {
        visitor: v.into(),
        tab: t.into(),
        page: "/".into(),
        state: TabState::Active,
        member: None,
        first_ms: 1,
        last_ms,
    };
    let record = Record {
        version: 1,
        isolate: "p".into(),
        location: None,
        written_ms: 10,
        lease_until_ms: 20,
        tabs: vec![
            tab("v1", "a", 5),
            tab("v1", "b", 6),
            tab("v2", "a", 7),
            tab("v1", "a", 8),
        ],
        gone: Vec::new(),
    };
    let r = IndexedRecord::new(record);
    assert_eq!(r.tab("v1", "a").map(|t| t.last_ms), Some(8));
    assert_eq!(r.tab("v1", "b").map(|t| t.last_ms), Some(6));
    assert_eq!(r.tab("v2", "a").map(|t| t.last_ms), Some(7));
    assert!(r.tab("v2", "b").is_none());
    assert!(r.tab("v1/a", "").is_none());
}

/// The directory of LHR as its publisher `a` left it: renewed and written to KV at `at`.
fn directory_of_a(p: &Presence, at: u64) -> Directory {
    let a = p.own_key("demo").replace("/b", "/a");
    Directory {
        entries: [(a.clone(), at)].into_iter().collect(),
        publisher: Some(a),
        kv_ms: Some(at),
    }
}

fn kv_writes(writes: &[Write]) -> Vec<&str> {
    writes
        .iter()
        .filter(|w| !w.local)
        .map(|w| w.key.as_str())
        .collect()
}

/// A peer whose changes the publisher has not written within the takeover margin of their
/// due time writes the location's record itself and takes the role over; one whose changes
/// KV has (the directory's write time) does not.
#[test]
fn an_overdue_write_is_taken_over_by_a_peer() {
    let cfg = EngineConfig {
        solo_delay_ms: 20_000,
        ..EngineConfig::default()
    };
    let mut p = Presence::new("b", cfg).with_location("LHR");
    p.set_local(true);
    let t0 = 1_000_000;
    p.heartbeat(t0, &beat("v0", "t", "/p"), None);
    let dir = directory_of_a(&p, t0);
    assert!(p.apply_directory(t0, "demo", Some(dir.clone())).is_some());
    assert!(!p.is_publisher("demo"));
    // v0's join is in KV (written at t0): nothing is overdue, however long b waits.
    assert_eq!(kv_writes(&p.take_writes(t0 + 100_000)), Vec::<&str>::new());
    // A join after the publisher's write: due 20 s later, taken over 1 s after that.
    let t1 = t0 + 100_000;
    let _ = p.apply_directory(t1, "demo", Some(directory_of_a(&p, t1 - 1)));
    p.heartbeat(t1, &beat("v1", "t", "/p"), None);
    let due = t1 + 20_000 + TAKEOVER_MS;
    let _ = p.apply_directory(due - 1, "demo", Some(directory_of_a(&p, t1 - 1)));
    assert_eq!(kv_writes(&p.take_writes(due - 1)), Vec::<&str>::new());
    // Not on a read of the directory older than this request's.
    assert_eq!(kv_writes(&p.take_writes(due)), Vec::<&str>::new());
    let _ = p.apply_directory(due, "demo", Some(directory_of_a(&p, t1 - 1)));
    let writes = p.take_writes(due);
    let own = p.own_key("demo");
    assert_eq!(kv_writes(&writes), [own.as_str()]);
    let dir = writes
        .iter()
        .find(|w| w.local && w.key == p.directory_key("demo"))
        .and_then(|w| Directory::decode(&w.value))
        .expect("the directory is rewritten");
    assert_eq!(dir.publisher.as_deref(), Some(own.as_str()));
    assert_eq!(dir.kv_ms, Some(due));
}

/// A publisher that took the role over with nothing left to write renews the location's
/// lease in KV before the record its predecessor wrote lapses.
#[test]
fn a_publisher_that_took_over_renews_the_location_lease() {
    let cfg = EngineConfig::default();
    let lease = cfg.lease_ms;
    let mut p = Presence::new("b", cfg).with_location("LHR");
    p.set_local(true);
    let t0 = 1_000_000;
    p.heartbeat(t0, &beat("v0", "t", "/p"), None);
    let _ = p.apply_directory(t0, "demo", Some(directory_of_a(&p, t0)));
    // a stops renewing its entry: b takes the role over once the entry is stale.
    let t1 = t0 + DIR_STALE_MS;
    let _ = p.apply_directory(t1, "demo", Some(directory_of_a(&p, t0)));
    assert!(p.is_publisher("demo"));
    // Keep v0 alive; heartbeats change nothing KV lacks.
    let renew = t0 + lease - lease / 3;
    let mut now = t1;
    while now + 60_000 < renew {
        now += 60_000;
        p.heartbeat(now, &beat("v0", "t", "/p"), None);
        let dir = p.sites["demo"].local.dir.clone();
        let _ = p.apply_directory(now, "demo", Some(dir));
        assert_eq!(
            kv_writes(&p.take_writes(now)),
            Vec::<&str>::new(),
            "at {now}"
        );
    }
    let own = p.own_key("demo");
    let dir = p.sites["demo"].local.dir.clone();
    let _ = p.apply_directory(renew, "demo", Some(dir));
    assert_eq!(kv_writes(&p.take_writes(renew)), [own.as_str()]);
}

#[test]
fn the_remote_delay_is_five_24ths_of_the_heartbeat_at_least_a_second() {
    assert_eq!(EngineConfig::remote_delay_for(60_000), 12_500);
    assert_eq!(EngineConfig::remote_delay_for(90_000), 18_750);
    assert_eq!(EngineConfig::remote_delay_for(250), 1_000);
    // No overflow for any interval a deployment could set.
    assert_eq!(EngineConfig::remote_delay_for(u64::MAX), u64::MAX / 24);
    let d = EngineConfig::default();
    assert_eq!(
        d.remote_delay_ms,
        EngineConfig::remote_delay_for(d.heartbeat_ms)
    );
    let w = EngineConfig::with_window(8_000);
    assert_eq!((w.heartbeat_ms, w.remote_delay_ms), (2_000, 1_000));
    assert!(d.with_heartbeat(30_000).validate().is_ok());
}

/// A change dated before the location's last write to KV (a time-out noticed after that
/// write, dated at the tab's expiry) is pending for KV since that write, not since its
/// date: else the next KV write would be due at once, and a location's KV writes would
/// follow its late time-outs rather than the remote delay. (A time-out is never dated
/// before its record's last write: `SiteState::time_out`.)
#[test]
fn a_change_dated_before_the_last_kv_write_keeps_kvs_pace() {
    let mut s = SiteState::default();
    s.local.kv_flushed_ms = Some(50_000);
    s.pend(schedule::Urgency::Now, 40_000);
    assert_eq!(s.local.kv_pending, Some(50_000));
    assert_eq!(s.pending[0], Some(40_000), "the record's from its date");
    s.pend(schedule::Urgency::Join, 60_000);
    assert_eq!(s.local.kv_pending, Some(50_000));
    assert_eq!(s.local.kv_latest, Some(60_000));
}
