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
//! isolate, paid only when several isolates share a location. Should a tombstone still race a
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
//! cut to 32 and 128, member ids over 256 bytes get no last-seen value), metadata under
//! 1,024 bytes (summaries drop their least busy pages to fit), TTLs at least 60 s. A record
//! publishes at most [`EngineConfig::max_tabs_per_record`] tabs and [`RECORD_BUDGET_BYTES`]
//! bytes of tabs and tombstones (25 MiB is KV's value limit): past that it keeps the most
//! recently seen tabs; the rest still count in this isolate and in its location summary, so
//! only the other isolates of the location miss them.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::protocol::{Beat, Count, PageCount, TOP_PAGES, TabState};
use crate::store::{ListedKey, MAX_METADATA_BYTES, MIN_TTL_S};

/// KV's largest key, in bytes.
pub const MAX_KEY_BYTES: usize = 512;
/// KV's largest value, in bytes (25 MiB).
pub const MAX_VALUE_BYTES: usize = 25 * 1024 * 1024;
/// The most bytes of tabs and tombstones one record publishes (headroom under
/// [`MAX_VALUE_BYTES`]).
pub const RECORD_BUDGET_BYTES: usize = 24 * 1024 * 1024;
/// Isolate ids are cut to this many bytes in keys.
pub const MAX_ISOLATE_BYTES: usize = 128;
/// Location names are cut to this many bytes in keys.
pub const MAX_LOCATION_BYTES: usize = 32;
/// Member ids longer than this get no last-seen value (tokens allow 128 bytes).
pub const MAX_MEMBER_ID_BYTES: usize = 256;
/// How often an isolate looks for timed-out tabs, in ms (counts filter exactly anyway).
const SWEEP_EVERY_MS: u64 = 1_000;

/// Tunables of the engine. All times are in milliseconds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineConfig {
    /// A tab with no heartbeat for this long is gone (default 60 s).
    pub window_ms: u64,
    /// The heartbeat interval clients are told to use (default 15 s).
    pub heartbeat_ms: u64,
    /// The least time between two writes of one record (default 1 s; KV allows 1 write/s).
    pub flush_min_ms: u64,
    /// How long a join, leave or time-out may wait before it is published while another
    /// isolate of this location is active (default 1 s). Joins and departures wait equally
    /// long, so the other isolates' counts lag but are not biased (a leave then shows at
    /// them within this delay plus [`EngineConfig::refresh_ms`]).
    pub join_delay_ms: u64,
    /// How long a state or page change may wait before it is published (default 10 s).
    pub change_delay_ms: u64,
    /// How long a record vouches for its active tabs (default 5 min).
    pub lease_ms: u64,
    /// How often the records of this location's other isolates are read (a get each, no
    /// listing) while they are active (default 500 ms).
    pub refresh_ms: u64,
    /// Publishing delay when only isolates of other locations are active, and how often the
    /// records are listed (default 5 s; other locations see writes up to 60 s late anyway).
    pub remote_delay_ms: u64,
    /// Publishing delay, and view reuse, when no other isolate is active (default 180 s).
    pub solo_delay_ms: u64,
    /// How long before a published heartbeat is a window old an isolate holding a newer
    /// one republishes it, when several isolates share the location (default 5 s).
    pub handoff_margin_ms: u64,
    /// How long a member's last-seen time is kept in KV (default 90 days).
    pub last_seen_ttl_ms: u64,
    /// The most tabs one record holds (default 100,000).
    pub max_tabs_per_record: usize,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            window_ms: 60_000,
            heartbeat_ms: 15_000,
            flush_min_ms: 1_000,
            join_delay_ms: 1_000,
            change_delay_ms: 10_000,
            lease_ms: 300_000,
            refresh_ms: 500,
            remote_delay_ms: 5_000,
            solo_delay_ms: 180_000,
            handoff_margin_ms: 5_000,
            last_seen_ttl_ms: 90 * 24 * 3_600_000,
            max_tabs_per_record: 100_000,
        }
    }
}

impl EngineConfig {
    /// The `Retry-After` a store failure is answered with, in seconds: one heartbeat
    /// interval rounded up, from 1 to [`crate::store::STORE_RETRY_AFTER_S`]. A client that
    /// honours it stays away no longer than between two heartbeats, so it is back inside
    /// the window once the store is (5 s with the default 15 s interval; 1 s for windows
    /// of 4 s and less, where a fixed 5 s would outlast the window).
    #[must_use]
    pub fn store_retry_after_s(&self) -> u32 {
        let s = self.heartbeat_ms.div_ceil(1000).max(1);
        u32::try_from(s).map_or(crate::store::STORE_RETRY_AFTER_S, |s| {
            s.min(crate::store::STORE_RETRY_AFTER_S)
        })
    }

    /// A config with `window_ms` and the other settings scaled to fit it, as tests with
    /// short windows use: heartbeat a quarter of the window, lease twice the window.
    #[must_use]
    pub fn with_window(window_ms: u64) -> Self {
        let d = Self::default();
        Self {
            window_ms,
            heartbeat_ms: (window_ms / 4).max(250),
            lease_ms: (window_ms * 2).max(2_000),
            join_delay_ms: d.join_delay_ms.min(window_ms / 2),
            change_delay_ms: d.change_delay_ms.min(window_ms / 2),
            remote_delay_ms: d.remote_delay_ms.min(window_ms / 4).max(d.flush_min_ms),
            solo_delay_ms: d.solo_delay_ms.min(window_ms * 2),
            handoff_margin_ms: d.handoff_margin_ms.min(window_ms / 8),
            ..d
        }
    }

    /// Checks the settings against each other and KV's limits.
    ///
    /// # Errors
    /// The first bad setting, named by its field (a caller maps it to its own name).
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |setting, message: String| Err(ConfigError { setting, message });
        if self.window_ms < 1_000 {
            return bad(
                Setting::Window,
                format!("window must be at least 1 s (got {} ms)", self.window_ms),
            );
        }
        if self.heartbeat_ms < 250 || self.heartbeat_ms >= self.window_ms {
            return bad(
                Setting::Heartbeat,
                format!(
                    "heartbeat interval must be at least 250 ms and below the window (got {} ms, window {} ms)",
                    self.heartbeat_ms, self.window_ms
                ),
            );
        }
        if self.flush_min_ms < 1_000 {
            return bad(
                Setting::FlushMin,
                "flush interval must be at least 1 s (KV allows one write per second per key)"
                    .into(),
            );
        }
        if self.lease_ms < self.window_ms {
            return bad(
                Setting::Lease,
                format!(
                    "lease ({} ms) must be at least the window ({} ms)",
                    self.lease_ms, self.window_ms
                ),
            );
        }
        if self.max_tabs_per_record == 0 {
            return bad(
                Setting::MaxTabsPerRecord,
                "max tabs per record must be at least 1".into(),
            );
        }
        if self.handoff_margin_ms + self.heartbeat_ms >= self.window_ms {
            // The heartbeat is what a deployment sets; the margin follows the window.
            return bad(
                Setting::Heartbeat,
                format!(
                    "heartbeat interval ({} ms) plus the handoff margin ({} ms) must be below the window ({} ms)",
                    self.heartbeat_ms, self.handoff_margin_ms, self.window_ms
                ),
            );
        }
        Ok(())
    }

    fn tombstone_ms(&self) -> u64 {
        self.lease_ms + self.window_ms
    }

    fn record_ttl_s(&self) -> u64 {
        ((self.lease_ms + self.window_ms) / 1000 + 1).max(MIN_TTL_S)
    }

    /// How long after its last write another isolate of this location still counts as
    /// active (a peer-mode writer republishes at least about once per window).
    fn peer_active_ms(&self) -> u64 {
        2 * self.window_ms
    }

    /// Until when a record of another isolate of this location vouches for its active
    /// tabs: its lease, but at most [`EngineConfig::peer_active_ms`] after it was written.
    /// A peer that stopped writing that long is presumed evicted: tabs still alive have
    /// heartbeated to another isolate of the location by then.
    fn peer_vouch_until(&self, record: &Record) -> u64 {
        record
            .lease_until_ms
            .min(record.written_ms.saturating_add(self.peer_active_ms()))
    }
}

/// A field of [`EngineConfig`], as [`ConfigError`] names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Setting {
    /// [`EngineConfig::window_ms`].
    Window,
    /// [`EngineConfig::heartbeat_ms`] (also blamed when it leaves no room for the
    /// handoff margin inside the window).
    Heartbeat,
    /// [`EngineConfig::flush_min_ms`].
    FlushMin,
    /// [`EngineConfig::lease_ms`].
    Lease,
    /// [`EngineConfig::max_tabs_per_record`].
    MaxTabsPerRecord,
}

/// A bad [`EngineConfig`]: which field, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The field at fault.
    pub setting: Setting,
    /// What is wrong with it.
    pub message: String,
}

impl core::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ConfigError {}

/// What refreshing an isolate's view of the others takes now ([`Presence::refresh_due`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refresh {
    /// Nothing: the view is fresh enough.
    Fresh,
    /// A read of each of these records of this location's peers, passed to
    /// [`Presence::apply_polled`]; no listing is due.
    Poll(Vec<String>),
    /// A listing of [`record_prefix`], then a read of each key [`Presence::keys_to_fetch`]
    /// names, passed to [`Presence::apply_remote`].
    List,
}

/// Who reads what an isolate writes, as far as it can tell; sets how fast it publishes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Another isolate of this location is active: changes go out as fast as KV allows.
    Peers,
    /// Only isolates of other locations are active (they see writes 0–60 s late anyway).
    Remote,
    /// No other isolate is active: this isolate's own memory is the only reader.
    Solo,
}

/// A verified member identity (from a member token).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Member {
    /// The stable member id (the token's `sub`).
    pub id: String,
    /// The display name (the token's `name`).
    pub name: String,
}

/// A member online now, as `GET /v1/online` lists them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OnlineMember {
    /// The member id.
    pub id: String,
    /// The display name.
    pub name: String,
    /// The page of the member's most recently seen tab.
    pub page: String,
    /// When the member's earliest live tab joined, in Unix ms.
    pub since: u64,
}

/// A member's last-seen value as stored at [`last_seen_key`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastSeen {
    /// When the member was last seen, in Unix ms.
    pub last_seen: u64,
    /// The display name then.
    pub name: String,
}

/// A write the engine asks its driver to make.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Write {
    /// The key.
    pub key: String,
    /// The value.
    pub value: Vec<u8>,
    /// Metadata returned by listings (for records: the location [`Summary`] as JSON).
    pub metadata: Option<String>,
    /// Expiration TTL in seconds (at least KV's 60).
    pub ttl_s: u64,
}

/// One tab as stored in a record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TabRecord {
    /// Visitor id.
    #[serde(rename = "v")]
    pub visitor: String,
    /// Tab id.
    #[serde(rename = "t")]
    pub tab: String,
    /// Page.
    #[serde(rename = "p")]
    pub page: String,
    /// State.
    #[serde(rename = "s")]
    pub state: TabState,
    /// Member, if the visitor is one.
    #[serde(rename = "m", default, skip_serializing_if = "Option::is_none")]
    pub member: Option<Member>,
    /// First heartbeat, Unix ms.
    #[serde(rename = "f")]
    pub first_ms: u64,
    /// Last heartbeat seen by the writer, Unix ms.
    #[serde(rename = "l")]
    pub last_ms: u64,
}

/// A tombstone: the tab left at `at_ms`, or timed out after its last heartbeat at `at_ms`.
/// It removes every entry of the tab whose last heartbeat is not later.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tombstone {
    /// Visitor id.
    #[serde(rename = "v")]
    pub visitor: String,
    /// Tab id.
    #[serde(rename = "t")]
    pub tab: String,
    /// When the tab left (or was last seen before timing out), Unix ms.
    #[serde(rename = "a")]
    pub at_ms: u64,
}

/// What one isolate publishes for one site.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// Format version (1).
    #[serde(rename = "ver")]
    pub version: u8,
    /// The isolate that wrote it.
    #[serde(rename = "iso")]
    pub isolate: String,
    /// The writer's location, if it knows it.
    #[serde(rename = "loc", default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    /// When it was written, Unix ms.
    #[serde(rename = "w")]
    pub written_ms: u64,
    /// Until when it vouches for its active tabs, Unix ms.
    #[serde(rename = "u")]
    pub lease_until_ms: u64,
    /// Live tabs.
    #[serde(rename = "tabs")]
    pub tabs: Vec<TabRecord>,
    /// Recent tombstones.
    #[serde(rename = "gone")]
    pub gone: Vec<Tombstone>,
}

impl Record {
    /// Encodes as compact JSON.
    #[must_use]
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Decodes a record; `None` for anything that is not a version-1 record.
    #[must_use]
    pub fn decode(bytes: &[u8]) -> Option<Self> {
        serde_json::from_slice::<Self>(bytes)
            .ok()
            .filter(|r| r.version == 1)
    }
}

/// A location's count as one of its isolates saw it when writing its record; carried in
/// the record key's metadata so that other locations count from a listing alone.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Summary {
    /// When it was written, Unix ms.
    #[serde(rename = "w")]
    pub written_ms: u64,
    /// Until when it vouches for its people, Unix ms.
    #[serde(rename = "u")]
    pub lease_until_ms: u64,
    /// The location, if known.
    #[serde(rename = "l", default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    /// People online.
    #[serde(rename = "o")]
    pub online: u64,
    /// Live tabs.
    #[serde(rename = "t")]
    pub tabs: u64,
    /// People online who are members.
    #[serde(rename = "m")]
    pub members: u64,
    /// People online none of whose tabs is active.
    #[serde(rename = "i")]
    pub idle: u64,
    /// The busiest pages with their people, as many as fit in KV's metadata.
    #[serde(rename = "p", default, skip_serializing_if = "Vec::is_empty")]
    pub pages: Vec<(String, u64)>,
}

impl Summary {
    /// Encodes as JSON of at most [`MAX_METADATA_BYTES`] bytes: pages are dropped from the
    /// least busy until it fits.
    #[must_use]
    pub fn encode(&self) -> String {
        let mut s = self.clone();
        loop {
            let json = serde_json::to_string(&s).unwrap_or_default();
            if json.len() <= MAX_METADATA_BYTES || s.pages.is_empty() {
                return json;
            }
            // Drop about the overflow's worth of pages at once, at least one.
            let over = json.len() - MAX_METADATA_BYTES;
            let mut freed = 0;
            while freed < over {
                match s.pages.pop() {
                    Some((p, n)) => freed += p.len() + n.to_string().len() + 6,
                    None => break,
                }
            }
        }
    }

    /// Decodes metadata written by [`Summary::encode`].
    #[must_use]
    pub fn decode(metadata: &str) -> Option<Self> {
        serde_json::from_str(metadata).ok()
    }
}

/// The key prefix of a site's isolate records.
#[must_use]
pub fn record_prefix(site: &str) -> String {
    format!("r:{site}:")
}

/// The key of a member's last-seen value.
#[must_use]
pub fn last_seen_key(site: &str, member: &str) -> String {
    format!("m:{site}:{member}")
}

/// The site and member a [`last_seen_key`] names.
fn parse_last_seen_key(key: &str) -> Option<(&str, &str)> {
    key.strip_prefix("m:")?.split_once(':')
}

/// The location a record key names (`r:{site}:{location}/{isolate}`), if any.
fn key_location<'a>(prefix: &str, key: &'a str) -> Option<&'a str> {
    key.strip_prefix(prefix)?
        .split_once('/')
        .map(|(loc, _)| loc)
}

fn tab_key(visitor: &str, tab: &str) -> String {
    format!("{visitor}/{tab}")
}

/// Cuts `s` to at most `max` bytes of `[A-Za-z0-9_.-]` (others become `_`).
fn key_part(s: &str, max: usize) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.') {
                c
            } else {
                '_'
            }
        })
        .take(max)
        .collect()
}

/// Whether entry `a` beats entry `b` of the same tab (latest heartbeat, then the whole
/// entry, so that the winner never depends on order).
fn beats(a: &TabRecord, b: &TabRecord) -> bool {
    (a.last_ms, a.first_ms, &a.page, a.state, &a.member)
        > (b.last_ms, b.first_ms, &b.page, b.state, &b.member)
}

/// A tab this isolate holds in memory.
#[derive(Debug, Clone)]
struct Held {
    rec: TabRecord,
    /// What this isolate last published for it: (last heartbeat, state).
    ours: Option<(u64, TabState)>,
    /// The newest heartbeat of it published anywhere, as far as this isolate knows.
    known_ms: Option<u64>,
}

/// A fetched record with its tabs and tombstones indexed by tab, as a view keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexedRecord {
    record: Record,
    tabs: HashMap<String, usize>,
    gone: HashMap<String, u64>,
}

impl IndexedRecord {
    /// Indexes `record`.
    #[must_use]
    pub fn new(record: Record) -> Self {
        let tabs = record
            .tabs
            .iter()
            .enumerate()
            .map(|(i, t)| (tab_key(&t.visitor, &t.tab), i))
            .collect();
        let mut gone: HashMap<String, u64> = HashMap::new();
        for g in &record.gone {
            let e = gone.entry(tab_key(&g.visitor, &g.tab)).or_insert(g.at_ms);
            *e = (*e).max(g.at_ms);
        }
        Self { record, tabs, gone }
    }

    /// The record.
    #[must_use]
    pub fn record(&self) -> &Record {
        &self.record
    }
}

/// The merged entries of the other isolates of this location for one tab.
#[derive(Debug, Clone, Copy, Default)]
struct ViewTab<'a> {
    /// The winning entry and the lease of the record it came from.
    best: Option<(&'a TabRecord, u64)>,
    /// The latest tombstone.
    tomb: Option<u64>,
}

impl<'a> ViewTab<'a> {
    /// The winning entry if it still counts at `now` (ignoring tombstones from elsewhere).
    fn live(&self, now: u64, window: u64) -> Option<&'a TabRecord> {
        let (t, lease) = self.best?;
        if self.tomb.is_some_and(|g| g >= t.last_ms) {
            return None;
        }
        let alive = match t.state {
            TabState::Idle => t.last_ms + window > now,
            TabState::Active => lease > now,
        };
        alive.then_some(t)
    }

    fn last(&self) -> Option<u64> {
        self.best.map(|(t, _)| t.last_ms)
    }
}

#[derive(Debug, Default)]
struct RemoteView {
    /// When the records were last listed.
    fetched_ms: Option<u64>,
    /// When the records of this location's peers were last read without a listing.
    polled_ms: Option<u64>,
    /// Full records (of this location; of others too while member lists are wanted), by
    /// key, with the metadata they were listed with.
    records: BTreeMap<String, (Option<String>, Arc<IndexedRecord>)>,
    /// Summaries of other locations' records, by key, with their metadata.
    summaries: BTreeMap<String, (String, Summary)>,
    /// The records of the other isolates of this location, each with until when its active
    /// tabs count ([`EngineConfig::peer_vouch_until`]).
    same: Vec<(Arc<IndexedRecord>, u64)>,
    /// The ids of the other active isolates of this location.
    same_ids: Vec<String>,
    /// Until when another isolate of this location counts as active.
    same_active_until: u64,
    /// Until when an isolate of another location counts as active.
    other_active_until: u64,
    /// Until when member lists are wanted (remote records are then fetched too).
    members_until: u64,
    /// When remote records were last fetched for member lists.
    members_fetched_ms: Option<u64>,
    /// Refreshes in a row that found no other active isolate.
    solo_streak: u32,
}

impl RemoteView {
    /// The merged entries of the other isolates of this location for tab `key`.
    fn view(&self, key: &str) -> ViewTab<'_> {
        let mut v = ViewTab::default();
        for (r, vouch_until) in &self.same {
            if let Some(&i) = r.tabs.get(key) {
                let t = &r.record.tabs[i];
                if v.best.is_none_or(|(b, _)| beats(t, b)) {
                    v.best = Some((t, *vouch_until));
                }
            }
            if let Some(&g) = r.gone.get(key) {
                v.tomb = Some(v.tomb.map_or(g, |x| x.max(g)));
            }
        }
        v
    }
}

/// Urgency classes of unpublished changes.
#[derive(Debug, Clone, Copy)]
enum Urgency {
    /// A leave, time-out or revival (published as fast as a join).
    Now = 0,
    /// A join.
    Join = 1,
    /// A state or page change.
    Change = 2,
}

#[derive(Debug, Default)]
struct SiteState {
    /// Bumped on every change a count could show (a join, leave, change or new view), so a
    /// driver can reuse a computed count until it moves.
    version: u64,
    tabs: HashMap<String, Held>,
    gone: HashMap<String, Tombstone>,
    /// Earliest unpublished change per urgency.
    pending: [Option<u64>; 3],
    /// When a held heartbeat must be republished (peers mode only).
    handoff_due: Option<u64>,
    last_flush_ms: Option<u64>,
    lease_until_ms: u64,
    /// Whether the last published record held any tab or tombstone.
    published_content: bool,
    next_sweep_ms: u64,
    mode: Option<Mode>,
    remote: RemoteView,
    /// Members with a live tab here, and how many tabs.
    members_live: BTreeMap<String, MemberSeen>,
    /// The last-seen values handed out by the latest [`Presence::take_writes`], by member
    /// id, kept so that [`Presence::write_failed`] can queue one again.
    last_seen_sent: BTreeMap<String, (Member, u64)>,
    /// Last-seen values whose write failed, written again with the next record.
    last_seen_retry: BTreeMap<String, (Member, u64)>,
}

impl SiteState {
    fn mode(&self, now: u64) -> Mode {
        if self.remote.same_active_until > now {
            Mode::Peers
        } else if self.remote.other_active_until > now {
            Mode::Remote
        } else {
            Mode::Solo
        }
    }

    fn pend(&mut self, urgency: Urgency, at: u64) {
        self.version += 1;
        let slot = &mut self.pending[urgency as usize];
        *slot = Some(slot.map_or(at, |d| d.min(at)));
    }

    fn delay(cfg: &EngineConfig, urgency: Urgency, mode: Mode, first: bool) -> u64 {
        match (mode, urgency) {
            // A new isolate announces itself at once, so that others find it.
            (_, Urgency::Now | Urgency::Join) if first => cfg
                .join_delay_ms
                .min(Self::delay(cfg, urgency, mode, false)),
            // Joins and departures alike: a departure published sooner than a join would
            // bias the peers' counts low.
            (Mode::Peers, Urgency::Now | Urgency::Join) => cfg.join_delay_ms,
            (Mode::Peers | Mode::Remote, Urgency::Change) => {
                cfg.change_delay_ms.max(cfg.remote_delay_ms)
            }
            (Mode::Remote, _) => cfg.remote_delay_ms,
            (Mode::Solo, _) => cfg.solo_delay_ms,
        }
    }

    /// How long a listing is reused. Alone, an isolate looks again after the remote delay,
    /// then twice as long each time it still finds no one, up to the solo delay: it finds
    /// isolates that start with it within seconds, and costs few listings when alone.
    fn list_every(&self, cfg: &EngineConfig, mode: Mode) -> u64 {
        match mode {
            Mode::Peers | Mode::Remote => cfg.remote_delay_ms.max(cfg.refresh_ms),
            Mode::Solo => {
                let backoff = cfg.remote_delay_ms << self.remote.solo_streak.min(16);
                backoff.min(cfg.solo_delay_ms).max(cfg.refresh_ms)
            }
        }
    }

    /// Recomputes the records of this location's peers and whether any is active.
    fn rebuild_same(&mut self, now: u64, cfg: &EngineConfig, prefix: &str, my_loc: Option<&str>) {
        let r = &mut self.remote;
        r.same.clear();
        r.same_ids.clear();
        r.same_active_until = 0;
        for (k, (_, rec)) in &r.records {
            if key_location(prefix, k) != my_loc {
                continue;
            }
            let active_until = rec.record.written_ms + cfg.peer_active_ms();
            r.same_active_until = r.same_active_until.max(active_until);
            if active_until > now {
                r.same_ids.push(rec.record.isolate.clone());
            }
            r.same
                .push((rec.clone(), cfg.peer_vouch_until(&rec.record)));
        }
    }

    fn has_content(&self) -> bool {
        !self.tabs.is_empty() || !self.gone.is_empty() || self.published_content
    }

    /// When the record must be written next (before the 1 write/s spacing).
    fn due(&self, cfg: &EngineConfig, mode: Mode) -> Option<u64> {
        let mut due: Option<u64> = None;
        let mut take = |d: u64| due = Some(due.map_or(d, |x| x.min(d)));
        for (i, u) in [Urgency::Now, Urgency::Join, Urgency::Change]
            .into_iter()
            .enumerate()
        {
            if let Some(at) = self.pending[i] {
                take(at + Self::delay(cfg, u, mode, self.last_flush_ms.is_none()));
            }
        }
        if mode == Mode::Peers
            && let Some(h) = self.handoff_due
        {
            take(h);
        }
        if self.last_flush_ms.is_some() && self.has_content() {
            take(self.lease_until_ms.saturating_sub(cfg.lease_ms / 3));
        }
        due
    }

    /// Whether the view's entry for `key` has a newer heartbeat than `than`.
    fn newer_elsewhere(&self, key: &str, than: u64) -> bool {
        self.remote.view(key).last().is_some_and(|l| l > than)
    }

    /// Handles a held tab that has had no heartbeat here for a window.
    fn time_out(&mut self, key: &str, now: u64, cfg: &EngineConfig) {
        let Some(h) = self.tabs.remove(key) else {
            return;
        };
        let t_x = h.rec.last_ms;
        if self.newer_elsewhere(key, t_x) {
            // Another isolate saw it later: that one is responsible for it now.
            return;
        }
        // Does a published copy still vouch for it? (Idle copies expire by themselves.)
        let ours_vouches = h.ours.is_some_and(|(_, s)| s == TabState::Active);
        let view = self.remote.view(key);
        let view_vouches = view
            .live(now, cfg.window_ms)
            .is_some_and(|t| t.state == TabState::Active);
        if !(ours_vouches || view_vouches) {
            // Idle copies expire by themselves where the full records are read; other
            // locations see it in the next summary, published as soon as a join would be.
            if h.ours.is_some() || view.best.is_some() || view.tomb.is_some() {
                self.pend(Urgency::Join, now);
            }
            return;
        }
        {
            self.gone.insert(
                key.to_owned(),
                Tombstone {
                    visitor: h.rec.visitor,
                    tab: h.rec.tab,
                    at_ms: t_x,
                },
            );
            self.pend(Urgency::Now, now);
        }
    }

    /// Times out tabs with no heartbeat for a window, at most once per second, and drops
    /// old tombstones. While peers read, decisions wait for a fresh view.
    fn sweep(&mut self, now: u64, cfg: &EngineConfig) {
        if now < self.next_sweep_ms {
            return;
        }
        self.next_sweep_ms = now + SWEEP_EVERY_MS;
        let mode = self.mode(now);
        let fresh = self
            .remote
            .fetched_ms
            .max(self.remote.polled_ms)
            .is_some_and(|f| f + 2 * cfg.refresh_ms + SWEEP_EVERY_MS >= now);
        if mode == Mode::Peers && !fresh {
            return;
        }
        let expired: Vec<String> = self
            .tabs
            .iter()
            .filter(|(_, h)| h.rec.last_ms + cfg.window_ms <= now)
            .map(|(k, _)| k.clone())
            .collect();
        for key in expired {
            self.time_out(&key, now, cfg);
        }
        let keep = cfg.tombstone_ms();
        self.gone.retain(|_, g| g.at_ms + keep > now);
    }

    /// Recomputes what is known published for each held tab, republishes tabs a tombstone
    /// elsewhere wrongly removed, and recomputes the handoff deadline.
    fn reconcile(&mut self, now: u64, cfg: &EngineConfig) {
        let mode = self.mode(now);
        let mut handoff: Option<u64> = None;
        let mut revive = false;
        for (key, h) in &mut self.tabs {
            let view = self.remote.view(key);
            let view_last = view.last();
            h.known_ms = h.known_ms.max(view_last).max(h.ours.map(|o| o.0));
            if h.rec.last_ms + cfg.window_ms <= now {
                continue;
            }
            if view
                .tomb
                .is_some_and(|g| g >= h.known_ms.unwrap_or(0) && g < h.rec.last_ms)
            {
                revive = true;
            }
            if let Some(k) = h.known_ms
                && h.rec.last_ms > k
                && mode == Mode::Peers
            {
                let d = (k + cfg.window_ms).saturating_sub(cfg.handoff_margin_ms);
                handoff = Some(handoff.map_or(d, |x: u64| x.min(d)));
            }
        }
        self.handoff_due = handoff;
        if revive {
            self.pend(Urgency::Now, now);
        }
    }
}

/// The engine state of one isolate: its own tabs per site and its view of the others.
#[derive(Debug)]
pub struct Presence {
    isolate: String,
    location: Option<String>,
    config: EngineConfig,
    sites: HashMap<String, SiteState>,
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
        match &self.location {
            Some(loc) => format!("{}{loc}/{}", record_prefix(site), self.isolate),
            None => format!("{}{}", record_prefix(site), self.isolate),
        }
    }

    fn site(&mut self, site: &str) -> &mut SiteState {
        self.sites.entry(site.to_owned()).or_default()
    }

    /// Whether a listed key belongs to this isolate's location (unknown matches unknown).
    fn same_location(&self, site: &str, key: &str) -> bool {
        key_location(&record_prefix(site), key) == self.location.as_deref()
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
        if s.gone.get(&key).is_some_and(|g| g.at_ms < now) {
            s.gone.remove(&key);
        }
        if s.tabs
            .get(&key)
            .is_some_and(|h| h.rec.last_ms + cfg.window_ms <= now)
        {
            // Timed out here but back: a rejoin, no tombstone needed.
            s.tabs.remove(&key);
        }
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
                } else if woke && view_live.is_none() {
                    // Published as idle: readers drop it a window after that; rejoin.
                    s.pend(Urgency::Join, now);
                } else if changed {
                    s.pend(Urgency::Change, now);
                }
                if mode == Mode::Peers
                    && let Some(k) = known
                {
                    let d = (k + cfg.window_ms).saturating_sub(cfg.handoff_margin_ms);
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
                            let d = (last + cfg.window_ms).saturating_sub(cfg.handoff_margin_ms);
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

    /// Expires timed-out tabs everywhere (the engine also does this on every call).
    pub fn sweep(&mut self, now: u64) {
        let cfg = self.config.clone();
        for s in self.sites.values_mut() {
            s.sweep(now, &cfg);
        }
    }

    /// The writes due now: records with unpublished changes or a lease near its end, and
    /// members' last-seen values. The engine assumes they succeed; on failure call
    /// [`Presence::write_failed`].
    #[must_use]
    pub fn take_writes(&mut self, now: u64) -> Vec<Write> {
        let cfg = self.config.clone();
        let mut out = Vec::new();
        let mut sites: Vec<String> = self.sites.keys().cloned().collect();
        sites.sort();
        for site in sites {
            let key = self.own_key(&site);
            let isolate = self.isolate.clone();
            let location = self.location.clone();
            let s = self.site(&site);
            s.sweep(now, &cfg);
            let mode = s.mode(now);
            s.mode = Some(mode);
            let spaced = s
                .last_flush_ms
                .is_none_or(|last| now >= last + cfg.flush_min_ms);
            if !(spaced && s.due(&cfg, mode).is_some_and(|d| now >= d)) {
                continue;
            }
            let designated = s.remote.same_ids.iter().all(|id| **id > *isolate);
            let mut last_seen = std::mem::take(&mut s.last_seen_retry);
            // A member back online since its write failed gets a fresh value when it leaves.
            last_seen.retain(|id, _| !s.members_live.contains_key(id));
            for (m, at) in members_gone(s, now, &cfg, designated) {
                last_seen.insert(m.id.clone(), (m, at));
            }
            for (m, at) in last_seen.values() {
                let value = serde_json::to_vec(&LastSeen {
                    last_seen: *at,
                    name: m.name.clone(),
                })
                .unwrap_or_default();
                out.push(Write {
                    key: last_seen_key(&site, &m.id),
                    value,
                    metadata: None,
                    ttl_s: (cfg.last_seen_ttl_ms / 1000).max(MIN_TTL_S),
                });
            }
            s.last_seen_sent = last_seen;
            // The record is encoded straight from the state (no copy of its tabs), before
            // the state is updated for it.
            let (value, metadata, lease_until_ms, content, published) = {
                let (record, summary, capped) =
                    build_record(s, now, &cfg, &isolate, location.as_deref());
                // Capped: which tabs made it (keys as in `tabs`); else every live tab did.
                let published: Option<HashSet<String>> = capped.then(|| {
                    record
                        .tabs
                        .iter()
                        .map(|t| tab_key(&t.visitor, &t.tab))
                        .collect()
                });
                let content = !record.tabs.is_empty() || !record.gone.is_empty();
                let lease_until_ms = record.lease_until_ms;
                let value = record.encode_within(MAX_VALUE_BYTES);
                (value, summary.encode(), lease_until_ms, content, published)
            };
            s.pending = [None; 3];
            s.handoff_due = None;
            s.last_flush_ms = Some(now);
            s.lease_until_ms = lease_until_ms;
            s.published_content = content;
            for (k, h) in &mut s.tabs {
                let included = match &published {
                    Some(p) => p.contains(k),
                    None => {
                        h.rec.last_ms + cfg.window_ms > now
                            && s.remote.view(k).last().is_none_or(|l| l <= h.rec.last_ms)
                    }
                };
                if included {
                    h.ours = Some((h.rec.last_ms, h.rec.state));
                    h.known_ms = h.known_ms.max(Some(h.rec.last_ms));
                } else {
                    h.ours = None;
                }
            }
            out.push(Write {
                key,
                value,
                metadata: Some(metadata),
                ttl_s: cfg.record_ttl_s(),
            });
        }
        out
    }

    /// A write from [`Presence::take_writes`] failed: make it again with the next flush,
    /// as soon as the write spacing allows (a record is rebuilt from the state then; a
    /// member's last-seen value is queued again as it was).
    pub fn write_failed(&mut self, now: u64, key: &str) {
        if let Some((site, member)) = parse_last_seen_key(key) {
            let s = self.site(site);
            if let Some(v) = s.last_seen_sent.remove(member) {
                s.last_seen_retry.insert(member.to_owned(), v);
                s.pend(Urgency::Now, now);
            }
        } else if let Some(site) = key
            .strip_prefix("r:")
            .and_then(|rest| rest.split(':').next())
        {
            let s = self.site(site);
            s.lease_until_ms = 0;
            s.pend(Urgency::Now, now);
            for h in s.tabs.values_mut() {
                h.ours = None;
            }
        }
    }

    /// When the earliest unpublished change may be written (its due time, pushed back by
    /// the write spacing), so a driver can flush then without waiting for a request.
    #[must_use]
    pub fn next_flush_at(&self) -> Option<u64> {
        let min = self.config.flush_min_ms;
        self.sites
            .values()
            .filter_map(|s| {
                let mode = s.mode.unwrap_or(Mode::Solo);
                // Lease renewals wait for the next request; changes do not.
                let mut s_due: Option<u64> = None;
                for (i, u) in [Urgency::Now, Urgency::Join, Urgency::Change]
                    .into_iter()
                    .enumerate()
                {
                    if let Some(at) = s.pending[i] {
                        let d =
                            at + SiteState::delay(&self.config, u, mode, s.last_flush_ms.is_none());
                        s_due = Some(s_due.map_or(d, |x| x.min(d)));
                    }
                }
                if mode == Mode::Peers
                    && let Some(h) = s.handoff_due
                {
                    s_due = Some(s_due.map_or(h, |x| x.min(h)));
                }
                let due = s_due?;
                Some(s.last_flush_ms.map_or(due, |l| due.max(l + min)))
            })
            .min()
    }

    /// Asks for member lists of `site` (`GET /v1/online`, last-seen): for the next minute,
    /// refreshes also fetch other locations' records, whose summaries carry no names.
    pub fn want_members(&mut self, now: u64, site: &str) {
        let window = self.config.window_ms;
        let r = &mut self.site(site).remote;
        if r.members_until <= now {
            r.members_fetched_ms = None;
        }
        r.members_until = now + window;
    }

    /// What refreshing the view of other isolates for `site` takes at `now`: nothing; a read
    /// of each record of this location's peers every [`EngineConfig::refresh_ms`] while
    /// peers are active; or a listing every [`EngineConfig::remote_delay_ms`] (alone: after
    /// a backoff up to [`EngineConfig::solo_delay_ms`]), or when member lists are wanted.
    #[must_use]
    pub fn refresh_due(&self, now: u64, site: &str) -> Refresh {
        let Some(s) = self.sites.get(site) else {
            return Refresh::List;
        };
        let r = &s.remote;
        if r.members_until > now && r.members_fetched_ms.is_none() {
            return Refresh::List;
        }
        let mode = s.mode(now);
        let Some(listed) = r.fetched_ms else {
            return Refresh::List;
        };
        if now >= listed + s.list_every(&self.config, mode) {
            return Refresh::List;
        }
        let read = listed.max(r.polled_ms.unwrap_or(0));
        if mode == Mode::Peers && now >= read + self.config.refresh_ms {
            let prefix = record_prefix(site);
            let keys = r
                .records
                .keys()
                .filter(|k| key_location(&prefix, k) == self.location.as_deref())
                .cloned()
                .collect();
            return Refresh::Poll(keys);
        }
        Refresh::Fresh
    }

    /// Whether [`Presence::refresh_due`] has anything to do.
    #[must_use]
    pub fn needs_refresh(&self, now: u64, site: &str) -> bool {
        self.refresh_due(now, site) != Refresh::Fresh
    }

    /// Applies the reads a [`Refresh::Poll`] asked for: each key with its value, or `None`
    /// when it is gone.
    pub fn apply_polled(&mut self, now: u64, site: &str, read: Vec<(String, Option<Vec<u8>>)>) {
        let read = read
            .into_iter()
            .map(|(k, v)| {
                let rec = v
                    .and_then(|b| Record::decode(&b))
                    .map(|r| Arc::new(IndexedRecord::new(r)));
                (k, rec)
            })
            .collect();
        self.apply_polled_indexed(now, site, read);
    }

    /// [`Presence::apply_polled`] with records already decoded and indexed.
    pub fn apply_polled_indexed(
        &mut self,
        now: u64,
        site: &str,
        read: Vec<(String, Option<Arc<IndexedRecord>>)>,
    ) {
        let prefix = record_prefix(site);
        let my_loc = self.location.clone();
        let cfg = self.config.clone();
        let s = self.site(site);
        s.version += 1;
        for (k, rec) in read {
            match rec {
                Some(rec) => {
                    let same = s
                        .remote
                        .records
                        .get(&k)
                        .is_some_and(|(_, r)| r.record.written_ms == rec.record.written_ms);
                    if !same {
                        // Unknown metadata: the next listing reads it once more.
                        s.remote.records.insert(k, (None, rec));
                    }
                }
                None => {
                    s.remote.records.remove(&k);
                }
            }
        }
        s.remote.polled_ms = Some(now);
        s.rebuild_same(now, &cfg, &prefix, my_loc.as_deref());
        s.mode = Some(s.mode(now));
        s.reconcile(now, &cfg);
    }

    /// Of a listing of [`record_prefix`], the keys whose records must be fetched: those of
    /// other isolates of this location (of every location while member lists are wanted)
    /// that are new or were rewritten since they were last fetched.
    #[must_use]
    pub fn keys_to_fetch(&self, site: &str, listed: &[ListedKey]) -> Vec<String> {
        let own = self.own_key(site);
        let s = self.sites.get(site);
        let members = s.is_some_and(|s| s.remote.members_until > s.remote.fetched_ms.unwrap_or(0));
        let cached = s.map(|s| &s.remote.records);
        listed
            .iter()
            .filter(|k| k.name != own)
            .filter(|k| members || self.same_location(site, &k.name))
            .filter(|k| {
                cached
                    .and_then(|c| c.get(&k.name))
                    .is_none_or(|(meta, _)| k.metadata.is_none() || *meta != k.metadata)
            })
            .map(|k| k.name.clone())
            .collect()
    }

    /// Replaces the view of other isolates' records for `site` with a complete listing and
    /// the records fetched for the keys [`Presence::keys_to_fetch`] named (undecodable ones
    /// are ignored; listed keys not fetched keep their cached record).
    pub fn apply_remote(
        &mut self,
        now: u64,
        site: &str,
        listed: &[ListedKey],
        fetched: Vec<(String, Vec<u8>)>,
    ) {
        let fetched = fetched
            .into_iter()
            .filter_map(|(k, bytes)| {
                Some((k, Arc::new(IndexedRecord::new(Record::decode(&bytes)?))))
            })
            .collect();
        self.apply_remote_indexed(now, site, listed, fetched);
    }

    /// [`Presence::apply_remote`] with records already decoded and indexed (a driver that
    /// reads the same record for many isolates, like the simulation, decodes it once).
    pub fn apply_remote_indexed(
        &mut self,
        now: u64,
        site: &str,
        listed: &[ListedKey],
        fetched: Vec<(String, Arc<IndexedRecord>)>,
    ) {
        self.site(site).version += 1;
        let own = self.own_key(site);
        let prefix = record_prefix(site);
        let my_loc = self.location.clone();
        let cfg = self.config.clone();
        let s = self.site(site);
        let members = s.remote.members_until > s.remote.fetched_ms.unwrap_or(0);
        let mut fetched: HashMap<String, Arc<IndexedRecord>> = fetched.into_iter().collect();
        let mut records = BTreeMap::new();
        let mut summaries = BTreeMap::new();
        let mut other_active_until = 0;
        for k in listed.iter().filter(|k| k.name != own) {
            let is_same = key_location(&prefix, &k.name) == my_loc.as_deref();
            if let Some(rec) = fetched.remove(&k.name) {
                records.insert(k.name.clone(), (k.metadata.clone(), rec));
            } else if let Some(old) = s.remote.records.remove(&k.name)
                && (is_same || members)
            {
                records.insert(k.name.clone(), old);
            }
            if is_same {
                continue;
            }
            let Some(meta) = &k.metadata else {
                continue;
            };
            let summary = match s.remote.summaries.remove(&k.name) {
                Some((m, sum)) if m == *meta => Some(sum),
                _ => Summary::decode(meta),
            };
            if let Some(sum) = summary {
                other_active_until = other_active_until.max(sum.written_ms + cfg.lease_ms);
                summaries.insert(k.name.clone(), (meta.clone(), sum));
            }
        }
        s.remote.records = records;
        s.remote.summaries = summaries;
        s.remote.other_active_until = other_active_until;
        s.remote.fetched_ms = Some(now);
        s.rebuild_same(now, &cfg, &prefix, my_loc.as_deref());
        if members {
            s.remote.members_fetched_ms = Some(now);
        }
        let mode = s.mode(now);
        s.mode = Some(mode);
        if mode == Mode::Solo {
            s.remote.solo_streak += 1;
        } else {
            s.remote.solo_streak = 0;
        }
        s.reconcile(now, &cfg);
    }

    /// The live tabs of this isolate's location at `now`: its own and those the other
    /// isolates of the location vouch for, latest heartbeat per tab, tombstones applied.
    fn local_view(&mut self, now: u64, site: &str) -> Vec<TabRecord> {
        let cfg = self.config.clone();
        let s = self.site(site);
        s.sweep(now, &cfg);
        live_location_tabs(s, now, &cfg)
            .into_iter()
            .cloned()
            .collect()
    }

    /// The count for `site` (and `page`, if given) at `now`: this location exactly, other
    /// locations from their latest summaries.
    pub fn count(&mut self, now: u64, site: &str, page: Option<&str>) -> Count {
        let (mut count, pages) = self.count_all_pages(now, site);
        count.page = page.map(|p| pages.get(p).copied().unwrap_or(0));
        count
    }

    /// The count for `site` without a page, and people per page for every page known (this
    /// location's pages exactly, other locations' as far as their summaries list them).
    pub fn count_all_pages(&mut self, now: u64, site: &str) -> (Count, HashMap<String, u64>) {
        let (count, pages, _) = self.count_all_pages_until(now, site);
        (count, pages)
    }

    /// [`Presence::count_all_pages`], and until when (Unix ms) that count stays right while
    /// [`Presence::version`] does not move: the first time-out of a counted tab or end of a
    /// summary's lease (`now` itself when other isolates of this location are read, whose
    /// entries end with their records' leases).
    pub fn count_all_pages_until(
        &mut self,
        now: u64,
        site: &str,
    ) -> (Count, HashMap<String, u64>, u64) {
        let cfg = self.config.clone();
        let s = self.site(site);
        s.sweep(now, &cfg);
        let tabs = live_location_tabs(s, now, &cfg);
        let mut until = if s.remote.same.is_empty() {
            tabs.iter()
                .map(|t| t.last_ms + cfg.window_ms)
                .min()
                .unwrap_or(u64::MAX)
        } else {
            now
        };
        for (_, sum) in s.remote.summaries.values() {
            if sum.lease_until_ms > now {
                until = until.min(sum.lease_until_ms);
            }
        }
        let mut count = aggregate_refs(&tabs, None, cfg.window_ms / 1000, now, usize::MAX);
        let mut pages: HashMap<String, u64> =
            count.pages.drain(..).map(|p| (p.page, p.online)).collect();
        for sum in latest_summaries(s, now) {
            count.online += sum.online;
            count.tabs += sum.tabs;
            count.members += sum.members;
            count.idle += sum.idle;
            for (p, c) in &sum.pages {
                *pages.entry(p.clone()).or_default() += c;
            }
        }
        count.members = count.members.min(count.online);
        count.guests = count.online - count.members;
        count.idle = count.idle.min(count.online);
        count.tabs = count.tabs.max(count.online);
        count.pages = top_pages(pages.clone());
        (count, pages, until)
    }

    /// A number that changes whenever `site`'s count could (see [`Presence::count`]);
    /// time alone (tabs timing out) does not change it.
    #[must_use]
    pub fn version(&self, site: &str) -> u64 {
        self.sites.get(site).map_or(0, |s| s.version)
    }

    /// The members online on `site` at `now`, by id: this location exactly, other
    /// locations from their records once [`Presence::want_members`] had them fetched.
    pub fn online_members(&mut self, now: u64, site: &str) -> Vec<OnlineMember> {
        let tabs = self.member_view(now, site);
        let mut by_id: BTreeMap<String, (OnlineMember, u64)> = BTreeMap::new();
        for t in tabs {
            let Some(m) = &t.member else { continue };
            let e = by_id.entry(m.id.clone()).or_insert_with(|| {
                (
                    OnlineMember {
                        id: m.id.clone(),
                        name: m.name.clone(),
                        page: t.page.clone(),
                        since: t.first_ms,
                    },
                    t.last_ms,
                )
            });
            e.0.since = e.0.since.min(t.first_ms);
            if t.last_ms > e.1 {
                e.0.page.clone_from(&t.page);
                e.0.name.clone_from(&m.name);
                e.1 = t.last_ms;
            }
        }
        by_id.into_values().map(|(m, _)| m).collect()
    }

    /// When `member` was last seen by a live tab on `site`, if online now.
    pub fn member_last_seen(&mut self, now: u64, site: &str, member: &str) -> Option<u64> {
        self.member_view(now, site)
            .iter()
            .filter(|t| t.member.as_ref().is_some_and(|m| m.id == member))
            .map(|t| t.last_ms)
            .max()
    }

    /// The location's live tabs plus the member tabs of other locations' fetched records.
    fn member_view(&mut self, now: u64, site: &str) -> Vec<TabRecord> {
        let mut tabs = self.local_view(now, site);
        let window = self.config.window_ms;
        let prefix = record_prefix(site);
        let my_loc = self.location.clone();
        let s = self.site(site);
        let mut sources: Vec<(&[TabRecord], &[Tombstone])> = Vec::new();
        let mut owned: Vec<Vec<TabRecord>> = Vec::new();
        for (k, (_, rec)) in &s.remote.records {
            if key_location(&prefix, k) == my_loc.as_deref() {
                continue;
            }
            let rec = &rec.record;
            owned.push(
                rec.tabs
                    .iter()
                    .filter(|t| t.member.is_some())
                    .filter(|t| match t.state {
                        TabState::Idle => t.last_ms + window > now,
                        TabState::Active => rec.lease_until_ms > now,
                    })
                    .cloned()
                    .collect(),
            );
        }
        let gone: Vec<&[Tombstone]> = s
            .remote
            .records
            .iter()
            .filter(|(k, _)| key_location(&prefix, k) != my_loc.as_deref())
            .map(|(_, (_, r))| r.record.gone.as_slice())
            .collect();
        for (tabs_of, g) in owned.iter().zip(gone) {
            sources.push((tabs_of.as_slice(), g));
        }
        tabs.extend(merge(&sources));
        tabs
    }

    /// Whether `visitor`'s `tab` counts in this isolate's view of its own location at `now`
    /// (for tests and the simulation).
    pub fn tab_counted(&mut self, now: u64, site: &str, visitor: &str, tab: &str) -> bool {
        let cfg = self.config.clone();
        let s = self.site(site);
        s.sweep(now, &cfg);
        let key = tab_key(visitor, tab);
        let v = s.remote.view(&key);
        let own_tomb = s.gone.get(&key).map(|g| g.at_ms);
        match (s.tabs.get(&key), v.best) {
            (Some(h), best) if best.is_none_or(|(b, _)| !beats(b, &h.rec)) => {
                h.rec.last_ms + cfg.window_ms > now
                    && own_tomb.max(v.tomb).is_none_or(|g| g < h.rec.last_ms)
            }
            _ => v
                .live(now, cfg.window_ms)
                .is_some_and(|t| own_tomb.is_none_or(|g| g < t.last_ms)),
        }
    }

    /// When the latest summary of `location` this isolate has seen was written (for tests
    /// and the simulation).
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
    #[must_use]
    pub fn listed_at(&self, site: &str) -> Option<u64> {
        self.sites.get(site)?.remote.fetched_ms
    }

    /// How many tabs this isolate holds in memory for `site` (for tests and metrics).
    #[must_use]
    pub fn local_tabs(&self, site: &str) -> usize {
        self.sites.get(site).map_or(0, |s| s.tabs.len())
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

/// A member seen online at the location: its newest heartbeat and its tabs.
#[derive(Debug, Clone)]
struct MemberSeen {
    member: Member,
    last_ms: u64,
    tabs: Vec<String>,
}

/// The members who went offline at the location since the last write, with when they were
/// last seen (their last heartbeat, or their leave). One isolate per location writes these
/// values — the one with the lowest id among the active ones (`designated`) — so that a
/// member's key is never written by two isolates at once; the others only keep track.
fn members_gone(
    s: &mut SiteState,
    now: u64,
    cfg: &EngineConfig,
    designated: bool,
) -> Vec<(Member, u64)> {
    let mut live: BTreeMap<String, MemberSeen> = BTreeMap::new();
    for t in live_location_tabs(s, now, cfg) {
        let Some(m) = &t.member else {
            continue;
        };
        if m.id.len() > MAX_MEMBER_ID_BYTES {
            continue;
        }
        let e = live.entry(m.id.clone()).or_insert_with(|| MemberSeen {
            member: m.clone(),
            last_ms: 0,
            tabs: Vec::new(),
        });
        e.last_ms = e.last_ms.max(t.last_ms);
        e.tabs.push(tab_key(&t.visitor, &t.tab));
    }
    let before = std::mem::replace(&mut s.members_live, live);
    if !designated {
        return Vec::new();
    }
    let mut out = Vec::new();
    for (id, seen) in before {
        if s.members_live.contains_key(&id) {
            continue;
        }
        let left = seen
            .tabs
            .iter()
            .filter_map(|k| s.gone.get(k).map(|g| g.at_ms).max(s.remote.view(k).tomb))
            .max()
            .unwrap_or(0);
        out.push((seen.member, seen.last_ms.max(left)));
    }
    out
}

/// The live tabs of the location: own memory and the view, best entry per tab.
fn live_location_tabs<'a>(s: &'a SiteState, now: u64, cfg: &EngineConfig) -> Vec<&'a TabRecord> {
    let window = cfg.window_ms;
    let peers: usize = s.remote.same.iter().map(|(r, _)| r.record.tabs.len()).sum();
    let mut out: Vec<&TabRecord> = Vec::with_capacity(s.tabs.len() + peers);
    for (key, h) in &s.tabs {
        let v = s.remote.view(key);
        if v.best.is_some_and(|(b, _)| beats(b, &h.rec)) {
            continue; // the view's entry is newer; taken below
        }
        let tomb = s.gone.get(key).map(|g| g.at_ms).max(v.tomb);
        if h.rec.last_ms + window > now && tomb.is_none_or(|g| g < h.rec.last_ms) {
            out.push(&h.rec);
        }
    }
    for (r, _) in &s.remote.same {
        for (key, &i) in &r.tabs {
            let t = &r.record.tabs[i];
            let v = s.remote.view(key);
            // Counted once: from the record holding the winning entry.
            if !v.best.is_some_and(|(b, _)| std::ptr::eq(b, t)) {
                continue;
            }
            let Some(t) = v.live(now, window) else {
                continue;
            };
            if s.tabs.get(key).is_some_and(|h| !beats(t, &h.rec)) {
                continue;
            }
            if s.gone.get(key).is_some_and(|g| g.at_ms >= t.last_ms) {
                continue;
            }
            out.push(t);
        }
    }
    out
}

/// The latest valid summary per other location.
fn latest_summaries(s: &SiteState, now: u64) -> Vec<&Summary> {
    let mut by_loc: HashMap<Option<&str>, &Summary> = HashMap::new();
    for (key, (_, sum)) in &s.remote.summaries {
        if sum.lease_until_ms <= now {
            continue;
        }
        // Without a location, a summary stands for its own isolate only.
        let loc = sum.location.as_deref().or(Some(key.as_str()));
        let e = by_loc.entry(loc).or_insert(sum);
        if (sum.written_ms, &sum.location) > (e.written_ms, &e.location) {
            *e = sum;
        }
    }
    let mut v: Vec<&Summary> = by_loc.into_values().collect();
    v.sort_by_key(|s| (s.location.clone(), s.written_ms));
    v
}

/// A record as this isolate publishes it, borrowed from its state: encoded exactly as
/// [`Record`] (same fields, names and order), without copying any tab or tombstone.
#[derive(Debug, Serialize)]
struct RecordOut<'a> {
    #[serde(rename = "ver")]
    version: u8,
    #[serde(rename = "iso")]
    isolate: &'a str,
    #[serde(rename = "loc", skip_serializing_if = "Option::is_none")]
    location: Option<&'a str>,
    #[serde(rename = "w")]
    written_ms: u64,
    #[serde(rename = "u")]
    lease_until_ms: u64,
    #[serde(rename = "tabs")]
    tabs: Vec<&'a TabRecord>,
    #[serde(rename = "gone")]
    gone: Vec<&'a Tombstone>,
}

impl RecordOut<'_> {
    /// Encodes as compact JSON into a buffer sized up front (no doubling of a large one).
    fn encode(&self) -> Vec<u8> {
        let size = 256
            + self
                .tabs
                .iter()
                .map(|t| {
                    let member = t
                        .member
                        .as_ref()
                        .map_or(0, |m| m.id.len() + m.name.len() + 24);
                    t.visitor.len() + t.tab.len() + t.page.len() + member + 80
                })
                .sum::<usize>()
            + self
                .gone
                .iter()
                .map(|g| g.visitor.len() + g.tab.len() + 40)
                .sum::<usize>();
        let mut out = Vec::with_capacity(size);
        match serde_json::to_writer(&mut out, self) {
            Ok(()) => out,
            Err(_) => Vec::new(),
        }
    }

    /// Encodes within `max` bytes: past it (only unvalidated input gets there), keeps the
    /// most recently seen tabs, a tenth fewer each time.
    fn encode_within(mut self, max: usize) -> Vec<u8> {
        let mut value = self.encode();
        if value.len() > max {
            self.tabs.sort_by_key(|t| std::cmp::Reverse(t.last_ms));
            while value.len() > max && !self.tabs.is_empty() {
                self.tabs.truncate(self.tabs.len() * 9 / 10);
                value = self.encode();
            }
        }
        value
    }
}

/// Builds this isolate's record and the summary of its location at `now`; `true` if the
/// record was capped (it then holds only some of the live tabs).
fn build_record<'a>(
    s: &'a SiteState,
    now: u64,
    cfg: &EngineConfig,
    isolate: &'a str,
    location: Option<&'a str>,
) -> (RecordOut<'a>, Summary, bool) {
    // Tabs a peer of this location has published with a newer heartbeat are left to it.
    let live: Vec<&Held> = s
        .tabs
        .iter()
        .filter(|(_, h)| h.rec.last_ms + cfg.window_ms > now)
        .filter(|(k, h)| s.remote.view(k).last().is_none_or(|l| l <= h.rec.last_ms))
        .map(|(_, h)| h)
        .collect();
    let gone: Vec<&Tombstone> = s.gone.values().collect();
    let gone_bytes: usize = gone
        .iter()
        .map(|g| g.visitor.len() + g.tab.len() + 40)
        .sum();
    let budget = RECORD_BUDGET_BYTES.saturating_sub(gone_bytes + 256);
    let mut order: Vec<&Held> = live;
    let total: usize = order.iter().map(|h| tab_bytes(&h.rec)).sum();
    let capped = order.len() > cfg.max_tabs_per_record || total > budget;
    if capped {
        // Over the cap: publish the most recently seen tabs that fit.
        order.sort_by(|a, b| {
            b.rec
                .last_ms
                .cmp(&a.rec.last_ms)
                .then_with(|| (&a.rec.visitor, &a.rec.tab).cmp(&(&b.rec.visitor, &b.rec.tab)))
        });
        let mut left = budget;
        let fit = order
            .iter()
            .take(cfg.max_tabs_per_record)
            .take_while(|h| {
                let size = tab_bytes(&h.rec);
                let ok = size <= left;
                left = left.saturating_sub(size);
                ok
            })
            .count();
        order.truncate(fit);
    }
    let tabs: Vec<&TabRecord> = order.iter().map(|h| &h.rec).collect();
    let record = RecordOut {
        version: 1,
        isolate,
        location,
        written_ms: now,
        lease_until_ms: now + cfg.lease_ms,
        tabs,
        gone,
    };
    let summary = summarize(
        s,
        now,
        cfg,
        location.map(str::to_owned),
        record.lease_until_ms,
    );
    (record, summary, capped)
}

/// An upper bound of a tab's encoded size, in bytes (validated ids and pages hold no
/// control characters, so JSON at most doubles them; names may be escaped six-fold).
fn tab_bytes(t: &TabRecord) -> usize {
    let member = t
        .member
        .as_ref()
        .map_or(0, |m| 2 * m.id.len() + 6 * m.name.len() + 24);
    2 * (t.visitor.len() + t.tab.len() + t.page.len()) + member + 80
}

/// The location summary: the counts of the live view and its busiest pages.
fn summarize(
    s: &SiteState,
    now: u64,
    cfg: &EngineConfig,
    location: Option<String>,
    lease_until: u64,
) -> Summary {
    let tabs = live_location_tabs(s, now, cfg);
    let count = aggregate_refs(&tabs, None, cfg.window_ms / 1000, now, usize::MAX);
    Summary {
        written_ms: now,
        lease_until_ms: lease_until,
        location,
        online: count.online,
        tabs: count.tabs,
        members: count.members,
        idle: count.idle,
        pages: count
            .pages
            .into_iter()
            .map(|p| (p.page, p.online))
            .collect(),
    }
}

/// Merges sources of tabs and tombstones: per tab the entry with the latest heartbeat
/// wins (ties broken by the whole entry, so the winner never depends on order), and a
/// tombstone at or after that heartbeat removes it. The result is sorted by (visitor,
/// tab), so the merge is commutative, associative and idempotent over sources.
#[must_use]
pub fn merge(sources: &[(&[TabRecord], &[Tombstone])]) -> Vec<TabRecord> {
    let mut best: HashMap<(&str, &str), &TabRecord> = HashMap::new();
    let mut gone: HashMap<(&str, &str), u64> = HashMap::new();
    for (tabs, tombs) in sources {
        for t in *tabs {
            let k = (t.visitor.as_str(), t.tab.as_str());
            if best.get(&k).is_none_or(|b| beats(t, b)) {
                best.insert(k, t);
            }
        }
        for g in *tombs {
            let e = gone
                .entry((g.visitor.as_str(), g.tab.as_str()))
                .or_insert(0);
            *e = (*e).max(g.at_ms);
        }
    }
    let mut out: Vec<TabRecord> = best
        .into_iter()
        .filter(|(k, t)| gone.get(k).is_none_or(|&g| t.last_ms > g))
        .map(|(_, t)| t.clone())
        .collect();
    out.sort_by(|a, b| (&a.visitor, &a.tab).cmp(&(&b.visitor, &b.tab)));
    out
}

fn top_pages(pages: HashMap<String, u64>) -> Vec<PageCount> {
    let mut top: Vec<PageCount> = pages
        .into_iter()
        .map(|(page, online)| PageCount { page, online })
        .collect();
    top.sort_by(|a, b| b.online.cmp(&a.online).then_with(|| a.page.cmp(&b.page)));
    top.truncate(TOP_PAGES);
    top
}

/// Aggregates live tabs into a [`Count`].
#[must_use]
pub fn aggregate(tabs: &[TabRecord], page: Option<&str>, window_s: u64, as_of: u64) -> Count {
    let refs: Vec<&TabRecord> = tabs.iter().collect();
    aggregate_refs(&refs, page, window_s, as_of, TOP_PAGES)
}

fn aggregate_refs(
    tabs: &[&TabRecord],
    page: Option<&str>,
    window_s: u64,
    as_of: u64,
    top: usize,
) -> Count {
    struct V {
        member: bool,
        active: bool,
    }
    let mut visitors: HashMap<&str, V> = HashMap::with_capacity(tabs.len());
    let mut seen: HashSet<(&str, &str)> = HashSet::with_capacity(tabs.len());
    let mut pages: HashMap<&str, u64> = HashMap::new();
    for t in tabs {
        let v = visitors.entry(t.visitor.as_str()).or_insert(V {
            member: false,
            active: false,
        });
        v.member |= t.member.is_some();
        v.active |= t.state == TabState::Active;
        if seen.insert((t.page.as_str(), t.visitor.as_str())) {
            *pages.entry(t.page.as_str()).or_default() += 1;
        }
    }
    let members = visitors.values().filter(|v| v.member).count() as u64;
    let online = visitors.len() as u64;
    let mut all: Vec<PageCount> = pages
        .iter()
        .map(|(p, n)| PageCount {
            page: (*p).to_owned(),
            online: *n,
        })
        .collect();
    all.sort_by(|a, b| b.online.cmp(&a.online).then_with(|| a.page.cmp(&b.page)));
    all.truncate(top);
    Count {
        online,
        tabs: tabs.len() as u64,
        members,
        guests: online - members,
        idle: visitors.values().filter(|v| !v.active).count() as u64,
        page: page.map(|p| pages.get(p).copied().unwrap_or(0)),
        pages: all,
        window_s,
        as_of,
    }
}

#[cfg(test)]
mod tests {
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
        p.write_failed(at, &key);
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
        let fetched = || {
            writes
                .iter()
                .map(|w| (w.key.clone(), w.value.clone()))
                .collect::<Vec<_>>()
        };
        for at in [t0 + 5_000, t0 + 130_000, t0 + 1_000_000] {
            a.apply_remote(at, "demo", &listed, fetched());
            assert_eq!(a.count(at, "demo", None).online, 1, "at +{} ms", at - t0);
            assert!(a.tab_counted(at, "demo", "v1", "t"));
        }
        // Written at t0 + 1 s: two windows later it no longer vouches.
        let end = t0 + cfg.join_delay_ms + 2 * cfg.window_ms;
        a.apply_remote(end, "demo", &listed, fetched());
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
}
