//! The presence engine: per-isolate state, the records isolates publish, and the merge.
//!
//! The full design note, with the simulation's numbers, is `docs/design.md`.
//!
//! # Design (why it is cheap on KV and still accurate)
//!
//! Every edge isolate keeps the tabs that heartbeat *to it* in memory. A heartbeat from a
//! steady tab only moves a timestamp in memory: **no KV write per heartbeat**. Each isolate
//! publishes one record of its own per site, at key `r:{site}:{location}/{isolate}` (or
//! `r:{site}:{isolate}` when it does not know its location), holding its live tabs and its
//! recent tombstones, plus — in the key's *metadata*, which a listing returns for free — a
//! [`Summary`] of its whole location (people, tabs, members, idle, busiest pages). No key is
//! written by two isolates, so no isolate can erase another's visitors.
//!
//! **Two tiers.** Isolates of one location read each other's full records (KV shows a write
//! at once where it was made, so they are exact to about a second); isolates elsewhere read
//! only the summaries out of one listing (they see them 0–60 s late whatever is done, so
//! per-tab detail would buy nothing). A count costs one listing per refresh plus a read per
//! changed record of the *own* location — never anything per visitor — and its CPU grows
//! with the own location's tabs, not the whole site's. While other isolates of the location
//! are active, their records are read every [`EngineConfig::refresh_ms`] (a get each, at a
//! tenth of a listing's price) and the listing is repeated every
//! [`EngineConfig::remote_delay_ms`] ([`Presence::refresh_due`]).
//!
//! **When an isolate writes.** Only on events, batched, and as late as its readers allow.
//! [`Mode`] says who reads: *peers* (another isolate of this location is active: a join,
//! leave or time-out is written within [`EngineConfig::join_delay_ms`], a state or page
//! change within [`EngineConfig::change_delay_ms`]); *remote* (only other locations are
//! active: everything within [`EngineConfig::remote_delay_ms`], small beside their 0–60 s
//! lag); *solo* (no one else: within [`EngineConfig::solo_delay_ms`], as the isolate's
//! memory is the only reader). Joins and departures wait equally long in every mode, so
//! delays shift counts without biasing them. A
//! new isolate announces itself within the join delay whatever its mode, and an isolate
//! alone lists again after 5 s, 10 s, 20 s… up to the solo delay, so isolates starting
//! together find each other in seconds. A record is renewed when a third of its lease
//! ([`EngineConfig::lease_ms`]) is left.
//!
//! **Liveness.** A record *vouches* for its active tabs until its lease ends (for the other
//! isolates of its location, at most two windows after it was written: a peer that stopped
//! writing is presumed evicted). An idle tab (hidden: the client sends one idle beacon and
//! stops) carries its exact last heartbeat, so every reader drops it by itself at
//! `last + window` — no write for the own location; the isolate that saw the beacon
//! publishes a fresh summary then, as fast as a join. A leave is a tombstone dated at the
//! leave; a time-out of an active tab is a tombstone dated at the tab's *last heartbeat*,
//! so it can never beat a newer heartbeat seen elsewhere.
//!
//! **Random routing.** Within a location a tab's heartbeats land on any isolate. An isolate
//! whose copy of a tab times out writes a tombstone only if no record shows a newer heartbeat;
//! so that one does when the tab is alive, every isolate holding a heartbeat newer than the
//! newest published one publishes it before that one is a window old (less
//! [`EngineConfig::handoff_margin_ms`]) — a bounded refresh, about one write per window per
//! isolate, paid only when several isolates share a location. With the channel, the isolate
//! holding a tab's newest heartbeat times it out at its expiry, through its delayed flushes
//! ([`crate::service::Service::flush_timer_fired`]), not at its next request: at 32 isolates
//! a location's peers counted vanished tabs ~16 s too long. Should a tombstone still race a
//! newer heartbeat, the holder sees it on its next refresh and republishes at once. A tab a
//! peer has published with a newer heartbeat is left out of an isolate's record, so records
//! do not repeat each other.
//!
//! **Members.** A member's last-seen value (`m:{site}:{member}`) is written when the member
//! goes offline at the location, by one isolate only — the active one with the lowest id —
//! with its next record, so that no key is ever written by two isolates at once.
//!
//! **Merge.** Per tab the entry with the latest heartbeat wins (ties broken by the whole
//! entry), and a tombstone at or after that heartbeat removes it: a state-based CRDT, so the
//! result depends neither on the order records are read in nor on reading one twice.
//! Summaries of a location are derived data; readers take the latest written one.
//!
//! **Limits.** Keys stay under 512 bytes (sites ≤ 64 bytes, locations and isolate ids are
//! cut to 32 and 128, member ids are at most 128: `token::MAX_MEMBER_ID_BYTES`), metadata
//! under 1,024 bytes (summaries drop their least busy pages to fit), TTLs at least 60 s. A record
//! publishes at most [`EngineConfig::max_tabs_per_record`] tabs and [`RECORD_BUDGET_BYTES`]
//! bytes of tabs and tombstones (25 MiB is KV's value limit): past that it keeps the most
//! recently seen tabs; the rest still count in this isolate and in its location summary, so
//! only the other isolates of the location miss them.
//!
//! # Where each rule lives
//!
//! | module | what it holds |
//! |---|---|
//! | `config` | [`EngineConfig`], its validation ([`ConfigError`] names a [`Setting`]) |
//! | `keys` | [`Key`]: the one format of record and last-seen keys, written and parsed |
//! | `record` | the wire records: [`Record`], [`TabRecord`], [`Tombstone`], [`Summary`], [`LastSeen`] |
//! | `liveness` | when a tab is live, when a tombstone wins, until when a record vouches |
//! | `merge` | which of two entries of a tab wins; [`merge`] of many sources |
//! | `view` | the view of other isolates and locations, and how it is refreshed ([`Refresh`]) |
//! | `schedule` | when to write ([`Mode`], urgencies, the write spacing), [`Presence::take_writes`] |
//! | `count` | counting the live tabs of the location plus other locations' summaries |
//! | `members` | members online and their last-seen values |
//! | `site` | one site's state: held tabs, time-outs, reconciling with the view |
//! | `local` | the per-location channel: [`Directory`], [`Snapshot`], the location's publisher |
//!
//! The driver that runs this engine against a store is [`crate::service::Service`].

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::protocol::{Beat, Count, PageCount, TOP_PAGES, TabState};
use crate::store::{ListedKey, MAX_METADATA_BYTES, MIN_TTL_S};

mod config;
mod count;
mod keys;
mod liveness;
mod local;
mod members;
mod merge;
mod record;
mod schedule;
mod site;
mod view;

use crate::token::MAX_MEMBER_ID_BYTES;
pub use config::{ConfigError, EngineConfig, Setting};
pub use keys::{
    Key, MAX_ISOLATE_BYTES, MAX_KEY_BYTES, MAX_LOCATION_BYTES, last_seen_key, record_prefix,
};
pub use local::{
    ChannelValue, DIR_RENEW_MS, DIR_STALE_MS, DIRECTORY_TTL_S, Directory, Snapshot, TAKEOVER_MS,
};
pub use members::{Member, OnlineMember};
pub use merge::merge;
pub use record::{
    LastSeen, MAX_VALUE_BYTES, RECORD_BUDGET_BYTES, Record, Summary, TabRecord, Tombstone, Write,
};
pub use schedule::Mode;
pub use view::{IndexedRecord, Refresh};

use count::{live_location_tabs, summarize};
use keys::{key_location, key_part, split_tab_key, tab_key, tab_key_into};
use members::{MemberSeen, members_gone};
use merge::wins_over;
use record::{RecordOut, tab_bytes};
use schedule::Urgency;
use site::{Held, SiteState};
use view::{RemoteView, latest_summaries};

/// The engine state of one isolate: its own tabs per site and its view of the others.
#[derive(Debug, Clone)]
pub struct Presence {
    isolate: String,
    location: Option<String>,
    config: EngineConfig,
    sites: HashMap<String, SiteState>,
    /// Whether records of this location travel through the per-location channel.
    local: bool,
}

impl Presence {
    /// An isolate named `isolate` (unique per isolate: a random id), location unknown: it
    /// then reads every other isolate's full record, as if all shared its location.
    #[must_use]
    pub fn new(isolate: impl Into<String>, config: EngineConfig) -> Self {
        Self {
            isolate: key_part(&isolate.into(), MAX_ISOLATE_BYTES),
            location: None,
            config,
            sites: HashMap::new(),
            local: false,
        }
    }

    /// The same isolate, placed in `location` (on Workers: `request.cf.colo`). Isolates of
    /// one location read each other's full records; other locations only their summaries.
    #[must_use]
    pub fn with_location(mut self, location: &str) -> Self {
        self.location = Some(key_part(location, MAX_LOCATION_BYTES));
        self
    }

    /// The config.
    #[must_use]
    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    /// This isolate's id.
    #[must_use]
    pub fn isolate(&self) -> &str {
        &self.isolate
    }

    /// This isolate's location, if set.
    #[must_use]
    pub fn location(&self) -> Option<&str> {
        self.location.as_deref()
    }

    /// The key this isolate writes its record for `site` at.
    #[must_use]
    pub fn own_key(&self, site: &str) -> String {
        Key::Record {
            site,
            location: self.location.as_deref(),
            isolate: &self.isolate,
        }
        .to_string()
    }

    fn site(&mut self, site: &str) -> &mut SiteState {
        self.sites.entry(site.to_owned()).or_default()
    }

    /// How this isolate currently publishes for `site`.
    #[must_use]
    pub fn mode(&self, now: u64, site: &str) -> Mode {
        self.sites.get(site).map_or(Mode::Solo, |s| s.mode(now))
    }

    /// Records a heartbeat (already validated) from `beat`'s tab, as `member` if verified.
    pub fn heartbeat(&mut self, now: u64, beat: &Beat, member: Option<Member>) {
        let cfg = self.config.clone();
        let s = self.site(&beat.site);
        s.sweep(now, &cfg);
        let mode = s.mode(now);
        s.mode = Some(mode);
        let key = tab_key(&beat.visitor, &beat.tab);
        if let Some(m) = &member {
            let e = s
                .members_live
                .entry(m.id.clone())
                .or_insert_with(|| MemberSeen {
                    member: m.clone(),
                    last_ms: now,
                    tabs: Vec::new(),
                });
            e.last_ms = e.last_ms.max(now);
            if !e.tabs.contains(&key) {
                e.tabs.push(key.clone());
            }
        }
        if s.gone
            .get(&key)
            .is_some_and(|g| !liveness::tombstone_wins(g.at_ms, now))
        {
            s.gone.remove(&key);
        }
        if s.tabs
            .get(&key)
            .is_some_and(|h| !liveness::is_live(h.rec.last_ms, cfg.window_ms, now))
        {
            // Timed out here but back: a rejoin, no tombstone needed.
            s.tabs.remove(&key);
        }
        // A tombstone elsewhere that removed every published copy: this beat rejoins.
        let view_tomb = s.remote.view(&key).tomb;
        // The view's live entry: (last heartbeat, first heartbeat, differs from this beat).
        let view_live = s.remote.view(&key).live(now, cfg.window_ms).map(|v| {
            let differs = v.page != beat.page || v.state != beat.state || v.member != member;
            (v.last_ms, v.first_ms, differs)
        });
        match s.tabs.get_mut(&key) {
            Some(h) => {
                let t = &mut h.rec;
                t.last_ms = t.last_ms.max(now);
                let changed = t.page != beat.page || t.state != beat.state;
                let woke = t.state == TabState::Idle && beat.state == TabState::Active;
                let member_changed = t.member != member;
                t.page.clone_from(&beat.page);
                t.state = beat.state;
                let known = h.known_ms;
                if member_changed {
                    h.rec.member.clone_from(&member);
                    s.pend(Urgency::Join, now);
                } else if liveness::revived(view_tomb, h.known_ms, now) {
                    s.pend(Urgency::Now, now);
                } else if woke && view_live.is_none() {
                    // Published as idle: readers drop it a window after that; rejoin.
                    s.pend(Urgency::Join, now);
                } else if changed {
                    s.pend(Urgency::Change, now);
                }
                if mode == Mode::Peers
                    && let Some(k) = known
                {
                    let d = schedule::handoff_due(&cfg, k);
                    s.handoff_due = Some(s.handoff_due.map_or(d, |x| x.min(d)));
                }
            }
            None => {
                let rec = TabRecord {
                    visitor: beat.visitor.clone(),
                    tab: beat.tab.clone(),
                    page: beat.page.clone(),
                    state: beat.state,
                    member: member.clone(),
                    first_ms: view_live.map_or(now, |v| v.1.min(now)),
                    last_ms: now,
                };
                let known = match view_live {
                    Some((last, _, differs)) => {
                        // Handed over from another isolate of this location.
                        if differs {
                            s.pend(Urgency::Change, now);
                        }
                        if mode == Mode::Peers {
                            let d = schedule::handoff_due(&cfg, last);
                            s.handoff_due = Some(s.handoff_due.map_or(d, |x| x.min(d)));
                        }
                        Some(last)
                    }
                    None => {
                        s.pend(Urgency::Join, now);
                        None
                    }
                };
                s.tabs.insert(
                    key,
                    Held {
                        rec,
                        ours: None,
                        known_ms: known,
                    },
                );
            }
        }
    }

    /// Records that `beat`'s tab left (the pagehide beacon).
    pub fn leave(&mut self, now: u64, beat: &Beat) {
        let cfg = self.config.clone();
        let s = self.site(&beat.site);
        s.sweep(now, &cfg);
        s.mode = Some(s.mode(now));
        let key = tab_key(&beat.visitor, &beat.tab);
        let mut published = s.remote.view(&key).best.is_some();
        if let Some(h) = s.tabs.remove(&key) {
            published |= h.ours.is_some();
        }
        s.gone.insert(
            key,
            Tombstone {
                visitor: beat.visitor.clone(),
                tab: beat.tab.clone(),
                at_ms: now,
            },
        );
        // A tab nobody published needs no hurry — unless a peer of this location may have it
        // pending: its join would show before this leave.
        let urgent = published || s.mode(now) == Mode::Peers;
        s.pend(
            if urgent {
                Urgency::Now
            } else {
                Urgency::Change
            },
            now,
        );
    }

    /// Whether `visitor`'s `tab` counts in this isolate's view of its own location at `now`
    /// (for tests and the simulation).
    #[cfg(any(test, feature = "testing"))]
    pub fn tab_counted(&mut self, now: u64, site: &str, visitor: &str, tab: &str) -> bool {
        let cfg = self.config.clone();
        let s = self.site(site);
        s.sweep(now, &cfg);
        let key = tab_key(visitor, tab);
        let v = s.remote.view(&key);
        let own_tomb = s.gone.get(&key).map(|g| g.at_ms);
        match (s.tabs.get(&key), v.best) {
            (Some(h), best) if best.is_none_or(|(b, _)| !wins_over(b, &h.rec)) => {
                liveness::is_live(h.rec.last_ms, cfg.window_ms, now)
                    && !liveness::removed(own_tomb.max(v.tomb), h.rec.last_ms)
            }
            _ => v
                .live(now, cfg.window_ms)
                .is_some_and(|t| !liveness::removed(own_tomb, t.last_ms)),
        }
    }

    /// When the latest summary of `location` this isolate has seen was written (for tests
    /// and the simulation).
    #[cfg(any(test, feature = "testing"))]
    #[must_use]
    pub fn location_as_of(&self, site: &str, location: &str) -> Option<u64> {
        self.sites
            .get(site)?
            .remote
            .summaries
            .values()
            .filter(|(_, s)| s.location.as_deref() == Some(location))
            .map(|(_, s)| s.written_ms)
            .max()
    }

    /// The summaries of other locations a count at `now` adds up: (location, written, people
    /// online), one per location (for tests and the simulation).
    #[cfg(any(test, feature = "testing"))]
    #[must_use]
    pub fn summaries_counted(&self, now: u64, site: &str) -> Vec<(Option<String>, u64, u64)> {
        self.sites.get(site).map_or_else(Vec::new, |s| {
            latest_summaries(s, now)
                .into_iter()
                .map(|sum| (sum.location.clone(), sum.written_ms, sum.online))
                .collect()
        })
    }

    /// When this isolate last listed `site`'s records (for tests and the simulation).
    #[cfg(any(test, feature = "testing"))]
    #[must_use]
    pub fn listed_at(&self, site: &str) -> Option<u64> {
        self.sites.get(site)?.remote.fetched_ms
    }

    /// How many entries each of this isolate's collections holds, over all sites: what its
    /// memory grows with (for diagnostics; see `DEBUG_STATS` at the edge).
    #[must_use]
    pub fn stats(&self) -> EngineStats {
        let mut st = EngineStats {
            sites: self.sites.len(),
            ..EngineStats::default()
        };
        for s in self.sites.values() {
            st.tabs += s.tabs.len();
            st.tombstones += s.gone.len();
            st.records += s.remote.records.len();
            st.record_tabs += s
                .remote
                .records
                .values()
                .map(|(_, r)| r.record.tabs.len() + r.record.gone.len())
                .sum::<usize>();
            st.summaries += s.remote.summaries.len();
            st.members += s.members_live.len();
        }
        st
    }
}

/// Sizes of an isolate's engine state ([`Presence::stats`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct EngineStats {
    /// Sites with state.
    pub sites: usize,
    /// Tabs held in memory.
    pub tabs: usize,
    /// Own tombstones kept.
    pub tombstones: usize,
    /// Other isolates' full records cached.
    pub records: usize,
    /// Tabs and tombstones in those records.
    pub record_tabs: usize,
    /// Other locations' summaries cached.
    pub summaries: usize,
    /// Members with a live tab here.
    pub members: usize,
}

#[cfg(test)]
mod tests;
