//! An isolate's view of the others: peers' full records, other locations' summaries,
//! and when it is refreshed.

use std::hash::{BuildHasher, Hash, Hasher, RandomState};

use hashbrown::hash_table::{Entry, HashTable};

use super::*;

/// What refreshing an isolate's view of the others takes now ([`Presence::refresh_due`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refresh {
    /// Nothing: the view is fresh enough.
    Fresh,
    /// A read of each of these records of this location's peers, each passed to
    /// [`Presence::apply_record`] as it is read, then [`Presence::apply_polled`]; no
    /// listing is due.
    Poll(Vec<String>),
    /// A listing of [`record_prefix`], then a read of each key [`Presence::keys_to_fetch`]
    /// names, each passed to [`Presence::apply_record`] as it is read, then the listing to
    /// [`Presence::apply_remote`].
    List,
}

/// A fetched record with its tabs and tombstones indexed by tab, as a view keeps it.
///
/// The tabs' index holds positions in [`Record::tabs`], not keys: a busy location's peers
/// hold tens of thousands of tabs, and a second copy of every visitor and tab id would be
/// a fifth of an isolate's memory (`make load-memory`, BENCHMARKS.md).
#[derive(Debug, Clone)]
pub struct IndexedRecord {
    pub(super) record: Record,
    tabs: HashTable<u32>,
    hasher: RandomState,
    pub(super) gone: HashMap<String, u64>,
}

impl PartialEq for IndexedRecord {
    fn eq(&self, other: &Self) -> bool {
        self.record == other.record
    }
}

impl Eq for IndexedRecord {}

impl IndexedRecord {
    /// Indexes `record` (of a tab listed twice, the later entry is the one found).
    #[must_use]
    pub fn new(record: Record) -> Self {
        let hasher = RandomState::new();
        let mut tabs = HashTable::with_capacity(record.tabs.len());
        for (i, t) in record.tabs.iter().enumerate() {
            let h = hasher.hash_one((t.visitor.as_str(), t.tab.as_str()));
            let at = |&j: &u32| same_tab(&record.tabs[j as usize], &t.visitor, &t.tab);
            let rehash = |&j: &u32| {
                let u = &record.tabs[j as usize];
                hasher.hash_one((u.visitor.as_str(), u.tab.as_str()))
            };
            // Records hold at most `max_tabs_per_record` (≤ u32::MAX) tabs.
            let i = u32::try_from(i).unwrap_or(u32::MAX);
            match tabs.entry(h, at, rehash) {
                Entry::Occupied(mut e) => *e.get_mut() = i,
                Entry::Vacant(e) => {
                    e.insert(i);
                }
            }
        }
        let mut gone: HashMap<String, u64> = HashMap::new();
        for g in &record.gone {
            let e = gone.entry(tab_key(&g.visitor, &g.tab)).or_insert(g.at_ms);
            *e = (*e).max(g.at_ms);
        }
        Self {
            record,
            tabs,
            hasher,
            gone,
        }
    }

    /// The record.
    #[must_use]
    pub fn record(&self) -> &Record {
        &self.record
    }

    /// Decodes and indexes the record in `bytes`, or, when it is the same write as `held`
    /// (the copy a view holds: [`Presence::held_record`]), returns that copy without
    /// decoding: peers are read every [`EngineConfig::refresh_ms`], and a busy location's
    /// record takes milliseconds of CPU to decode. `None` for anything not a record.
    #[must_use]
    pub fn decode(bytes: &[u8], held: Option<&Arc<Self>>) -> Option<Arc<Self>> {
        if let Some(h) = held
            && Record::written_ms_of(bytes) == Some(h.record.written_ms)
        {
            return Some(h.clone());
        }
        Record::decode(bytes).map(|r| Arc::new(Self::new(r)))
    }

    /// The entry of tab `tab` of `visitor`, if the record has one.
    pub(super) fn tab(&self, visitor: &str, tab: &str) -> Option<&TabRecord> {
        let h = self.hasher.hash_one((visitor, tab));
        self.tabs
            .find(h, |&j| {
                same_tab(&self.record.tabs[j as usize], visitor, tab)
            })
            .map(|&j| &self.record.tabs[j as usize])
    }
}

fn same_tab(t: &TabRecord, visitor: &str, tab: &str) -> bool {
    t.visitor == visitor && t.tab == tab
}

/// The merged entries of the other isolates of this location for one tab.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct ViewTab<'a> {
    /// The winning entry and the lease of the record it came from.
    pub(super) best: Option<(&'a TabRecord, u64)>,
    /// The latest tombstone.
    pub(super) tomb: Option<u64>,
}

impl<'a> ViewTab<'a> {
    /// The winning entry if it still counts at `now` (ignoring tombstones from elsewhere).
    pub(super) fn live(&self, now: u64, window: u64) -> Option<&'a TabRecord> {
        let (t, lease) = self.best?;
        let live =
            !liveness::removed(self.tomb, t.last_ms) && liveness::entry_live(t, lease, window, now);
        live.then_some(t)
    }

    pub(super) fn last(&self) -> Option<u64> {
        self.best.map(|(t, _)| t.last_ms)
    }
}

#[derive(Debug, Default, Clone)]
pub(super) struct RemoteView {
    /// When the records were last listed.
    pub(super) fetched_ms: Option<u64>,
    /// When the records of this location's peers were last read without a listing.
    pub(super) polled_ms: Option<u64>,
    /// Full records (of this location; of others too while member lists are wanted), by
    /// key, with the metadata they were listed with.
    pub(super) records: BTreeMap<String, (Option<String>, Arc<IndexedRecord>)>,
    /// Summaries of other locations' records, by key, with their metadata.
    pub(super) summaries: BTreeMap<String, (String, Summary)>,
    /// The records of the other isolates of this location, each with until when its active
    /// tabs count (`liveness::vouch_until`).
    pub(super) same: Vec<(Arc<IndexedRecord>, u64)>,
    /// The ids of the other active isolates of this location.
    pub(super) same_ids: Vec<String>,
    /// Until when another isolate of this location counts as active.
    pub(super) same_active_until: u64,
    /// Until when an isolate of another location counts as active.
    pub(super) other_active_until: u64,
    /// Until when member lists are wanted (remote records are then fetched too).
    pub(super) members_until: u64,
    /// When remote records were last fetched for member lists.
    pub(super) members_fetched_ms: Option<u64>,
    /// Refreshes in a row that found no other active isolate.
    pub(super) solo_streak: u32,
    /// A digest of the peers' records (keys and write times), to see when one changed.
    pub(super) same_fingerprint: u64,
}

impl RemoteView {
    /// The merged entries of the other isolates of this location for tab `key`
    /// ([`tab_key`]).
    pub(super) fn view(&self, key: &str) -> ViewTab<'_> {
        let (visitor, tab) = split_tab_key(key);
        self.view_of(visitor, tab, key)
    }

    /// [`RemoteView::view`] of the tab `key` names, given its parts.
    pub(super) fn view_of(&self, visitor: &str, tab: &str, key: &str) -> ViewTab<'_> {
        let mut v = ViewTab::default();
        for (r, vouch_until) in &self.same {
            if let Some(t) = r.tab(visitor, tab)
                && v.best.is_none_or(|(b, _)| wins_over(t, b))
            {
                v.best = Some((t, *vouch_until));
            }
            if let Some(&g) = r.gone.get(key) {
                v.tomb = Some(v.tomb.map_or(g, |x| x.max(g)));
            }
        }
        v
    }
}

/// The latest valid summary per other location.
pub(super) fn latest_summaries(s: &SiteState, now: u64) -> Vec<&Summary> {
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

impl SiteState {
    /// How long a listing is reused. Alone, an isolate looks again after the remote delay,
    /// then twice as long each time it still finds no one, up to the solo delay: it finds
    /// isolates that start with it within seconds, and costs few listings when alone.
    pub(super) fn list_every(&self, cfg: &EngineConfig, mode: Mode) -> u64 {
        match mode {
            Mode::Peers | Mode::Remote => cfg.remote_delay_ms.max(cfg.refresh_ms),
            Mode::Solo => {
                let backoff = cfg.remote_delay_ms << self.remote.solo_streak.min(16);
                backoff.min(cfg.solo_delay_ms).max(cfg.refresh_ms)
            }
        }
    }

    /// Recomputes the records of this location's peers and whether any is active.
    pub(super) fn rebuild_same(&mut self, now: u64, cfg: &EngineConfig, my_loc: Option<&str>) {
        let r = &mut self.remote;
        r.same.clear();
        r.same_ids.clear();
        r.same_active_until = 0;
        let mut fingerprint = std::hash::DefaultHasher::new();
        // The earliest peer's write KV does not have yet: when the change it carries was made.
        let in_kv = self.local.kv_written_ms().unwrap_or(0);
        let mut earliest_new: Option<u64> = None;
        for (k, (_, rec)) in &r.records {
            if key_location(k) != my_loc {
                continue;
            }
            k.hash(&mut fingerprint);
            rec.record.written_ms.hash(&mut fingerprint);
            if rec.record.written_ms > in_kv {
                earliest_new = Some(
                    earliest_new.map_or(rec.record.written_ms, |e| e.min(rec.record.written_ms)),
                );
            }
            let active_until = rec.record.written_ms.saturating_add(cfg.peer_active_ms());
            r.same_active_until = r.same_active_until.max(active_until);
            if active_until > now {
                r.same_ids.push(rec.record.isolate.clone());
            }
            r.same
                .push((rec.clone(), liveness::vouch_until(cfg, &rec.record)));
        }
        // A peer's record changed: the location's summary in KV is out of date since the
        // change was written (or now, for a record that went).
        let fingerprint = fingerprint.finish();
        if fingerprint != r.same_fingerprint {
            r.same_fingerprint = fingerprint;
            self.local.changed(earliest_new.unwrap_or(now).min(now));
        }
    }
}

impl Presence {
    /// Whether a listed key belongs to this isolate's location (unknown matches unknown).
    pub(super) fn same_location(&self, key: &str) -> bool {
        key_location(key) == self.location.as_deref()
    }

    /// Whether a listing is wanted for more than its pace: this isolate has none yet, or
    /// member lists are wanted and other locations' records not fetched for them.
    #[must_use]
    pub fn listing_wanted(&self, now: u64, site: &str) -> bool {
        self.sites.get(site).is_none_or(|s| {
            let r = &s.remote;
            r.fetched_ms.is_none() || r.members_until > now && r.members_fetched_ms.is_none()
        })
    }

    /// What refreshing the view of other isolates for `site` takes at `now`: nothing; a read
    /// of each record of this location's peers every [`EngineConfig::refresh_ms`] while
    /// peers are active; or a listing every [`EngineConfig::remote_delay_ms`] (alone: after
    /// a backoff up to [`EngineConfig::solo_delay_ms`]), or when member lists are wanted.
    #[must_use]
    pub fn refresh_due(&self, now: u64, site: &str) -> Refresh {
        if self.listing_wanted(now, site) {
            return Refresh::List;
        }
        let Some(s) = self.sites.get(site) else {
            return Refresh::List;
        };
        let r = &s.remote;
        let mode = s.mode(now);
        let Some(listed) = r.fetched_ms else {
            return Refresh::List;
        };
        // With the channel, KV is listed for other locations only: at their pace.
        let list_mode = if self.local { s.kv_mode(now) } else { mode };
        if now >= listed + s.list_every(&self.config, list_mode) {
            return Refresh::List;
        }
        let read = listed.max(r.polled_ms.unwrap_or(0));
        // With the channel, reads of it are free: its directory is polled in every mode,
        // so that a new peer is found within a poll.
        if (mode == Mode::Peers || self.local) && now >= read + self.config.refresh_ms {
            let keys = if self.local {
                self.directory_peers(now, site)
            } else {
                r.records
                    .keys()
                    .filter(|k| key_location(k) == self.location.as_deref())
                    .cloned()
                    .collect()
            };
            return Refresh::Poll(keys);
        }
        Refresh::Fresh
    }

    /// Whether [`Presence::refresh_due`] has anything to do.
    #[must_use]
    pub fn needs_refresh(&self, now: u64, site: &str) -> bool {
        self.refresh_due(now, site) != Refresh::Fresh
    }

    /// Puts one record a refresh read into the view at once (decoded by
    /// [`crate::store::Store::get_record`]), replacing the copy held, so that a driver
    /// reading several records holds at most one old copy at a time: a busy location's
    /// records are megabytes each, and wasm memory never shrinks. `metadata` is what the
    /// listing said of it; `None` for a read without a listing (a [`Refresh::Poll`], or a
    /// peer named by the channel's directory), which keeps the copy held when it is the
    /// same write. Called before [`Presence::apply_polled`] or [`Presence::apply_remote`]
    /// ends the refresh.
    pub fn apply_record(
        &mut self,
        now: u64,
        site: &str,
        key: String,
        metadata: Option<String>,
        rec: Arc<IndexedRecord>,
    ) {
        let my_loc = self.location.clone();
        let cfg = self.config.clone();
        let s = self.site(site);
        s.version += 1;
        let peer = key_location(&key) == my_loc.as_deref();
        let same = metadata.is_none()
            && s.remote
                .records
                .get(&key)
                .is_some_and(|(_, r)| r.record.written_ms == rec.record.written_ms);
        if !same {
            // Unknown metadata: the next listing reads it once more.
            s.remote.records.insert(key, (metadata, rec));
        }
        // A peer's replaced copy is in the peers' view too, and is freed only once it
        // leaves that as well (other locations' records are not in it).
        if peer {
            s.rebuild_same(now, &cfg, my_loc.as_deref());
        }
    }

    /// The copy of the record at `key` the view holds, for the store to skip decoding
    /// the same write again ([`IndexedRecord::decode`]).
    #[must_use]
    pub fn held_record(&self, site: &str, key: &str) -> Option<Arc<IndexedRecord>> {
        let (_, rec) = self.sites.get(site)?.remote.records.get(key)?;
        Some(rec.clone())
    }

    /// Ends a [`Refresh::Poll`]: its records read were applied one by one
    /// ([`Presence::apply_record`]); `gone` are the keys that read nothing.
    pub fn apply_polled(&mut self, now: u64, site: &str, gone: Vec<String>) {
        let my_loc = self.location.clone();
        let cfg = self.config.clone();
        let local = self.local;
        let s = self.site(site);
        s.version += 1;
        // A miss in the channel is "not known" (evicted), not "gone": the last copy
        // vouches on for as long as it would have.
        if !local {
            for k in gone {
                s.remote.records.remove(&k);
            }
        }
        s.remote.polled_ms = Some(now);
        s.rebuild_same(now, &cfg, my_loc.as_deref());
        s.mode = Some(s.mode(now));
        s.reconcile(now, &cfg);
    }

    /// Of a listing of [`record_prefix`], the keys whose records must be fetched: those of
    /// other isolates of this location (of every location while member lists are wanted)
    /// that are new or were rewritten since they were last fetched.
    #[must_use]
    pub fn keys_to_fetch(&self, site: &str, listed: &[ListedKey]) -> Vec<ListedKey> {
        let own = self.own_key(site);
        let s = self.sites.get(site);
        let members = s.is_some_and(|s| s.remote.members_until > s.remote.fetched_ms.unwrap_or(0));
        let cached = s.map(|s| &s.remote.records);
        listed
            .iter()
            .filter(|k| k.name != own)
            .filter(|k| members || self.same_location(&k.name))
            .filter(|k| {
                cached
                    .and_then(|c| c.get(&k.name))
                    .is_none_or(|(meta, _)| k.metadata.is_none() || *meta != k.metadata)
            })
            .cloned()
            .collect()
    }

    /// Replaces the view of other isolates' records for `site` with a complete listing;
    /// the records [`Presence::keys_to_fetch`] named were applied one by one
    /// ([`Presence::apply_record`]), and listed keys not fetched keep their cached record.
    pub fn apply_remote(&mut self, now: u64, site: &str, listed: &[ListedKey]) {
        self.site(site).version += 1;
        let own = self.own_key(site);
        let my_loc = self.location.clone();
        let cfg = self.config.clone();
        let local = self.local;
        let s = self.site(site);
        let members = s.remote.members_until > s.remote.fetched_ms.unwrap_or(0);
        let mut records = BTreeMap::new();
        let mut summaries = BTreeMap::new();
        let mut other_active_until = 0;
        for k in listed.iter().filter(|k| k.name != own) {
            let is_same = key_location(&k.name) == my_loc.as_deref();
            if let Some(old) = s.remote.records.remove(&k.name)
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
        s.rebuild_same(now, &cfg, my_loc.as_deref());
        if members {
            s.remote.members_fetched_ms = Some(now);
        }
        let mode = s.mode(now);
        s.mode = Some(mode);
        let list_mode = if local { s.kv_mode(now) } else { mode };
        if list_mode == Mode::Solo {
            s.remote.solo_streak += 1;
        } else {
            s.remote.solo_streak = 0;
        }
        s.reconcile(now, &cfg);
    }
}
