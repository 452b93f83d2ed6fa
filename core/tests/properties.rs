//! Property tests of the presence engine: the merge is a CRDT join, leaves stick, counts
//! are consistent, records round-trip and stay within Workers KV's limits.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::sync::Arc;

use herenow_core::engine::{
    EngineConfig, IndexedRecord, MAX_KEY_BYTES, MAX_VALUE_BYTES, Member, Presence, Record, Summary,
    TabRecord, Tombstone, Write, last_seen_key, merge,
};
use herenow_core::protocol::{Beat, MAX_PAGE_BYTES, MAX_SITE_BYTES, MAX_TAB_BYTES, TabState};
use herenow_core::service::{FlushTimer, Service};
use herenow_core::store::{
    ListPage, ListedKey, MAX_METADATA_BYTES, MIN_TTL_S, MemoryStore, Store, StoreError,
    block_on_ready,
};
use proptest::prelude::*;

const SITE: &str = "demo";
const T0: u64 = 1_800_000_000_000;

fn visitor(i: u8) -> String {
    format!("00000000-0000-4000-8000-0000000000{i:02x}")
}

fn tab_entry() -> impl Strategy<Value = TabRecord> {
    (
        0u8..4,
        0u8..3,
        0u64..50,
        0u64..50,
        any::<bool>(),
        prop::option::of(0u8..2),
    )
        .prop_map(|(v, t, first, len, idle, m)| TabRecord {
            visitor: visitor(v),
            tab: format!("t{t}"),
            page: format!("/p{}", (first + len) % 3),
            state: if idle {
                TabState::Idle
            } else {
                TabState::Active
            },
            member: m.map(|m| Member {
                id: format!("m{m}"),
                name: format!("M{m}"),
            }),
            first_ms: first,
            last_ms: first + len,
        })
}

fn tombstone() -> impl Strategy<Value = Tombstone> {
    (0u8..4, 0u8..3, 0u64..100).prop_map(|(v, t, at)| Tombstone {
        visitor: visitor(v),
        tab: format!("t{t}"),
        at_ms: at,
    })
}

type Source = (Vec<TabRecord>, Vec<Tombstone>);

fn source() -> impl Strategy<Value = Source> {
    (
        prop::collection::vec(tab_entry(), 0..6),
        prop::collection::vec(tombstone(), 0..3),
    )
}

fn merged(sources: &[Source]) -> Vec<TabRecord> {
    let refs: Vec<(&[TabRecord], &[Tombstone])> = sources
        .iter()
        .map(|(t, g)| (t.as_slice(), g.as_slice()))
        .collect();
    merge(&refs)
}

/// Two sources joined into one state: their merge, with all their tombstones.
fn join(a: &Source, b: &Source) -> Source {
    let tabs = merged(&[a.clone(), b.clone()]);
    let gone = a.1.iter().chain(&b.1).cloned().collect();
    (tabs, gone)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn merge_is_commutative(a in source(), b in source(), c in source()) {
        let abc = merged(&[a.clone(), b.clone(), c.clone()]);
        prop_assert_eq!(&abc, &merged(&[c.clone(), a.clone(), b.clone()]));
        prop_assert_eq!(&abc, &merged(&[b, c, a]));
    }

    #[test]
    fn merge_is_associative(a in source(), b in source(), c in source()) {
        let left = merged(&[join(&a, &b), c.clone()]);
        let right = merged(&[a.clone(), join(&b, &c)]);
        prop_assert_eq!(&left, &right);
        prop_assert_eq!(&left, &merged(&[a, b, c]));
    }

    #[test]
    fn merge_is_idempotent(a in source(), b in source()) {
        let once = merged(&[a.clone(), b.clone()]);
        prop_assert_eq!(&once, &merged(&[a.clone(), b.clone(), a.clone(), b.clone()]));
        prop_assert_eq!(&once, &merged(&[join(&a, &b)]));
        prop_assert_eq!(&once, &merged(&[join(&a, &b), join(&a, &b)]));
    }

    #[test]
    fn a_tombstone_removes_every_entry_not_newer(a in source(), g in tombstone()) {
        let out = merged(&[a, (vec![], vec![g.clone()])]);
        for t in out.iter().filter(|t| t.visitor == g.visitor && t.tab == g.tab) {
            prop_assert!(t.last_ms > g.at_ms);
        }
    }
}

/// One step of a random history on two isolates of one location sharing a store.
#[derive(Debug, Clone)]
enum Op {
    Beat {
        tab: u8,
        iso: u8,
        idle: bool,
        page: u8,
        member: bool,
    },
    Leave {
        tab: u8,
        iso: u8,
    },
    Advance(u64),
    Sync,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0u8..5, 0u8..2, any::<bool>(), 0u8..3, any::<bool>())
            .prop_map(|(tab, iso, idle, page, member)| Op::Beat { tab, iso, idle, page, member }),
        2 => (0u8..5, 0u8..2).prop_map(|(tab, iso)| Op::Leave { tab, iso }),
        3 => (1u64..20_000).prop_map(Op::Advance),
        2 => Just(Op::Sync),
    ]
}

fn beat(tab: u8, idle: bool, page: u8) -> Beat {
    Beat {
        site: SITE.into(),
        visitor: visitor(tab / 2),
        tab: format!("t{tab}"),
        page: format!("/p{page}"),
        state: if idle {
            TabState::Idle
        } else {
            TabState::Active
        },
        member_token: None,
    }
}

/// The shared store, recording which keys each call wrote and whether it listed: the
/// test's view of what the driver did.
#[derive(Default)]
struct Recording {
    inner: MemoryStore,
    puts: RefCell<Vec<String>>,
    listed: Cell<bool>,
}

impl Recording {
    /// Whether the calls since the last `take` wrote `key`, and whether they listed.
    fn take(&self, key: &str) -> (bool, bool) {
        let wrote = self.puts.borrow_mut().drain(..).any(|k| k == key);
        (wrote, self.listed.replace(false))
    }
}

impl Store for Recording {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.inner.get(key).await
    }

    async fn put(
        &self,
        key: &str,
        value: Vec<u8>,
        metadata: Option<String>,
        ttl_s: u64,
    ) -> Result<(), StoreError> {
        assert!(ttl_s >= MIN_TTL_S);
        assert!(key.len() <= MAX_KEY_BYTES);
        assert!(
            metadata
                .as_ref()
                .is_none_or(|m| m.len() <= MAX_METADATA_BYTES)
        );
        self.puts.borrow_mut().push(key.to_owned());
        self.inner.put(key, value, metadata, ttl_s).await
    }

    async fn list(&self, prefix: &str, cursor: Option<&str>) -> Result<ListPage, StoreError> {
        self.listed.set(true);
        self.inner.list(prefix, cursor).await
    }
}

fn check_count(svc: &Service, kv: &Recording, now: u64) -> Result<(), TestCaseError> {
    for page in [None, Some("/p1")] {
        let c = block_on_ready(svc.count(kv, now, SITE, page)).expect("the store works");
        prop_assert_eq!(c.online, c.members + c.guests, "{:?}", c);
        prop_assert!(c.idle <= c.online, "{:?}", c);
        prop_assert!(c.tabs >= c.online, "{:?}", c);
        prop_assert!(c.page.unwrap_or(0) <= c.online, "{:?}", c);
        prop_assert!(
            c.pages
                .iter()
                .all(|pc| pc.online >= 1 && pc.online <= c.online),
            "{:?}",
            c
        );
        prop_assert!(
            c.pages.windows(2).all(|w| w[0].online >= w[1].online),
            "{:?}",
            c
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// A tab never counts after its leave unless it heartbeats again: at once where it left,
    /// and at the other isolate once the leaving isolate has published and it has read.
    /// Counts stay consistent throughout.
    #[test]
    fn leaves_stick_and_counts_stay_consistent(ops in prop::collection::vec(op(), 1..60)) {
        let cfg = EngineConfig::default();
        let isos = [
            Service::new(Presence::new("a", cfg.clone()).with_location("L1")),
            Service::new(Presence::new("b", cfg).with_location("L1")),
        ];
        let own: Vec<String> = isos.iter().map(|s| s.with(|p| p.own_key(SITE))).collect();
        let kv = Recording::default();
        let mut now = T0;
        // Steps are numbered, as several may happen in the same millisecond.
        // Per tab: (isolate it left at, step), while it has not beaten since.
        let mut left: BTreeMap<u8, (usize, usize)> = BTreeMap::new();
        // Per isolate: the step its record was last written at.
        let mut published: [Option<usize>; 2] = [None, None];
        // Per isolate: the step it last listed the store at (and so read every record).
        let mut read: [Option<usize>; 2] = [None, None];
        let note = |i: usize, step: usize, published: &mut [Option<usize>; 2], read: &mut [Option<usize>; 2]| {
            let (wrote, listed) = kv.take(&own[i]);
            if wrote {
                published[i] = Some(step);
            }
            if listed {
                read[i] = Some(step);
            }
        };
        for (step, op) in ops.into_iter().enumerate() {
            match op {
                Op::Beat { tab, iso, idle, page, member } => {
                    let m = member.then(|| Member { id: format!("m{}", tab / 2), name: "M".into() });
                    let i = iso as usize;
                    block_on_ready(isos[i].heartbeat(&kv, now, &beat(tab, idle, page), m))
                        .expect("the store works");
                    note(i, step, &mut published, &mut read);
                    left.remove(&tab);
                }
                Op::Leave { tab, iso } => {
                    let i = iso as usize;
                    block_on_ready(isos[i].leave(&kv, now, &beat(tab, false, 0)));
                    // A write in this step came after the leave: count it as the next step's.
                    note(i, step + 1, &mut published, &mut read);
                    left.insert(tab, (i, step));
                }
                Op::Advance(ms) => now += ms,
                Op::Sync => {
                    for (i, svc) in isos.iter().enumerate() {
                        let timer = FlushTimer { at: now, deadline: now };
                        let _ = block_on_ready(svc.flush_timer_fired(&kv, timer, now));
                        note(i, step, &mut published, &mut read);
                    }
                    for (i, svc) in isos.iter().enumerate() {
                        block_on_ready(svc.refresh(&kv, now, SITE)).expect("the store works");
                        note(i, step, &mut published, &mut read);
                    }
                }
            }
            for (&tab, &(at_iso, at)) in &left {
                let (v, t) = (visitor(tab / 2), format!("t{tab}"));
                prop_assert!(!isos[at_iso].with(|p| p.tab_counted(now, SITE, &v, &t)), "tab {} counted where it left", tab);
                let other = 1 - at_iso;
                let propagated = published[at_iso].is_some_and(|w| w > at)
                    && read[other].is_some_and(|r| r >= published[at_iso].unwrap_or(usize::MAX));
                if propagated {
                    prop_assert!(!isos[other].with(|p| p.tab_counted(now, SITE, &v, &t)), "tab {} counted at the other isolate", tab);
                }
            }
            for (i, svc) in isos.iter().enumerate() {
                check_count(svc, &kv, now)?;
                // A count may refresh: that reads the store too.
                note(i, step, &mut published, &mut read);
            }
        }
    }

    /// The count of a location is the merge of its isolates' records: per tab the winning
    /// entry, less tombstones, live by the liveness rule — so `merge` is the merge the
    /// counting path applies, whichever records hold which entries.
    #[test]
    fn counting_applies_the_merge(sources in prop::collection::vec(source(), 1..4), now in 0u64..200) {
        let cfg = EngineConfig::default();
        let mut me = Presence::new("me", cfg.clone()).with_location("L1");
        let mut listed = Vec::new();
        // A record holds at most one entry per tab.
        let sources: Vec<Source> = sources
            .into_iter()
            .map(|(mut tabs, gone)| {
                let mut seen = std::collections::BTreeSet::new();
                tabs.retain(|t| seen.insert((t.visitor.clone(), t.tab.clone())));
                (tabs, gone)
            })
            .collect();
        for (i, (tabs, gone)) in sources.iter().enumerate() {
            let r = Record {
                version: 1,
                isolate: format!("p{i}"),
                location: Some("L1".into()),
                written_ms: 0,
                lease_until_ms: cfg.lease_ms,
                tabs: tabs.clone(),
                gone: gone.clone(),
            };
            let key = format!("r:{SITE}:L1/p{i}");
            listed.push(ListedKey { name: key.clone(), metadata: None });
            me.apply_record(now, SITE, key, None, Arc::new(IndexedRecord::new(r)));
        }
        me.apply_remote(now, SITE, &listed);
        let want = merged(&sources);
        let mut visitors: Vec<&str> = want.iter().map(|t| t.visitor.as_str()).collect();
        visitors.dedup();
        let c = me.count(now, SITE, None);
        prop_assert_eq!(c.online, visitors.len() as u64, "{:?}", want);
        prop_assert_eq!(c.tabs, want.len() as u64);
        for t in &want {
            prop_assert!(me.tab_counted(now, SITE, &t.visitor, &t.tab));
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn records_round_trip(
        tabs in prop::collection::vec(tab_entry(), 0..20),
        gone in prop::collection::vec(tombstone(), 0..5),
        loc in prop::option::of("[A-Z]{3}"),
        w in 0u64..u64::MAX / 4,
    ) {
        let r = Record {
            version: 1,
            isolate: "iso-1".into(),
            location: loc,
            written_ms: w,
            lease_until_ms: w + 300_000,
            tabs,
            gone,
        };
        prop_assert_eq!(Record::decode(&r.encode()), Some(r));
    }

    #[test]
    fn summaries_round_trip_and_fit_in_metadata(
        online in 0u64..10_000_000,
        pages in prop::collection::vec(("/[a-z0-9/]{0,511}", 1u64..1_000_000), 0..40),
        loc in prop::option::of("[A-Za-z0-9_-]{1,32}"),
    ) {
        let s = Summary {
            written_ms: T0,
            lease_until_ms: T0 + 300_000,
            location: loc,
            online,
            tabs: online * 2,
            members: online / 3,
            idle: online / 4,
            pages,
        };
        let json = s.encode();
        prop_assert!(json.len() <= MAX_METADATA_BYTES, "{} bytes", json.len());
        let back = Summary::decode(&json).expect("decodes");
        // Pages are dropped from the least busy end to fit; everything else is kept.
        prop_assert_eq!(&back.pages[..], &s.pages[..back.pages.len()]);
        prop_assert_eq!(Summary { pages: vec![], ..back }, Summary { pages: vec![], ..s });
    }

    /// Keys, metadata and TTLs stay within KV's limits for the longest names the protocol
    /// and member tokens allow, and any window a config validates.
    #[test]
    fn writes_stay_within_kv_limits(
        site in "[a-z0-9_-]{1,64}",
        isolate in ".{1,300}",
        loc in ".{1,100}",
        member in "[a-z0-9]{1,128}",
        window_s in 1u64..600,
        page in "/[a-z]{0,500}",
    ) {
        prop_assume!(site.len() <= MAX_SITE_BYTES && page.len() <= MAX_PAGE_BYTES);
        let cfg = EngineConfig::with_window(window_s * 1000);
        prop_assert!(cfg.validate().is_ok());
        let mut p = Presence::new(isolate, cfg).with_location(&loc);
        let mut b = beat(1, false, 0);
        b.site.clone_from(&site);
        b.page.clone_from(&page);
        b.tab = "t".repeat(MAX_TAB_BYTES);
        p.heartbeat(T0, &b, Some(Member { id: member.clone(), name: "N".repeat(64) }));
        p.leave(T0 + 10_000, &b);
        let mut writes = p.take_writes(T0 + 200_000);
        writes.extend(p.take_writes(T0 + 400_000));
        prop_assert!(!writes.is_empty());
        for w in &writes {
            prop_assert!(w.key.len() <= MAX_KEY_BYTES, "{}", w.key.len());
            prop_assert!(w.ttl_s >= MIN_TTL_S);
            prop_assert!(w.value.len() <= MAX_VALUE_BYTES);
            prop_assert!(w.metadata.as_ref().is_none_or(|m| m.len() <= MAX_METADATA_BYTES));
        }
        prop_assert!(last_seen_key(&site, &member).len() <= MAX_KEY_BYTES);
    }
}

/// Heartbeats from `n` tabs with `page_len`-byte pages into one isolate; its one record.
fn big_record(n: u32, page_len: usize) -> (Presence, Write) {
    let mut p = Presence::new("big", EngineConfig::default()).with_location("L1");
    let page = format!("/{}", "x".repeat(page_len - 1));
    for i in 0..n {
        let b = Beat {
            site: SITE.into(),
            visitor: format!("00000000-0000-4000-8000-{i:012x}"),
            tab: "t".into(),
            page: page.clone(),
            state: TabState::Active,
            member_token: None,
        };
        p.heartbeat(T0 + u64::from(i) / 10, &b, None);
    }
    let now = T0 + u64::from(n) / 10 + 5_000;
    let w = p
        .take_writes(now)
        .into_iter()
        .find(|w| w.key.starts_with("r:"))
        .expect("a record");
    (p, w)
}

#[test]
fn a_hundred_thousand_tabs_fit_in_one_record() {
    let (mut p, w) = big_record(100_000, 24);
    let r = Record::decode(&w.value).expect("decodes");
    assert_eq!(r.tabs.len(), 100_000);
    assert!(w.value.len() <= MAX_VALUE_BYTES, "{} bytes", w.value.len());
    let meta = w.metadata.as_deref().expect("summary");
    assert!(meta.len() <= MAX_METADATA_BYTES);
    assert_eq!(Summary::decode(meta).expect("summary").online, 100_000);
    assert_eq!(p.count(T0 + 20_000, SITE, None).online, 100_000);
}

#[test]
fn past_the_value_limit_a_record_keeps_the_latest_tabs_and_the_summary_all() {
    // 100,000 tabs on 512-byte pages would make a ~60 MB record: capped under 25 MiB.
    let (mut p, w) = big_record(100_000, MAX_PAGE_BYTES);
    assert!(w.value.len() <= MAX_VALUE_BYTES, "{} bytes", w.value.len());
    let r = Record::decode(&w.value).expect("decodes");
    assert!(
        r.tabs.len() < 100_000 && r.tabs.len() > 10_000,
        "{}",
        r.tabs.len()
    );
    let oldest_kept = r.tabs.iter().map(|t| t.last_ms).min().unwrap_or(0);
    let newest = r.tabs.iter().map(|t| t.last_ms).max().unwrap_or(0);
    assert_eq!(
        newest,
        T0 + 99_999 / 10,
        "the most recently seen tabs are kept"
    );
    assert!(oldest_kept > T0, "the oldest are left out");
    // The location summary (what other locations count) and this isolate still count all.
    let summary = Summary::decode(w.metadata.as_deref().unwrap_or("")).expect("summary");
    assert_eq!(summary.online, 100_000);
    assert_eq!(p.count(T0 + 20_000, SITE, None).online, 100_000);
}
