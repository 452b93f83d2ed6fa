//! An isolate's view of the others: peers' full records, other locations' summaries,
//! and when it is refreshed.

use std::hash::{Hash, Hasher};

use super::*;

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

/// A fetched record with its tabs and tombstones indexed by tab, as a view keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexedRecord {
    pub(super) record: Record,
    pub(super) tabs: HashMap<String, usize>,
    pub(super) gone: HashMap<String, u64>,
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
    /// The merged entries of the other isolates of this location for tab `key`.
    pub(super) fn view(&self, key: &str) -> ViewTab<'_> {
        let mut v = ViewTab::default();
        for (r, vouch_until) in &self.same {
            if let Some(&i) = r.tabs.get(key) {
                let t = &r.record.tabs[i];
                if v.best.is_none_or(|(b, _)| wins_over(t, b)) {
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
        for (k, (_, rec)) in &r.records {
            if key_location(k) != my_loc {
                continue;
            }
            k.hash(&mut fingerprint);
            rec.record.written_ms.hash(&mut fingerprint);
            let active_until = rec.record.written_ms.saturating_add(cfg.peer_active_ms());
            r.same_active_until = r.same_active_until.max(active_until);
            if active_until > now {
                r.same_ids.push(rec.record.isolate.clone());
            }
            r.same
                .push((rec.clone(), liveness::vouch_until(cfg, &rec.record)));
        }
        // A peer's record changed: the location's summary in KV is out of date.
        let fingerprint = fingerprint.finish();
        if fingerprint != r.same_fingerprint {
            r.same_fingerprint = fingerprint;
            self.local.changed(now);
        }
    }
}

impl Presence {
    /// Whether a listed key belongs to this isolate's location (unknown matches unknown).
    pub(super) fn same_location(&self, key: &str) -> bool {
        key_location(key) == self.location.as_deref()
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

    /// Applies the reads a [`Refresh::Poll`] asked for: each key with its record (decoded
    /// by [`crate::store::Store::get_record`]), or `None` when it is gone.
    pub fn apply_polled(
        &mut self,
        now: u64,
        site: &str,
        read: Vec<(String, Option<Arc<IndexedRecord>>)>,
    ) {
        let my_loc = self.location.clone();
        let cfg = self.config.clone();
        let local = self.local;
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
                // A miss in the channel is "not known" (evicted), not "gone": the last copy
                // vouches on for as long as it would have.
                None if local => {}
                None => {
                    s.remote.records.remove(&k);
                }
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
    pub fn keys_to_fetch(&self, site: &str, listed: &[ListedKey]) -> Vec<String> {
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
            .map(|k| k.name.clone())
            .collect()
    }

    /// Replaces the view of other isolates' records for `site` with a complete listing and
    /// the records fetched for the keys [`Presence::keys_to_fetch`] named (decoded by
    /// [`crate::store::Store::get_record`]; listed keys not fetched keep their cached
    /// record).
    pub fn apply_remote(
        &mut self,
        now: u64,
        site: &str,
        listed: &[ListedKey],
        fetched: Vec<(String, Arc<IndexedRecord>)>,
    ) {
        self.site(site).version += 1;
        let own = self.own_key(site);
        let my_loc = self.location.clone();
        let cfg = self.config.clone();
        let local = self.local;
        let s = self.site(site);
        let members = s.remote.members_until > s.remote.fetched_ms.unwrap_or(0);
        let mut fetched: HashMap<String, Arc<IndexedRecord>> = fetched.into_iter().collect();
        let mut records = BTreeMap::new();
        let mut summaries = BTreeMap::new();
        let mut other_active_until = 0;
        for k in listed.iter().filter(|k| k.name != own) {
            let is_same = key_location(&k.name) == my_loc.as_deref();
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
