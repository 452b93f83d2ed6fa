//! The presence engine: per-isolate state, the records isolates publish, and the merge.
//!
//! # Design (why it is cheap on KV and still accurate)
//!
//! Every edge isolate keeps the tabs that heartbeat *to it* in memory. A heartbeat from a
//! steady tab only moves a timestamp in memory: **no KV write per heartbeat**. Each isolate
//! publishes one record of its own, at key `r:{site}:{isolate}`, holding its live tabs and
//! its recent tombstones. It rewrites that record only when
//!
//! * a tab left or timed out (*urgent*: within [`EngineConfig::flush_min_ms`], which is
//!   at least 1 s because KV allows one write per second per key),
//! * a tab joined (within [`EngineConfig::join_delay_ms`]),
//! * a tab changed state or page (within [`EngineConfig::change_delay_ms`]),
//! * or its lease nears its end ([`EngineConfig::lease_ms`]), so a quiet isolate with
//!   steady visitors writes a few times per lease, whatever the heartbeat rate.
//!
//! A record *vouches* for its tabs until its lease ends: a reader counts a tab of a remote
//! record while the lease runs, unless a newer tombstone for the tab exists anywhere. An
//! isolate that notices a tab time out (no heartbeat for the window) writes a tombstone
//! for it, dated at the timeout, so that the stale copies of that tab in other isolates'
//! records (written before the tab moved) lose to it.
//!
//! No key is written by two isolates, so no isolate can erase another's visitors. The
//! merge is a state-based CRDT: per tab, the entry with the latest heartbeat wins; a
//! tombstone wins over every entry not newer than it; records are merged as sets, so the
//! result does not depend on the order records are read in, nor on reading one twice.
//!
//! Counting reads one listing of `r:{site}:` (KV returns each key's metadata, which holds
//! the record's write time) and fetches only records whose write time changed since the
//! last read. The merged remote view is cached for [`EngineConfig::refresh_ms`]. A
//! count's KV cost thus grows with the number of isolates that changed, never with the
//! number of visitors, and is paid at most once per `refresh_ms` per isolate.
//!
//! A record holds at most [`EngineConfig::max_tabs_per_record`] tabs (the default, 100,000
//! tabs of ~130 bytes, stays far below KV's 25 MiB value limit); past that an isolate keeps
//! the most recently seen tabs in its record and counts the rest only locally.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::{Deserialize, Serialize};

use crate::protocol::{Beat, Count, PageCount, TOP_PAGES, TabState};
use crate::store::{ListedKey, MIN_TTL_S};

/// Tunables of the engine. All times are in milliseconds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineConfig {
    /// A tab with no heartbeat for this long is gone (default 60 s).
    pub window_ms: u64,
    /// The heartbeat interval clients are told to use (default 15 s).
    pub heartbeat_ms: u64,
    /// The least time between two writes of one record (default 1 s; KV allows 1 write/s).
    pub flush_min_ms: u64,
    /// How long a join may wait before it is published (default 2 s).
    pub join_delay_ms: u64,
    /// How long a state or page change may wait before it is published (default 10 s).
    pub change_delay_ms: u64,
    /// How long a record vouches for its tabs (default 5 min).
    pub lease_ms: u64,
    /// How long a merged view of other isolates' records is reused (default 1 s).
    pub refresh_ms: u64,
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
            join_delay_ms: 2_000,
            change_delay_ms: 10_000,
            lease_ms: 300_000,
            refresh_ms: 1_000,
            last_seen_ttl_ms: 90 * 24 * 3_600_000,
            max_tabs_per_record: 100_000,
        }
    }
}

impl EngineConfig {
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
            ..d
        }
    }

    /// Checks the settings against each other and KV's limits.
    ///
    /// # Errors
    /// A message naming the first bad setting.
    pub fn validate(&self) -> Result<(), String> {
        if self.window_ms < 1_000 {
            return Err(format!("window must be at least 1 s (got {} ms)", self.window_ms));
        }
        if self.heartbeat_ms < 250 || self.heartbeat_ms >= self.window_ms {
            return Err(format!(
                "heartbeat interval must be at least 250 ms and below the window (got {} ms, window {} ms)",
                self.heartbeat_ms, self.window_ms
            ));
        }
        if self.flush_min_ms < 1_000 {
            return Err("flush interval must be at least 1 s (KV allows one write per second per key)".into());
        }
        if self.lease_ms < self.window_ms {
            return Err(format!(
                "lease ({} ms) must be at least the window ({} ms)",
                self.lease_ms, self.window_ms
            ));
        }
        if self.max_tabs_per_record == 0 {
            return Err("max tabs per record must be at least 1".into());
        }
        Ok(())
    }

    fn tombstone_ms(&self) -> u64 {
        self.lease_ms + self.window_ms
    }

    fn record_ttl_s(&self) -> u64 {
        ((self.lease_ms + self.window_ms) / 1000 + 1).max(MIN_TTL_S)
    }
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
    /// Metadata returned by listings (the record's write time).
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

/// A tombstone: the tab left (or timed out) at `at_ms`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tombstone {
    /// Visitor id.
    #[serde(rename = "v")]
    pub visitor: String,
    /// Tab id.
    #[serde(rename = "t")]
    pub tab: String,
    /// When the tab left, Unix ms.
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
    /// When it was written, Unix ms.
    #[serde(rename = "w")]
    pub written_ms: u64,
    /// Until when it vouches for its tabs, Unix ms.
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

fn tab_key(visitor: &str, tab: &str) -> String {
    format!("{visitor}/{tab}")
}

#[derive(Debug, Default)]
struct RemoteView {
    fetched_ms: Option<u64>,
    /// Remote records by key, with the metadata (write time) they were listed with.
    records: BTreeMap<String, (Option<String>, Record)>,
}

#[derive(Debug, Default)]
struct SiteState {
    tabs: HashMap<String, TabRecord>,
    gone: HashMap<String, Tombstone>,
    /// When the record must be written next, if it has unpublished changes.
    due_ms: Option<u64>,
    last_flush_ms: Option<u64>,
    lease_until_ms: u64,
    remote: RemoteView,
    /// Members with a live tab here, and how many tabs.
    members_here: HashMap<String, usize>,
    pending_member_writes: Vec<(Member, u64)>,
}

impl SiteState {
    fn mark(&mut self, due: u64) {
        self.due_ms = Some(self.due_ms.map_or(due, |d| d.min(due)));
    }

    fn member_gone(&mut self, member: &Member, at_ms: u64) {
        if let Some(n) = self.members_here.get_mut(&member.id) {
            *n -= 1;
            if *n == 0 {
                self.members_here.remove(&member.id);
                self.pending_member_writes.push((member.clone(), at_ms));
            }
        }
    }

    /// Drops timed-out tabs (tombstoned at their timeout) and old tombstones.
    fn sweep(&mut self, now: u64, cfg: &EngineConfig) {
        let expired: Vec<String> = self
            .tabs
            .iter()
            .filter(|(_, t)| t.last_ms + cfg.window_ms <= now)
            .map(|(k, _)| k.clone())
            .collect();
        for key in expired {
            if let Some(t) = self.tabs.remove(&key) {
                let at_ms = t.last_ms + cfg.window_ms;
                if let Some(m) = &t.member {
                    self.member_gone(m, t.last_ms);
                }
                self.gone.insert(
                    key,
                    Tombstone {
                        visitor: t.visitor,
                        tab: t.tab,
                        at_ms,
                    },
                );
                self.mark(now + cfg.flush_min_ms);
            }
        }
        let keep = cfg.tombstone_ms();
        self.gone.retain(|_, g| g.at_ms + keep > now);
    }
}

/// The engine state of one isolate: its own tabs per site and its view of the others.
#[derive(Debug)]
pub struct Presence {
    isolate: String,
    config: EngineConfig,
    sites: HashMap<String, SiteState>,
}

impl Presence {
    /// An isolate named `isolate` (unique per isolate: a random id).
    #[must_use]
    pub fn new(isolate: impl Into<String>, config: EngineConfig) -> Self {
        Self {
            isolate: isolate.into(),
            config,
            sites: HashMap::new(),
        }
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

    /// The key this isolate writes its record for `site` at.
    #[must_use]
    pub fn own_key(&self, site: &str) -> String {
        format!("{}{}", record_prefix(site), self.isolate)
    }

    fn site(&mut self, site: &str) -> &mut SiteState {
        self.sites.entry(site.to_owned()).or_default()
    }

    /// Records a heartbeat (already validated) from `beat`'s tab, as `member` if verified.
    pub fn heartbeat(&mut self, now: u64, beat: &Beat, member: Option<Member>) {
        let cfg = self.config.clone();
        let s = self.site(&beat.site);
        s.sweep(now, &cfg);
        let key = tab_key(&beat.visitor, &beat.tab);
        s.gone.remove(&key);
        match s.tabs.get_mut(&key) {
            Some(t) => {
                t.last_ms = t.last_ms.max(now);
                let changed = t.page != beat.page || t.state != beat.state;
                let member_changed = t.member != member;
                t.page.clone_from(&beat.page);
                t.state = beat.state;
                if member_changed {
                    let old = std::mem::replace(&mut t.member, member.clone());
                    if let Some(m) = old {
                        s.member_gone(&m, now);
                    }
                    if let Some(m) = &member {
                        member_joined(s, m, now);
                    }
                    s.mark(now + cfg.join_delay_ms);
                } else if changed {
                    s.mark(now + cfg.change_delay_ms);
                }
            }
            None => {
                if let Some(m) = &member {
                    member_joined(s, m, now);
                }
                s.tabs.insert(
                    key,
                    TabRecord {
                        visitor: beat.visitor.clone(),
                        tab: beat.tab.clone(),
                        page: beat.page.clone(),
                        state: beat.state,
                        member,
                        first_ms: now,
                        last_ms: now,
                    },
                );
                s.mark(now + cfg.join_delay_ms);
            }
        }
    }

    /// Records that `beat`'s tab left (the pagehide beacon).
    pub fn leave(&mut self, now: u64, beat: &Beat) {
        let cfg = self.config.clone();
        let s = self.site(&beat.site);
        s.sweep(now, &cfg);
        let key = tab_key(&beat.visitor, &beat.tab);
        if let Some(t) = s.tabs.remove(&key) {
            if let Some(m) = &t.member {
                s.member_gone(m, now);
            }
        }
        s.gone.insert(
            key,
            Tombstone {
                visitor: beat.visitor.clone(),
                tab: beat.tab.clone(),
                at_ms: now,
            },
        );
        // Urgent: published as soon as the 1 write/s/key spacing allows.
        s.mark(now);
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
        let mut sites: Vec<&String> = self.sites.keys().collect();
        sites.sort();
        let sites: Vec<String> = sites.into_iter().cloned().collect();
        for site in sites {
            let key = self.own_key(&site);
            let isolate = self.isolate.clone();
            let s = self.site(&site);
            s.sweep(now, &cfg);
            for (m, at) in s.pending_member_writes.drain(..) {
                let value = serde_json::to_vec(&LastSeen {
                    last_seen: at,
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
            let renew_at = s.lease_until_ms.saturating_sub(cfg.lease_ms / 3);
            let has_content = !s.tabs.is_empty() || !s.gone.is_empty();
            let lease_due = has_content && now >= renew_at;
            let changes_due = s.due_ms.is_some_and(|d| now >= d);
            let spaced = s
                .last_flush_ms
                .is_none_or(|last| now >= last + cfg.flush_min_ms);
            if !(spaced && (changes_due || lease_due)) {
                continue;
            }
            let mut tabs: Vec<TabRecord> = s.tabs.values().cloned().collect();
            if tabs.len() > cfg.max_tabs_per_record {
                tabs.sort_by(|a, b| b.last_ms.cmp(&a.last_ms));
                tabs.truncate(cfg.max_tabs_per_record);
            }
            tabs.sort_by(|a, b| (&a.visitor, &a.tab).cmp(&(&b.visitor, &b.tab)));
            let mut gone: Vec<Tombstone> = s.gone.values().cloned().collect();
            gone.sort_by(|a, b| (&a.visitor, &a.tab).cmp(&(&b.visitor, &b.tab)));
            let record = Record {
                version: 1,
                isolate,
                written_ms: now,
                lease_until_ms: now + cfg.lease_ms,
                tabs,
                gone,
            };
            s.due_ms = None;
            s.last_flush_ms = Some(now);
            s.lease_until_ms = record.lease_until_ms;
            out.push(Write {
                key,
                value: record.encode(),
                metadata: Some(now.to_string()),
                ttl_s: cfg.record_ttl_s(),
            });
        }
        out
    }

    /// A write from [`Presence::take_writes`] failed: publish again as soon as allowed.
    pub fn write_failed(&mut self, now: u64, key: &str) {
        let min = self.config.flush_min_ms;
        if let Some(site) = key
            .strip_prefix("r:")
            .and_then(|rest| rest.split(':').next())
        {
            let s = self.site(site);
            s.lease_until_ms = 0;
            s.mark(now + min);
        }
    }

    /// Whether the view of other isolates' records for `site` is older than
    /// [`EngineConfig::refresh_ms`].
    #[must_use]
    pub fn needs_refresh(&self, now: u64, site: &str) -> bool {
        self.sites
            .get(site)
            .and_then(|s| s.remote.fetched_ms)
            .is_none_or(|t| now >= t + self.config.refresh_ms)
    }

    /// Of a listing of [`record_prefix`], the keys whose records must be fetched: those of
    /// other isolates that are new or were rewritten since they were last fetched.
    #[must_use]
    pub fn keys_to_fetch(&self, site: &str, listed: &[ListedKey]) -> Vec<String> {
        let own = self.own_key(site);
        let cached = self.sites.get(site).map(|s| &s.remote.records);
        listed
            .iter()
            .filter(|k| k.name != own)
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
        let own = self.own_key(site);
        let s = self.site(site);
        let mut fetched: HashMap<String, Vec<u8>> = fetched.into_iter().collect();
        let mut next = BTreeMap::new();
        for k in listed.iter().filter(|k| k.name != own) {
            if let Some(bytes) = fetched.remove(&k.name) {
                if let Some(rec) = Record::decode(&bytes) {
                    next.insert(k.name.clone(), (k.metadata.clone(), rec));
                }
            } else if let Some(old) = s.remote.records.remove(&k.name) {
                next.insert(k.name.clone(), old);
            }
        }
        s.remote.records = next;
        s.remote.fetched_ms = Some(now);
    }

    /// The merged live tabs of `site` at `now`: this isolate's own plus those vouched for by
    /// other isolates' records, latest heartbeat per tab, tombstones applied.
    fn merged(&mut self, now: u64, site: &str) -> Vec<TabRecord> {
        let cfg = self.config.clone();
        let s = self.site(site);
        s.sweep(now, &cfg);
        let mut sources: Vec<(&[TabRecord], &[Tombstone])> = Vec::new();
        let own_tabs: Vec<TabRecord> = s.tabs.values().cloned().collect();
        let own_gone: Vec<Tombstone> = s.gone.values().cloned().collect();
        sources.push((&own_tabs, &own_gone));
        for (_, rec) in s.remote.records.values() {
            if rec.lease_until_ms > now {
                sources.push((&rec.tabs, &rec.gone));
            } else {
                sources.push((&[], &rec.gone));
            }
        }
        merge(&sources)
    }

    /// The count for `site` (and `page`, if given) at `now`.
    pub fn count(&mut self, now: u64, site: &str, page: Option<&str>) -> Count {
        let window_s = self.config.window_ms / 1000;
        let tabs = self.merged(now, site);
        aggregate(&tabs, page, window_s, now)
    }

    /// The members online on `site` at `now`, by id.
    pub fn online_members(&mut self, now: u64, site: &str) -> Vec<OnlineMember> {
        let tabs = self.merged(now, site);
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
        self.merged(now, site)
            .iter()
            .filter(|t| t.member.as_ref().is_some_and(|m| m.id == member))
            .map(|t| t.last_ms)
            .max()
    }

    /// When the earliest unpublished change may be written (its due time, pushed back by
    /// the write spacing), so a driver can flush then without waiting for a request.
    #[must_use]
    pub fn next_flush_at(&self) -> Option<u64> {
        let min = self.config.flush_min_ms;
        self.sites
            .values()
            .filter_map(|s| {
                let due = s.due_ms?;
                Some(s.last_flush_ms.map_or(due, |l| due.max(l + min)))
            })
            .min()
    }

    /// How many tabs this isolate holds in memory for `site` (for tests and metrics).
    #[must_use]
    pub fn local_tabs(&self, site: &str) -> usize {
        self.sites.get(site).map_or(0, |s| s.tabs.len())
    }
}

fn member_joined(s: &mut SiteState, m: &Member, now: u64) {
    let n = s.members_here.entry(m.id.clone()).or_insert(0);
    *n += 1;
    if *n == 1 {
        s.pending_member_writes.push((m.clone(), now));
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
            let better = best.get(&k).is_none_or(|b| {
                (t.last_ms, t.first_ms, &t.page, t.state, &t.member)
                    > (b.last_ms, b.first_ms, &b.page, b.state, &b.member)
            });
            if better {
                best.insert(k, t);
            }
        }
        for g in *tombs {
            let e = gone.entry((g.visitor.as_str(), g.tab.as_str())).or_insert(0);
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

/// Aggregates live tabs into a [`Count`].
#[must_use]
pub fn aggregate(tabs: &[TabRecord], page: Option<&str>, window_s: u64, as_of: u64) -> Count {
    struct V {
        member: bool,
        active: bool,
    }
    let mut visitors: HashMap<&str, V> = HashMap::new();
    let mut pages: HashMap<&str, HashSet<&str>> = HashMap::new();
    for t in tabs {
        let v = visitors.entry(t.visitor.as_str()).or_insert(V {
            member: false,
            active: false,
        });
        v.member |= t.member.is_some();
        v.active |= t.state == TabState::Active;
        pages.entry(t.page.as_str()).or_default().insert(t.visitor.as_str());
    }
    let members = visitors.values().filter(|v| v.member).count() as u64;
    let online = visitors.len() as u64;
    let mut top: Vec<PageCount> = pages
        .iter()
        .map(|(p, vs)| PageCount {
            page: (*p).to_owned(),
            online: vs.len() as u64,
        })
        .collect();
    top.sort_by(|a, b| b.online.cmp(&a.online).then_with(|| a.page.cmp(&b.page)));
    top.truncate(TOP_PAGES);
    Count {
        online,
        tabs: tabs.len() as u64,
        members,
        guests: online - members,
        idle: visitors.values().filter(|v| !v.active).count() as u64,
        page: page.map(|p| pages.get(p).map_or(0, |vs| vs.len() as u64)),
        pages: top,
        window_s,
        as_of,
    }
}
